// Reserve+settle pairs per second on the shared stores (Redis, PostgreSQL): 1 and 4 processes, one hot budget and
// budgets spread over many task trees. Runs on its own with `node dist/bench/stores.js [--quick]`.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Ledger } from '../src/ledger/ledger.js';
import { openStore } from '../src/store/open.js';
import { TestStores } from '../test/helpers/stores.js';
import { printSections, type BenchOptions, type BenchSection } from './section.js';

const WORKER = fileURLToPath(new URL('./stores-worker.js', import.meta.url));

interface Scenario {
  label: string;
  processes: number;
  callers: number;
  /** true: every caller on one task (a child and its parent); false: each caller its own two-level tree. */
  hot: boolean;
}

const SCENARIOS: Scenario[] = [
  { label: '1 process, 1 caller, one budget', processes: 1, callers: 1, hot: true },
  { label: '1 process, 32 callers, one hot budget', processes: 1, callers: 32, hot: true },
  { label: '4 processes × 32 callers, one hot budget', processes: 4, callers: 32, hot: true },
  { label: '1 process, 32 callers, 32 budgets', processes: 1, callers: 32, hot: false },
  { label: '4 processes × 32 callers, 128 budgets', processes: 4, callers: 32, hot: false },
];

/** Creates the task trees and returns, per process, the task ids its callers use. */
async function setup(url: string, s: Scenario): Promise<string[][]> {
  const ledger = new Ledger(await openStore(url));
  const trees = s.hot ? 1 : s.processes * s.callers;
  const leaves: string[] = [];
  for (let i = 0; i < trees; i++) {
    await ledger.createTask({ id: `root-${i}`, total: 1e12, policy: 'hard' });
    await ledger.createTask({ id: `leaf-${i}`, total: 1e11, policy: 'hard', parent: `root-${i}` });
    leaves.push(`leaf-${i}`);
  }
  await ledger.shutdown();
  return Array.from({ length: s.processes }, (_, p) => (s.hot ? leaves : leaves.slice(p * s.callers, (p + 1) * s.callers)));
}

async function measure(url: string, s: Scenario, warmupMs: number, durationMs: number): Promise<number> {
  const tasks = await setup(url, s);
  const children = tasks.map((ids) => fork(WORKER, [url, ids.join(','), String(s.callers), String(warmupMs), String(durationMs)]));
  const replies = children.map((c) => new Promise<unknown>((resolve, reject) => {
    c.on('message', (m) => m !== 'ready' && resolve(m));
    c.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`bench worker exited with ${code}`))));
  }));
  await Promise.all(children.map((c) => new Promise((resolve) => c.once('message', resolve))));
  for (const c of children) c.send('go');
  const results = (await Promise.all(replies)) as Array<{ pairs: number; seconds: number }>;
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((resolve) => c.once('exit', resolve)) : undefined)));
  return results.reduce((sum, r) => sum + r.pairs / r.seconds, 0);
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export const run = (opts: BenchOptions): Promise<BenchSection[]> => measureStores(opts, ['redis', 'postgres']);

type Kind = 'redis' | 'postgres';

async function measureStores(opts: BenchOptions, kinds: Kind[]): Promise<BenchSection[]> {
  const warmupMs = opts.quick ? 200 : 1_000;
  const durationMs = opts.quick ? 500 : 3_000;
  const repeats = opts.quick ? 1 : 3;
  const stores = new TestStores();
  const rows: (string | number)[][] = [];
  // Each figure is the median of `repeats` runs, each on fresh keys: on this shared 2-core machine one run can land
  // in a slow spell of the host (±25 % seen between runs).
  const median = async (url: () => string, s: Scenario): Promise<string> => {
    const runs: number[] = [];
    for (let i = 0; i < repeats; i++) runs.push(await measure(url(), s, warmupMs, durationMs));
    runs.sort((a, b) => a - b);
    return repeats > 1 ? `${fmt(runs[Math.floor(repeats / 2)]!)} (${fmt(runs[0]!)}–${fmt(runs.at(-1)!)})` : fmt(runs[0]!);
  };
  try {
    for (const s of SCENARIOS) {
      const redis = kinds.includes('redis') ? await median(() => stores.redisUrl(), s) : '—';
      const postgres = kinds.includes('postgres') ? await median(() => stores.postgresUrl(), s) : '—';
      rows.push([s.label, redis, postgres]);
    }
  } finally {
    await stores.cleanup();
  }
  return [
    {
      title: 'Shared stores: reserve + settle pairs per second',
      method: `Forked worker processes, each with its own store connection and a number of concurrent callers looping reserve → settle on a two-level task (a hard child under a hard parent, both charged). Pairs counted for ${durationMs / 1000} s after a ${warmupMs / 1000} s warm-up, summed over the processes; each figure is the median of ${repeats} such runs (lowest–highest in brackets). "One hot budget": every caller of every process on the same child task; "N budgets": each caller its own tree. Redis 7 and PostgreSQL 15 run on the same 2-core machine as the workers.`,
      header: ['setup', 'Redis pairs/s', 'PostgreSQL pairs/s'],
      rows,
      notes: [
        'Goals (issue 5): Redis ≥ 15,000 pairs/s across 4 processes; PostgreSQL ≥ 3,000.',
      ],
    },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // `--store=redis` or `--store=postgres` measures one store only.
  const only = process.argv.find((a) => a.startsWith('--store='))?.slice('--store='.length) as Kind | undefined;
  const sections = await measureStores({ quick: process.argv.includes('--quick') }, only ? [only] : ['redis', 'postgres']);
  printSections(sections);
}
