// Calibration time for 10^5, 10^6 and 10^7 synthetic run records, and JSONL parsing of 10^6.
import { mkdtempSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { calibrate } from '../src/insight/calibrate.js';
import { readRunsJsonl, type RunInput } from '../src/insight/run-records.js';
import type { BenchOptions, BenchSection } from './section.js';

const LABELS = ['bug-fix', 'feature', 'refactor', 'docs', 'tests', 'triage', 'research', 'qa'];

function synthetic(n: number): RunInput[] {
  let x = 42;
  const out = new Array<RunInput>(n);
  for (let i = 0; i < n; i++) {
    x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
    const label = LABELS[x % LABELS.length]!;
    out[i] = { task: `t${i}`, label, model: 'claude-sonnet-4-6', unit: 'tokens', total: 100_000, used: 5_000 + (x % 95_000), costUsd: null, calls: 10, durationMs: 1_000, outcome: x % 17 === 0 ? 'exhausted' : 'completed', budgeted: x % 5 !== 0 };
  }
  return out;
}

export async function run(opts: BenchOptions): Promise<BenchSection[]> {
  const sizes = opts.quick ? [100_000, 1_000_000] : [100_000, 1_000_000, 10_000_000];
  const rows: (string | number)[][] = [];
  for (const n of sizes) {
    const runs = synthetic(n);
    const t0 = performance.now();
    calibrate(runs);
    const ms = performance.now() - t0;
    rows.push([n.toLocaleString('en-US'), 'in memory', `**${(ms / 1000).toFixed(2)} s**`, `${((ms * 1e6) / n).toFixed(0)} ns`]);
  }
  const file = join(mkdtempSync(join(tmpdir(), 'envelope-bench-')), 'runs.jsonl');
  const out = createWriteStream(file);
  for (const r of synthetic(1_000_000)) if (!out.write(`${JSON.stringify(r)}\n`)) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
  const t0 = performance.now();
  const { runs } = await readRunsJsonl(file);
  calibrate(runs);
  const ms = performance.now() - t0;
  rows.push(['1,000,000', 'JSONL file, parsed and calibrated', `**${(ms / 1000).toFixed(2)} s**`, `${((ms * 1e6) / 1_000_000).toFixed(0)} ns`]);
  return [
    {
      title: 'Calibration: run records per second',
      method: `\`calibrate()\` over synthetic run records (8 labels, 20 % unbudgeted, 6 % cut short): group per label into arrays, sort each as a Float64Array, take nearest-rank percentiles. The JSONL row includes reading and parsing the file line by line.`,
      header: ['records', 'input', 'time', 'per record'],
      rows,
      notes: ['Goal (SPEC): 10^6 run records in under 5 s. Growth is n log n from the per-label sorts.'],
    },
  ];
}
