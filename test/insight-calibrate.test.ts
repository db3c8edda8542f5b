// Calibration: percentiles against an independent reference, censoring, model upgrades, effort, JSONL input.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { calibrate, percentile } from '../src/insight/calibrate.js';
import { readRunsJsonl, type RunInput } from '../src/insight/run-records.js';

const run = (label: string, used: number, extra: Partial<RunInput> = {}): RunInput => ({
  task: `${label}-${used}`, label, model: 'claude-sonnet-4-6', unit: 'tokens', total: 100_000, used, costUsd: null, calls: null, durationMs: null, outcome: 'completed', budgeted: true, ...extra,
});

/** Reference: nearest rank computed the long way, by counting how many values are ≤ each candidate. */
function reference(values: number[], p: number): number {
  const need = (p / 100) * values.length;
  return [...values].sort((a, b) => a - b).find((v) => values.filter((w) => w <= v).length >= need)!;
}

describe('calibrate', () => {
  it('computes nearest-rank percentiles that match an independent reference', () => {
    // A fixed pseudo-random sample with ties: 1,000 runs.
    let x = 12_345;
    const values = Array.from({ length: 1_000 }, () => {
      x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
      return 10_000 + (x % 40_000) - ((x % 40_000) % 250);
    });
    const [c] = calibrate(values.map((v) => run('bug-fix', v)));
    for (const p of [50, 75, 90, 99] as const) assert.equal(c![`p${p}`], reference(values, p), `p${p}`);
    assert.equal(percentile(Float64Array.from([1, 2, 3, 4]), 50), 2);
    assert.equal(percentile(Float64Array.from([1, 2, 3, 4]), 51), 3);
    assert.equal(percentile(Float64Array.from([7]), 99), 7);
  });

  it('recommends p90 × (1 + headroom), rounded up, never under the minimum, and flags budgets too tight', () => {
    const runs = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100].map((k) => run('feature', k * 1_000, { total: 100_000 }));
    const [c] = calibrate(runs, { headroom: 0.3 });
    assert.deepEqual([c!.n, c!.p50, c!.p90, c!.recommended, c!.currentTotal, c!.tooTight], [10, 50_000, 90_000, 117_000, 100_000, true]);
    const [small] = calibrate([run('docs', 3_000), run('docs', 4_000)], { headroom: 0.5 });
    assert.equal(small!.recommended, 20_000);
    const [upgraded] = calibrate(runs, { headroom: 0.3, modelUpgrade: { from: 'claude-opus-4-6', to: 'claude-opus-4-7', multiplier: 1.35 } });
    assert.equal(upgraded!.recommended, 158_000);
  });

  it('does not learn from runs cut short by their own budget', () => {
    const runs = [
      run('refactor', 40_000, { outcome: 'exhausted', used: 50_000, total: 50_000 }),
      run('refactor', 30_000),
      run('refactor', 32_000),
      run('refactor', 49_000, { total: 50_000 }),
    ];
    const [c] = calibrate(runs);
    assert.deepEqual([c!.source, c!.n, c!.censored, c!.p99, c!.exhaustionRate, c!.nearTotalRate], ['budgeted', 3, 1, 49_000, 0.25, 0.5]);
    // Unbudgeted measurements win when a label has them.
    const [u] = calibrate([...runs, run('refactor', 80_000, { budgeted: false, total: null }), run('refactor', 90_000, { budgeted: false, total: null })]);
    assert.deepEqual([u!.source, u!.n, u!.p50, u!.p99], ['unbudgeted', 2, 80_000, 90_000]);
    const [all] = calibrate([run('qa', 20_000, { outcome: 'exhausted', total: 20_000 })]);
    assert.deepEqual([all!.source, all!.p50, all!.tooTight], ['lower-bound', 20_000, true]);
  });

  it('suggests effort by spread', () => {
    const tight = calibrate([100, 110, 120, 130].map((k) => run('a', k * 1_000)))[0]!;
    const wide = calibrate([10, 20, 30, 100].map((k) => run('b', k * 1_000)))[0]!;
    assert.deepEqual([tight.effort, wide.effort], ['high', 'max']);
  });

  it('reads JSONL, keeping unknown fields out of the way and skipping bad lines with their numbers', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'envelope-runs-')), 'runs.jsonl');
    writeFileSync(
      file,
      [
        '{"task":"t1","label":"bug-fix","model":"claude-sonnet-4-6","unit":"tokens","total":50000,"used":31250,"costUsd":0.12,"calls":9,"durationMs":41000,"outcome":"completed","budgeted":true,"team":"x"}',
        'not json',
        '',
        '{"label":"bug-fix","used":-3}',
        '{"label":"bug-fix","used":12000,"budgeted":false}',
        '[1,2]',
      ].join('\n'),
    );
    const { runs, bad } = await readRunsJsonl(file);
    assert.deepEqual(runs.map((r) => [r.used, r.budgeted]), [[31_250, true], [12_000, false]]);
    assert.deepEqual(bad, [
      { line: 2, reason: 'not valid JSON' },
      { line: 4, reason: 'used: a number ≥ 0 is required' },
      { line: 6, reason: 'not a JSON object' },
    ]);
  });
});
