// `envelope report`: cost per run by label and model, and whether each label's price covers it (SPEC §5).
import { Option, type Command } from 'commander';
import {
  DEFAULT_COVERAGE_TARGET,
  DEFAULT_TIER_RATE_USD_PER_MTOK,
  DEFAULT_TIERS,
  parsePriceArg,
  parseTierArg,
  PricingAccumulator,
  type PricingReport,
  type TierSpec,
} from '../../insight/report.js';
import { reportCsv } from '../../insight/report-csv.js';
import { tenantReport, type TenantReportRow } from '../../insight/tenant-report.js';
import { Ledger } from '../../ledger/ledger.js';
import { openStore } from '../../store/open.js';
import { jsonOption, numberArg, storeOption } from '../options.js';
import { loadPrices } from '../../metering/prices-file.js';
import { printJson } from '../output.js';
import { fromOption, limitOption, printIssues, readRuns, type RunInputSummary } from '../run-input.js';
import { table } from '../table.js';

interface ReportFlags {
  from?: string;
  store: string;
  label?: string;
  limit: number;
  price: [string, number][];
  target: number;
  tier: TierSpec[];
  tierRate: number;
  prices?: string;
  json?: boolean;
  csv?: boolean;
  tenants?: boolean;
}

const HELP_AFTER = `
Cost is what the ledger charged for each run (cache reads and writes at their own rates); a JSONL line without
"costUsd" but with a "usage" breakdown is priced from the price table (built in, or --prices). Coverage = price ÷
cost per run.

Tiers price a run of N tokens at a flat rate (default $3 per million tokens, Sonnet input pricing): the default
quick scan (5,000 tokens ≈ $0.015) and deep analysis (50,000 tokens ≈ $0.15, sold at $0.50 = 3.3×).

With --tenants: per tenant with an envelope or a rate limit (from --store), this period's spend against its
envelope, the busiest minute's settled tokens against its TPM limit, and the peak-hour burn ratio (the busiest hour
÷ the median of the hours that burned anything, over the last 7 days): weekday peaks commonly run 1.3-1.5×.

Examples:
  envelope report --tenants
  envelope report --from runs.jsonl --price bug-fix=0.50 --price triage=0.05
  envelope report --price bug-fix=0.50 --target 4 --csv > report.csv
  envelope report --tier "quick scan=5000@0.05" --tier "deep analysis=50000@0.50" --json`;

const collect = <T>(parse: (s: string) => T) => (value: string, previous: T[] | undefined): T[] => [
  ...(previous ?? []),
  parse(value),
];

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('runs, tokens and USD cost per label and model; price coverage against a target')
    .addOption(fromOption())
    .addOption(storeOption())
    .option('--label <label>', 'only this label')
    .addOption(limitOption())
    .addOption(new Option('--price <label=usd>', 'sale price per run of a label (repeatable)').argParser(collect(parsePriceArg)).default([], 'none'))
    .addOption(new Option('--target <ratio>', 'coverage a price should reach').argParser(numberArg('--target')).default(DEFAULT_COVERAGE_TARGET))
    .addOption(new Option('--tier <name=tokens[@usd]>', 'a price tier (repeatable; replaces the default two)').argParser(collect(parseTierArg)))
    .addOption(
      new Option('--tier-rate <usd-per-mtok>', 'flat compute rate of the tier table').argParser(numberArg('--tier-rate')).default(DEFAULT_TIER_RATE_USD_PER_MTOK),
    )
    .addOption(new Option('--prices <file>', 'JSON price table merged over the built-in one').env('ENVELOPE_PRICES'))
    .addOption(jsonOption())
    .option('--csv', 'print the label × model table as CSV')
    .option('--tenants', 'per tenant: spend against its envelope, peak-minute TPM against its limit, peak-hour burn ratio')
    .addHelpText('after', HELP_AFTER)
    .action(async (o: ReportFlags) => {
      if (o.tenants) return reportTenants(o);
      const priceTable = loadPrices(o.prices) ?? {};
      const acc = new PricingAccumulator(priceTable);
      const input = await readRuns(o, (r) => acc.add(r));
      const report = acc.finish({
        prices: Object.fromEntries(o.price),
        target: o.target,
        priceTable,
        tiers: o.tier ?? DEFAULT_TIERS,
        tierRateUsdPerMtok: o.tierRate,
      });
      printIssues(input);
      if (o.json) return printJson({ ...report, input });
      if (o.csv) return console.log(reportCsv(report));
      console.log(renderReport(report, input));
    });
}

async function reportTenants(o: ReportFlags): Promise<void> {
  const ledger = new Ledger(await openStore(o.store));
  try {
    const rows = tenantReport(await ledger.governance.list());
    if (o.json) printJson({ tenants: rows });
    else console.log(rows.length ? renderTenants(rows) : 'no tenant has an envelope or a rate limit yet: set one with `envelope tenants set TENANT --budget N --tpm N`');
  } finally {
    await ledger.shutdown();
  }
}

const percent = (x: number | null): string => (x === null ? '–' : `${(x * 100).toFixed(1)}%`);

export function renderTenants(rows: TenantReportRow[]): string {
  const spent = (r: TenantReportRow, x: number | null): string => (x === null ? '–' : r.unit === 'usd' ? usd(x) : count(x));
  return table(
    ['tenant', 'period', 'spent', 'envelope', 'used', 'peak-minute TPM', 'TPM limit', 'of limit', 'peak hour', 'median hour', 'peak ÷ median'],
    rows.map((r) => [
      r.tenant,
      r.period ?? '–',
      spent(r, r.spent),
      spent(r, r.envelopeTotal),
      percent(r.envelopeShare),
      count(r.peakMinuteTokens),
      r.tpmLimit === null ? '–' : count(r.tpmLimit),
      percent(r.tpmShare),
      count(r.peakHourTokens),
      count(r.medianHourTokens),
      ratio(r.peakHourRatio),
    ]),
  );
}

const usd = (x: number | null): string => (x === null ? '–' : `$${x < 1 ? x.toFixed(4) : x.toFixed(2)}`);
/** A price as given: cents unless it has finer digits. */
const price = (x: number | null): string =>
  x === null ? '–' : `$${Number.isInteger(Math.round(x * 100 * 1e6) / 1e6) ? x.toFixed(2) : String(x)}`;
const ratio = (x: number | null): string => (x === null ? '–' : `${x.toFixed(2)}×`);
const count = (x: number): string => Math.round(x).toLocaleString('en-US');

export function renderReport(r: PricingReport, input: RunInputSummary): string {
  const out = [
    `run records: ${input.records.toLocaleString('en-US')} from ${input.source}${input.badLines ? `, ${input.badLines} bad lines skipped` : ''}`,
    `total: ${count(r.runs)} runs, ${count(r.tokens)} tokens, ${usd(r.costUsd)}`,
    '',
  ];
  if (r.rows.length === 0) out.push('no run records yet; runs are written when tasks close');
  else {
    out.push(
      table(
        ['label', 'model', 'runs', 'tokens', 'cost', 'cost/run', 'tokens/run'],
        r.rows.map((x) => [
          x.label,
          x.model,
          count(x.runs),
          count(x.tokens),
          usd(x.costUsd),
          usd(x.costPerRunUsd),
          count(x.tokensPerRun),
        ]),
      ),
      '',
      table(
        ['label', 'runs', 'cost/run', 'price', 'coverage', `target ${r.target}×`],
        r.labels.map((l) => [
          l.label,
          count(l.runs),
          usd(l.costPerRunUsd),
          price(l.priceUsd),
          ratio(l.coverage),
          l.short === null ? '' : l.short ? 'SHORT' : 'ok',
        ]),
      ),
    );
  }
  if (r.short.length) out.push('', `below ${r.target}× coverage: ${r.short.join(', ')}`);
  const unpriced = r.rows.filter((x) => x.unpricedRuns > 0);
  if (unpriced.length) {
    out.push('', `left out of cost (no costUsd and no usage on a priced model): ${unpriced.map((x) => `${x.label}/${x.model} ${x.unpricedRuns}`).join(', ')}`);
  }
  if (r.unknownPriced.length) out.push('', `priced but no runs: ${r.unknownPriced.join(', ')}`);
  out.push(
    '',
    `tiers at $${r.tiers[0]?.rateUsdPerMtok ?? 0}/Mtok`,
    table(
      ['tier', 'tokens', 'cost', 'price', 'coverage', `price at ${r.target}×`],
      r.tiers.map((t) => [t.name, count(t.tokens), usd(t.costUsd), price(t.priceUsd), ratio(t.coverage), usd(t.suggestedPriceUsd)]),
    ),
  );
  return out.join('\n');
}
