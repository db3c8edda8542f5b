// Calibration: from run records to recommended budgets per label (the seeds' workflow: measure without budgets,
// take p50/p75/p90, set the budget at a percentile plus 30–50 % headroom, revalidate on model upgrades).
//
// Percentiles use the nearest-rank method: the p-th percentile of n sorted values is the value at rank
// ⌈p/100 × n⌉ (1-based). It is always an observed run, never an interpolated one.
import type { RunInput } from './run-records.js';

export interface CalibrateOptions {
  /** The percentile the recommendation starts from (default 90). */
  percentile: number;
  /** Headroom over it: 0.3 for budgets measured in production, 0.5 when measured in tests. */
  headroom: number;
  /** Smallest total recommended for a token budget. */
  minimumTokens: number;
  /** A tokenizer change between models: the multiplier applied to every recommendation, and shown per label. */
  modelUpgrade: { from: string; to: string; multiplier: number } | null;
}

export const DEFAULT_CALIBRATE_OPTIONS: CalibrateOptions = { percentile: 90, headroom: 0.3, minimumTokens: 20_000, modelUpgrade: null };

/** Tokenizer multipliers known for model upgrades (the same text can count up to 1.35× the tokens). */
export const TOKENIZER_MULTIPLIERS: Record<string, number> = {
  'claude-opus-4-6:claude-opus-4-7': 1.35,
  'claude-sonnet-4-5:claude-opus-4-7': 1.35,
  'claude-sonnet-4-6:claude-opus-4-7': 1.35,
};

export type Effort = 'high' | 'xhigh' | 'max';

export interface LabelCalibration {
  label: string;
  unit: 'tokens' | 'usd';
  /** Runs the percentiles come from. */
  n: number;
  /**
   * Which runs: unbudgeted ones when the label has any, else budgeted runs that were not cut short, else (every
   * run cut short by its budget) those, as a lower bound: the budget is too tight and the figures understate need.
   */
  source: 'unbudgeted' | 'budgeted' | 'lower-bound';
  /** Runs left out because their own budget cut them short (exhausted or paused). */
  censored: number;
  p50: number;
  p75: number;
  p90: number;
  p99: number;
  /** Of the budgeted runs: the share that ran out, and the share that used ≥ 95 % of their total. */
  exhaustionRate: number;
  nearTotalRate: number;
  /** The median total the label's budgeted runs had, to compare with the recommendation. */
  currentTotal: number | null;
  recommended: number;
  /** True when the current budget is below the recommendation (after any model-upgrade multiplier). */
  tooTight: boolean;
  effort: Effort;
  /** Values for a histogram: the used figures of the runs measured, sorted. */
  sorted: Float64Array;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/**
 * Effort by spread: a label whose p90 stays within 1.5× its p50 is well specified (high, budget at p75); within
 * 2.5× it takes judgment (xhigh, p90); wider is open-ended exploration (max, generous budget, watch it).
 */
export function effortFor(p50: number, p90: number): Effort {
  const spread = p50 > 0 ? p90 / p50 : Number.POSITIVE_INFINITY;
  return spread <= 1.5 ? 'high' : spread <= 2.5 ? 'xhigh' : 'max';
}

const roundUp = (x: number, unit: 'tokens' | 'usd'): number => (unit === 'tokens' ? Math.ceil(x / 1_000) * 1_000 : Math.ceil(x * 100) / 100);

export function calibrate(runs: Iterable<RunInput>, options: Partial<CalibrateOptions> = {}): LabelCalibration[] {
  const o = { ...DEFAULT_CALIBRATE_OPTIONS, ...options };
  interface Group { unit: 'tokens' | 'usd'; unbudgeted: number[]; budgeted: number[]; cutShort: number[]; censored: number; budgetedAll: number; exhausted: number; near: number; totals: number[] }
  const groups = new Map<string, Group>();
  for (const r of runs) {
    const key = `${r.label}\u0000${r.unit}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { unit: r.unit, unbudgeted: [], budgeted: [], cutShort: [], censored: 0, budgetedAll: 0, exhausted: 0, near: 0, totals: [] }));
    if (!r.budgeted) {
      g.unbudgeted.push(r.used);
      continue;
    }
    g.budgetedAll++;
    if (r.total !== null) {
      g.totals.push(r.total);
      if (r.used >= 0.95 * r.total) g.near++;
    }
    if (r.outcome === 'exhausted' || r.outcome === 'paused') {
      g.exhausted++;
      g.censored++;
      g.cutShort.push(r.used);
    } else g.budgeted.push(r.used);
  }
  const multiplier = o.modelUpgrade?.multiplier ?? 1;
  const out: LabelCalibration[] = [];
  for (const [key, g] of groups) {
    // Every run cut short: what they used is only a lower bound of what the task needs, so say so.
    const source = g.unbudgeted.length > 0 ? 'unbudgeted' : g.budgeted.length > 0 ? 'budgeted' : 'lower-bound';
    const sorted = Float64Array.from(source === 'unbudgeted' ? g.unbudgeted : source === 'budgeted' ? g.budgeted : g.cutShort).sort();
    const [p50, p75, p90, p99] = [50, 75, 90, 99].map((p) => percentile(sorted, p)) as [number, number, number, number];
    let recommended = roundUp(percentile(sorted, o.percentile) * (1 + o.headroom) * multiplier, g.unit);
    if (g.unit === 'tokens') recommended = Math.max(recommended, o.minimumTokens);
    const totals = Float64Array.from(g.totals).sort();
    const currentTotal = totals.length ? percentile(totals, 50) : null;
    out.push({
      label: key.split('\u0000')[0]!,
      unit: g.unit,
      n: sorted.length,
      source,
      censored: source === 'unbudgeted' ? 0 : g.censored,
      p50,
      p75,
      p90,
      p99,
      exhaustionRate: g.budgetedAll ? g.exhausted / g.budgetedAll : 0,
      nearTotalRate: g.budgetedAll ? g.near / g.budgetedAll : 0,
      currentTotal,
      recommended,
      tooTight: source === 'lower-bound' || (currentTotal !== null && currentTotal < recommended),
      effort: effortFor(p50, p90),
      sorted,
    });
  }
  return out.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
}

/** A terminal histogram of one label's runs, with the percentile lines marked. */
export function histogram(c: LabelCalibration, bins = 12, width = 36): string[] {
  if (c.n === 0) return ['  (no runs)'];
  const lo = c.sorted[0]!;
  const hi = c.sorted[c.sorted.length - 1]!;
  if (hi === lo) return [`  ${Math.round(lo).toLocaleString('en-US').padStart(10)} │${'█'.repeat(width)} ${String(c.n).padStart(6)}  ◀ p50 p75 p90 p99`];
  const step = hi > lo ? (hi - lo) / bins : 1;
  const counts = new Array<number>(bins).fill(0);
  for (const v of c.sorted) counts[Math.min(bins - 1, Math.floor((v - lo) / step))]!++;
  const max = Math.max(...counts);
  const marks: Array<[string, number]> = [['p50', c.p50], ['p75', c.p75], ['p90', c.p90], ['p99', c.p99]];
  return counts.map((n, i) => {
    const from = lo + i * step;
    const here = marks.filter(([, v]) => v >= from && (v < from + step || (i === bins - 1 && v <= hi))).map(([m]) => m);
    const bar = '█'.repeat(Math.round((n / max) * width)).padEnd(width);
    return `  ${Math.round(from).toLocaleString('en-US').padStart(10)} │${bar} ${String(n).padStart(6)}${here.length ? `  ◀ ${here.join(' ')}` : ''}`;
  });
}
