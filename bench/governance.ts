// What a tenant's governance adds to each call (SPEC §4a): reserve+settle pairs on one task with no tenant settings,
// under a tenant envelope, and under an envelope with a rate limit (admission before the reservation and its
// correction after the settlement: two more atomic steps on the tenant's rate row), side by side on every store.
// Runs on its own with `node dist/bench/governance.js [--quick]`.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTenantSpec } from '../src/budget/tenants.js';
import { Ledger } from '../src/ledger/ledger.js';
import { openStore } from '../src/store/open.js';
import { TestStores } from '../test/helpers/stores.js';
import { printSections, type BenchOptions, type BenchSection } from './section.js';

const usage = { inputTokens: 10, outputTokens: 10, cacheWriteTokens: 0, cacheReadTokens: 0 };
const TENANT = 'bench';
/** Limits no benchmark call reaches: every call is admitted, and pays for being counted. */
const NEVER_REACHED = { tpm: 1e11, rpm: 1e9 };

type Variant = 'none' | 'envelope' | 'rate';
const VARIANTS: Variant[] = ['none', 'envelope', 'rate'];

/** Microseconds per reserve+settle pair: `callers` concurrent loops on one task, after a warm-up. */
async function perPairUs(url: string, variant: Variant, pairs: number, callers: number): Promise<number> {
  const ledger = new Ledger(await openStore(url));
  const scope = variant === 'none' ? undefined : { tenant: TENANT };
  if (variant !== 'none') {
    await ledger.governance.set(parseTenantSpec(TENANT, { total: 1e12, period: 'day', ...(variant === 'rate' ? NEVER_REACHED : {}) }));
  }
  await ledger.createTask({ id: 'bench-task', total: 1e11, policy: 'hard' }, scope);
  const loop = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const g = await ledger.reserve({ taskId: 'bench-task', model: null, inputTokens: 10, outputTokensMax: 10 }, scope);
      await ledger.settle(g.reservation.id, usage);
    }
  };
  await loop(Math.min(500, pairs));
  const perCaller = Math.ceil(pairs / callers);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: callers }, () => loop(perCaller)));
  const us = ((performance.now() - t0) * 1000) / (perCaller * callers);
  await ledger.shutdown();
  return us;
}

const us = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const added = (x: number, base: number): string => `${x >= base ? '+' : '−'}${us(Math.abs(x - base))} µs (${(x / base).toFixed(2)}×)`;

export async function run(opts: BenchOptions): Promise<BenchSection[]> {
  const stores = new TestStores();
  const dir = mkdtempSync(join(tmpdir(), 'envelope-bench-governance-'));
  let files = 0;
  const kinds: Array<[string, () => string, number]> = [
    ['memory', () => 'memory:', opts.quick ? 1_000 : 10_000],
    ['SQLite', () => `sqlite:${join(dir, `bench-${files++}.db`)}`, opts.quick ? 1_000 : 5_000],
    ['Redis', () => stores.redisUrl(), opts.quick ? 500 : 2_000],
    ['PostgreSQL', () => stores.postgresUrl(), opts.quick ? 200 : 600],
  ];
  const repeats = opts.quick ? 1 : 3;
  const rows: (string | number)[][] = [];
  try {
    for (const [kind, url, pairs] of kinds) {
      for (const callers of [1, 32]) {
        // The variants take turns, `repeats` times, and each keeps its median: a slow spell of the host then
        // falls on all three rather than on one.
        const runs = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
        for (let r = 0; r < repeats; r++) for (const v of VARIANTS) runs.get(v)!.push(await perPairUs(url(), v, pairs, callers));
        const [none, envelope, rate] = VARIANTS.map((v) => runs.get(v)!.sort((a, b) => a - b)[Math.floor(repeats / 2)]!);
        rows.push([`${kind}, ${callers} caller${callers > 1 ? 's' : ''}`, `${us(none!)} µs`, `${us(envelope!)} µs`, `**${us(rate!)} µs**`, added(rate!, none!), added(rate!, envelope!)]);
      }
    }
  } finally {
    await stores.cleanup();
  }
  return [
    {
      title: 'Tenant governance: what admission with a rate limit adds per call',
      method: `One process, 1 or 32 concurrent callers looping reserve → settle on one hard task; time per pair over ${kinds.map(([k, , p]) => `${p.toLocaleString('en-US')} pairs (${k})`).join(', ')} after a warm-up of up to 500. "none": no tenant settings (no tenant lookup at all); "envelope": the task hangs under its tenant's day envelope (counted on both); "envelope + rate limit": the same with tpm and rpm limits no call reaches, so each call is admitted against the tenant's window before its reservation and corrected after its settlement. Each figure is the median of ${repeats} runs, the three variants taking turns on fresh stores. With 32 callers the time is wall time ÷ pairs (throughput), not one call's latency.`,
      header: ['store, callers', 'none', 'envelope', 'envelope + rate limit', 'rate limit vs none', 'rate limit vs envelope'],
      rows,
      notes: [
        'Admission and its correction are each one atomic change of the tenant’s rate row, apart from the reservation’s change of the task tree (on Redis Cluster the two are on different slots), so a rate limit costs two more store operations per call; callers of one process that are ready together share them (one batch, one commit).',
      ],
    },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  printSections(await run({ quick: process.argv.includes('--quick') }));
}
