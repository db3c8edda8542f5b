// `envelope tenants ls|set`: the operator's tenant envelopes and rate limits, on the store (SPEC §4a, §5).
import { Option, type Command } from 'commander';
import { parseTenantSpec, type TenantView } from '../../budget/tenants.js';
import { parseTenantKeys } from '../../gateway/options.js';
import { Ledger } from '../../ledger/ledger.js';
import { openStore } from '../../store/open.js';
import { jsonOption, storeOption } from '../options.js';
import { printJson } from '../output.js';
import { table } from '../table.js';

const count = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
const amountOf = (unit: string, x: number): string => (unit === 'usd' ? `$${x.toFixed(2)}` : count(x));
const when = (ms: number | null | undefined): string => (ms ? new Date(ms).toISOString().replace(':00.000Z', 'Z') : '–');

function tenantTable(views: TenantView[]): string {
  return table(
    ['tenant', 'envelope', 'used', 'used %', 'state', 'period', 'starts over', 'tpm', 'rpm', 'window tokens', 'window requests'],
    views.map((v) => [
      v.tenant,
      v.envelope ? `${amountOf(v.envelope.unit, v.envelope.total)} ${v.envelope.policy}` : 'none',
      v.spend ? amountOf(v.spend.unit, v.spend.used) : '–',
      v.envelope ? `${(v.envelope.utilization * 100).toFixed(1)}%` : '–',
      v.envelope?.state ?? '–',
      v.spend?.period ?? '–',
      when(v.spend?.resetsAtMs),
      count(v.limits?.tpm),
      count(v.limits?.rpm),
      count(v.limits?.window.tokens),
      count(v.limits?.window.requests),
    ]),
  );
}

/** A number, or `none` to remove the setting (kept as the word: commander turns a parsed null into ''). */
const limitArg = (name: string) => (value: string): number | 'none' => {
  if (value === 'none') return 'none';
  const n = Number(value);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value) || !Number.isFinite(n)) throw new Error(`${name} must be a plain number (or none to remove it), got "${value}"`);
  return n;
};

interface SetFlags {
  store: string;
  json?: boolean;
  budget?: number | 'none';
  unit?: string;
  meter?: string;
  period?: string;
  policy?: string;
  tpm?: number | 'none';
  rpm?: number | 'none';
  tenantKeys?: string;
}

export function registerTenants(program: Command): void {
  const tenants = program.command('tenants').description("tenant envelopes and rate limits: the operator's caps on what each tenant key spends");

  tenants
    .command('ls', { isDefault: true })
    .description('every tenant with an envelope or a rate limit: this period’s spend, and the rate window now')
    .addOption(storeOption())
    .addOption(jsonOption())
    .action(async (o: { store: string; json?: boolean }) => {
      const ledger = new Ledger(await openStore(o.store));
      try {
        const views = await ledger.governance.list();
        if (o.json) printJson(views);
        else console.log(views.length ? tenantTable(views) : 'no tenant has an envelope or a rate limit yet: set one with `envelope tenants set TENANT --budget N`');
      } finally {
        await ledger.shutdown();
      }
    });

  tenants
    .command('set <tenant>')
    .description('set a tenant’s envelope and rate limits; what is not given stays as it was, `none` removes it')
    .addOption(new Option('--budget <n>', 'the envelope: tokens, or USD with --unit usd; none: no cap (spend is still counted)').argParser(limitArg('--budget')))
    .addOption(new Option('--unit <unit>', 'tokens (every billed token) or usd').choices(['tokens', 'usd']))
    .addOption(new Option('--meter <meter>', 'how a token envelope counts a call: billed (default: what the provider bills) or loop').choices(['billed', 'loop']))
    .addOption(new Option('--period <period>', 'when the envelope starts over (UTC): day, week, month or none').choices(['day', 'week', 'month', 'none']))
    .addOption(new Option('--policy <policy>', 'hard (default), advisory or approval').choices(['hard', 'advisory', 'approval']))
    .addOption(new Option('--tpm <n>', 'tokens per minute (sliding window); none: no limit').argParser(limitArg('--tpm')))
    .addOption(new Option('--rpm <n>', 'requests per minute (sliding window); none: no limit').argParser(limitArg('--rpm')))
    .addOption(new Option('--tenant-keys <pairs>', 'the gateway’s tenant keys (tenant=key,…): a tenant must have one').env('ENVELOPE_TENANT_KEYS'))
    .addOption(storeOption())
    .addOption(jsonOption())
    .addHelpText('after', '\nExample:\n  envelope tenants set team-a --budget 5000000 --period day --tpm 250000 --rpm 600')
    .action(async (tenant: string, o: SetFlags) => {
      const known = new Set(['default', ...parseTenantKeys(o.tenantKeys).values()]);
      if (!known.has(tenant)) {
        throw new Error(`tenant ${tenant} does not exist: no tenant key names it (known: ${[...known].join(', ')}); pass the gateway's --tenant-keys or set ENVELOPE_TENANT_KEYS`);
      }
      const ledger = new Ledger(await openStore(o.store));
      try {
        const current = (await ledger.governance.list()).find((t) => t.tenant === tenant);
        const was = current?.envelope;
        const given = (v: number | 'none' | undefined, was: number | null | undefined): number | null => (v === undefined ? (was ?? null) : v === 'none' ? null : v);
        const budget = given(o.budget, was?.total);
        const settings = {
          ...(budget === null
            ? {}
            : {
                total: budget,
                unit: o.unit ?? was?.unit,
                meter: o.meter ?? was?.meter,
                period: o.period ?? was?.period,
                policy: o.policy ?? (was?.policy === 'measure' ? undefined : was?.policy),
              }),
          tpm: given(o.tpm, current?.limits?.tpm),
          rpm: given(o.rpm, current?.limits?.rpm),
        };
        const view = await ledger.governance.set(parseTenantSpec(tenant, JSON.parse(JSON.stringify(settings))));
        if (o.json) printJson(view);
        else console.log(tenantTable([view]));
      } finally {
        await ledger.shutdown();
      }
    });
}
