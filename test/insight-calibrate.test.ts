// Calibration: percentiles against a reference computed here from the definition, recommendations, the choice of
// runs (unbudgeted first, failed left out), the effort rule, and the model-upgrade flag. Exact values throughout.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { calibrate, effortFor, type LabelCalibration, type Percentiles } from '../src/insight/calibrate.js';
import { nearestRank } from '../src/insight/percentiles.js';
import type { RunLine } from '../src/insight/run-line.js';
import { resolveUpgrade } from '../src/insight/tokenizer.js';
import { EnvelopeError } from '../src/budget/errors.js';

/**
 * Reference percentile from the definition, with integer arithmetic only: the smallest observed x such that
 * at least p % of the values are ≤ x, i.e. count(v ≤ x) × 100 ≥ p × n. (No rank formula, no typed arrays.)
 */
function referencePercentile(values: number[], p: number): number {
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  for (const x of distinct) {
    const atMost = values.filter((v) => v <= x).length;
    if (atMost * 100 >= p * values.length) return x;
  }
  throw new Error('unreachable');
}

function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648;
    return s / 2_147_483_648;
  };
}

const line = (over: Partial<RunLine> & { used: number }): RunLine => ({
  task: 't',
  label: 'bug-fix',
  model: 'claude-opus-4-6',
  unit: 'tokens',
  total: 100_000,
  costUsd: 0,
  calls: 1,
  durationMs: 1,
  outcome: 'completed',
  budgeted: false,
  ...over,
});

const pcts = (x: Percentiles): Percentiles => ({ p50: x.p50, p75: x.p75, p90: x.p90, p99: x.p99 });

const only = (ls: LabelCalibration[], label: string): LabelCalibration => ls.find((l) => l.label === label)!;

describe('nearest-rank percentiles', () => {
  it('match worked examples', () => {
    const ten = Float64Array.from([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]).sort();
    assert.deepEqual([50, 75, 90, 99, 100].map((p) => nearestRank(ten, p)), [5, 8, 9, 10, 10]);
    // The textbook example: 15, 20, 35, 40, 50.
    const five = Float64Array.from([15, 20, 35, 40, 50]);
    assert.deepEqual([5, 30, 40, 50, 100].map((p) => nearestRank(five, p)), [15, 20, 20, 35, 50]);
    assert.ok(Number.isNaN(nearestRank(new Float64Array(0), 50)));
  });

  it('match the reference on random data with ties, for many sizes and percentiles', () => {
    const rand = lcg(42);
    for (const n of [1, 2, 3, 7, 10, 99, 100, 101, 1_000, 4_999]) {
      const values = Array.from({ length: n }, () => 20_000 + Math.floor(rand() * 500) * 97);
      const c = calibrate(values.map((used) => line({ used })));
      const l = only(c.labels, 'bug-fix');
      for (const p of [50, 75, 90, 99] as const) {
        assert.equal(l[`p${p}`], referencePercentile(values, p), `n=${n} p${p}`);
      }
      for (const p of [1, 12.5, 33, 66.6, 95, 99.9, 100]) {
        assert.equal(nearestRank(Float64Array.from(values).sort(), p), referencePercentile(values, p), `n=${n} p${p}`);
      }
      assert.equal(l.min, Math.min(...values));
      assert.equal(l.max, Math.max(...values));
      assert.equal(l.histogram.counts.reduce((a, b) => a + b, 0) + l.histogram.overflow, n);
    }
  });
});

describe('calibrate', () => {
  it('gives exact figures and a recommendation at p × (1 + headroom), rounded up to 1,000, never below the minimum', () => {
    // 1..20 thousand tokens, one run each.
    const runs = Array.from({ length: 20 }, (_, i) => line({ used: (i + 1) * 1_000 }));
    const c = calibrate(runs, { percentile: 90, headroom: 0.3 });
    const l = only(c.labels, 'bug-fix');
    assert.deepEqual(pcts(l), { p50: 10_000, p75: 15_000, p90: 18_000, p99: 20_000 });
    assert.equal(l.n, 20);
    assert.equal(l.source, 'unbudgeted');
    assert.equal(l.mean, 10_500);
    assert.equal(l.atPercentile, 18_000);
    assert.equal(l.recommendedTotal, 24_000); // 18,000 × 1.3 = 23,400 → 24,000
    assert.equal(l.minimumApplied, false);
    assert.equal(calibrate(runs, { percentile: 50, headroom: 0.5 }).labels[0]!.recommendedTotal, 20_000); // 15,000 → minimum
    assert.equal(calibrate(runs, { percentile: 50, headroom: 0.5 }).labels[0]!.minimumApplied, true);
    assert.equal(calibrate(runs, { percentile: 99, headroom: 0.5 }).labels[0]!.recommendedTotal, 30_000);
    assert.equal(calibrate(runs, { percentile: 75, headroom: 0.5, minimumTokens: 30_000 }).labels[0]!.recommendedTotal, 30_000);
    assert.match(c.method, /^nearest-rank/);
  });

  it('learns from runs measured without a budget when a label has them, and says so', () => {
    const runs = [
      ...[30_000, 40_000, 50_000, 60_000].map((used) => line({ used, budgeted: false })),
      // Budgeted runs, two of them cut short at their 40,000 total: not used for the percentiles.
      ...[25_000, 39_000, 40_000, 40_000].map((used) =>
        line({ used, budgeted: true, total: 40_000, outcome: used >= 40_000 ? 'exhausted' : 'completed' }),
      ),
      line({ used: 900_000, outcome: 'failed' }),
    ];
    const l = only(calibrate(runs, { percentile: 75 }).labels, 'bug-fix');
    assert.equal(l.source, 'unbudgeted');
    assert.equal(l.n, 4);
    assert.deepEqual(l.runs, { read: 9, unbudgeted: 4, budgeted: 4, cutShort: 2, failed: 1 });
    assert.deepEqual(pcts(l), { p50: 40_000, p75: 50_000, p90: 60_000, p99: 60_000 });
    assert.equal(l.exhaustionRate, 0.5); // 2 of 4 budgeted runs
    assert.equal(l.nearTotalShare, 0.75); // 39,000, 40,000, 40,000 are ≥ 95 % of 40,000
    assert.equal(l.currentTotal, 40_000);
    assert.equal(l.currentCoverage, 0.5); // 30,000 and 40,000 fit in 40,000
    assert.deepEqual(l.warnings, ['only 4 runs: p99 is close to the largest run; collect more', '1 failed runs left out']);

    // Without unbudgeted runs: the budgeted runs that finished inside their budget, never the cut-short ones.
    const budgetedOnly = only(calibrate(runs.filter((r) => r.budgeted)).labels, 'bug-fix');
    assert.equal(budgetedOnly.source, 'budgeted');
    assert.equal(budgetedOnly.n, 2);
    assert.deepEqual(pcts(budgetedOnly), { p50: 25_000, p75: 39_000, p90: 39_000, p99: 39_000 });
    assert.equal(budgetedOnly.exhaustionRate, 0.5);
    assert.match(budgetedOnly.warnings[0]!, /^from 2 budgeted runs that finished inside their budget; 2 cut short by it are left out/);

    // A run that used its whole total is cut short even when its outcome says completed; a paused one too.
    const edge = only(
      calibrate([
        line({ used: 50_000, budgeted: true, total: 50_000 }),
        line({ used: 45_000, budgeted: true, total: 50_000, outcome: 'paused' }),
        line({ used: 44_000, budgeted: true, total: 50_000 }),
      ]).labels,
      'bug-fix',
    );
    assert.deepEqual([edge.source, edge.n, edge.p99, edge.runs.cutShort], ['budgeted', 1, 44_000, 2]);

    // Every run cut short: those runs, marked as a lower bound.
    const all = only(calibrate([line({ used: 20_000, budgeted: true, total: 20_000, outcome: 'exhausted' })]).labels, 'bug-fix');
    assert.deepEqual([all.source, all.n, all.p50, all.exhaustionRate], ['lower-bound', 1, 20_000, 1]);
    assert.match(all.warnings[0]!, /lower bounds and the budget is too tight/);
  });

  it('keeps labels and units apart', () => {
    const runs = [
      line({ used: 30_000, label: 'a' }),
      line({ used: 0.25, label: 'a', unit: 'usd', total: 1 }),
      line({ used: 0.75, label: 'a', unit: 'usd', total: 1 }),
      line({ used: 50_000, label: 'b' }),
    ];
    const c = calibrate(runs, { percentile: 50, headroom: 0.3 });
    assert.deepEqual(
      c.labels.map((l) => [l.label, l.unit, l.n, l.p50, l.recommendedTotal]),
      [
        ['a', 'tokens', 1, 30_000, 39_000],
        ['a', 'usd', 2, 0.25, 0.33], // 0.25 × 1.3 = 0.325 → next cent; no token minimum for USD
        ['b', 'tokens', 1, 50_000, 65_000],
      ],
    );
    assert.equal(c.runsRead, 4);
    assert.equal(c.runsUsed, 4);
  });

  it('suggests effort from spread and exhaustion, and auto picks its percentile', () => {
    assert.equal(effortFor(1.5, 0.049), 'high');
    assert.equal(effortFor(1.51, 0), 'xhigh');
    assert.equal(effortFor(1.2, 0.05), 'xhigh');
    assert.equal(effortFor(2.5, 0.19), 'xhigh');
    assert.equal(effortFor(2.51, 0), 'max');
    assert.equal(effortFor(1.1, 0.2), 'max');
    assert.equal(effortFor(null, 0), 'max');

    const tight = Array.from({ length: 100 }, (_, i) => line({ used: 40_000 + i * 100, label: 'tight' }));
    const wide = Array.from({ length: 100 }, (_, i) => line({ used: 10_000 + i * 1_000, label: 'wide' }));
    const c = calibrate([...tight, ...wide]);
    const t = only(c.labels, 'tight');
    assert.deepEqual([t.effort.level, t.percentile, t.atPercentile, t.recommendedTotal], ['high', 75, 47_400, 62_000]);
    assert.equal(t.effort.spread, 48_900 / 44_900);
    const w = only(c.labels, 'wide');
    // p50 = 59,000, p90 = 99,000: spread 1.68 → xhigh at p90; 99,000 × 1.3 = 128,700 → 129,000.
    assert.deepEqual([w.effort.level, w.percentile, w.atPercentile, w.recommendedTotal], ['xhigh', 90, 99_000, 129_000]);
  });

  it('scales runs on the old model by the tokenizer multiplier and flags budgets now too tight', () => {
    const upgrade = resolveUpgrade('claude-opus-4-6:claude-opus-4-7');
    assert.deepEqual(upgrade, { from: 'claude-opus-4-6', to: 'claude-opus-4-7', multiplier: 1.35, basis: 'table' });
    const runs = [
      // Runs today under a 45,000 budget, measured unbudgeted at 20..39 thousand, half of them on the old model.
      ...Array.from({ length: 20 }, (_, i) =>
        line({ used: (20 + i) * 1_000, model: i % 2 ? 'claude-opus-4-6-20260101' : 'claude-opus-4-7' }),
      ),
      line({ used: 30_000, budgeted: true, total: 45_000 }),
      // A label that never ran on the old model is not affected.
      line({ used: 30_000, label: 'other', model: 'claude-opus-4-7' }),
    ];
    const c = calibrate(runs, { percentile: 90, headroom: 0.3, upgrade });
    const l = only(c.labels, 'bug-fix');
    assert.equal(l.atPercentile, 37_000);
    assert.equal(l.currentTotal, 45_000);
    // Odd thousands scaled: 21..39 × 1.35; sorted, the 18th of 20 is 47,250 (35,000 × 1.35).
    const scaled = Array.from({ length: 20 }, (_, i) => ((20 + i) % 2 ? (20 + i) * 1_350 : (20 + i) * 1_000));
    assert.equal(l.upgrade!.atPercentile, referencePercentile(scaled, 90));
    assert.equal(l.upgrade!.atPercentile, 47_250);
    assert.deepEqual(pcts(l.upgrade!), {
      p50: referencePercentile(scaled, 50),
      p75: referencePercentile(scaled, 75),
      p90: 47_250,
      p99: referencePercentile(scaled, 99),
    });
    assert.equal(l.upgrade!.runsScaled, 10);
    assert.equal(l.upgrade!.budgetBefore, 45_000);
    assert.equal(l.upgrade!.tooTight, true);
    assert.equal(l.upgrade!.recommendedTotal, 62_000); // 47,250 × 1.3 = 61,425
    assert.match(l.warnings.at(-1)!, /the budget 45,000 tokens no longer covers p90 \(47,250 tokens\); raise it to 62,000 tokens/);
    assert.equal(only(c.labels, 'other').upgrade, null);

    // With a small multiplier the same budget still covers p90: the 18th of 20 is 38,500 (35,000 × 1.1).
    const mild = calibrate(runs, { percentile: 90, headroom: 0.3, upgrade: resolveUpgrade('claude-opus-4-6:claude-opus-4-7=1.1') });
    assert.equal(only(mild.labels, 'bug-fix').upgrade!.atPercentile, 38_500);
    assert.equal(only(mild.labels, 'bug-fix').upgrade!.tooTight, false);
  });

  it('resolves tokenizer multipliers and refuses unknown pairs and bad input', () => {
    assert.equal(resolveUpgrade('claude-sonnet-4-5:claude-opus-5').multiplier, 1.35);
    assert.equal(resolveUpgrade('claude-sonnet-4-5:claude-opus-5').basis, 'tokenizer change');
    assert.equal(resolveUpgrade('claude-opus-4-7:claude-opus-4-8').multiplier, 1);
    assert.equal(resolveUpgrade('claude-sonnet-4-5:claude-sonnet-4-6').multiplier, 1);
    assert.equal(resolveUpgrade('gpt-5:claude-opus-4-7=1.2').multiplier, 1.2);
    assert.equal(resolveUpgrade('a:b', { 'a:b': 1.1 }).multiplier, 1.1);
    for (const bad of ['gpt-5:claude-opus-4-7', 'opus', 'a:b=0.5', 'a:b=9']) {
      assert.throws(() => resolveUpgrade(bad), (e: unknown) => e instanceof EnvelopeError && e.code === 'invalid_request', bad);
    }
    assert.throws(() => calibrate([], { percentile: 0 }), /percentile must be/);
    assert.throws(() => calibrate([], { headroom: -0.1 }), /headroom must be/);
  });
});
