// Calibration: from finished runs, what each label (task type) spends, and the budget to give it next.
// Pure: records in, a Calibration out. Values go into typed arrays as they arrive, so a million records cost one
// pass plus one numeric sort per label.
import { DEFAULT_BUDGET_CONFIG } from '../budget/config.js';
import { EnvelopeError } from '../budget/errors.js';
import type { RunRecord, Unit } from '../budget/types.js';
import { histogramOf, type Histogram } from './histogram.js';
import { nearestRank, PERCENTILE_METHOD, ValueBuffer } from './percentiles.js';
import type { RunLine } from './run-line.js';
import { modelMatcher, type Upgrade } from './tokenizer.js';

export type Effort = 'high' | 'xhigh' | 'max';

export const EFFORT_RULE =
  'spread = p90 ÷ p50 of the runs used; exhaustion = share of budgeted runs that hit their budget. ' +
  'high (well-specified) when spread ≤ 1.5 and exhaustion < 5 %, budget at p75; ' +
  'xhigh (judgment) when spread ≤ 2.5 and exhaustion < 20 %, budget at p90; ' +
  'otherwise max (open-ended), budget at p99 and watch it.';

const EFFORT_PERCENTILE: Record<Effort, number> = { high: 75, xhigh: 90, max: 99 };

/** Headroom presets by where the runs were measured: test sessions lack production's accumulated context. */
export const HEADROOM = { production: 0.3, test: 0.5 } as const;

/** A run that used at least this share of its total counts as "near its budget". */
export const NEAR_TOTAL_SHARE = 0.95;

export interface CalibrateOptions {
  /** The percentile the recommendation is set at, or `auto`: the effort level's (p75, p90 or p99). */
  percentile: number | 'auto';
  /** Fraction added on top of the percentile (0.3 production, 0.5 for runs measured in tests). */
  headroom: number;
  /** No token recommendation goes below this (Anthropic's task_budget floor). */
  minimumTokens: number;
  upgrade: Upgrade | null;
  histogramBins: number;
}

export const DEFAULT_CALIBRATE_OPTIONS: CalibrateOptions = {
  percentile: 'auto',
  headroom: HEADROOM.production,
  minimumTokens: DEFAULT_BUDGET_CONFIG.minimumTokens,
  upgrade: null,
  histogramBins: 20,
};

export interface Percentiles {
  p50: number;
  p75: number;
  p90: number;
  p99: number;
}

export interface UpgradeCalibration extends Percentiles {
  from: string;
  to: string;
  multiplier: number;
  /** Runs of this label on the `from` model, whose spend was scaled. */
  runsScaled: number;
  /** The value at the chosen percentile after scaling. */
  atPercentile: number;
  recommendedTotal: number;
  /** The budget before the upgrade: the label's current total, or else this calibration's own recommendation. */
  budgetBefore: number;
  /** True when `budgetBefore` no longer covers the chosen percentile. */
  tooTight: boolean;
}

/**
 * Which runs the percentiles come from: runs measured without a budget when the label has any; else budgeted runs
 * that finished inside their budget; else (every run was cut short) the cut-short runs, as a lower bound.
 */
export type CalibrationSource = 'unbudgeted' | 'budgeted' | 'lower-bound';

export interface LabelCalibration extends Percentiles {
  label: string;
  unit: Unit;
  source: CalibrationSource;
  /** Runs the percentiles come from. */
  n: number;
  /** Runs read for this label, by kind; `cutShort` are budgeted runs their budget stopped (exhausted, paused, used ≥ total). */
  runs: { read: number; unbudgeted: number; budgeted: number; cutShort: number; failed: number };
  min: number;
  max: number;
  mean: number;
  /** Share of budgeted runs cut short by their budget (outcome exhausted or paused, or used ≥ total); null without any. */
  exhaustionRate: number | null;
  /** Share of budgeted runs that used ≥ 95 % of their total; null without any. */
  nearTotalShare: number | null;
  /** The median total of the label's budgeted runs: the budget it runs with today. */
  currentTotal: number | null;
  /** Share of the runs used that fit within `currentTotal`. */
  currentCoverage: number | null;
  effort: { level: Effort; percentile: number; spread: number | null };
  percentile: number;
  atPercentile: number;
  recommendedTotal: number;
  /** True when the minimum lifted the recommendation. */
  minimumApplied: boolean;
  upgrade: UpgradeCalibration | null;
  histogram: Histogram;
  warnings: string[];
}

export interface Calibration {
  method: string;
  effortRule: string;
  percentile: number | 'auto';
  headroom: number;
  minimumTokens: number;
  upgrade: Upgrade | null;
  /** Records read, and how many of them fed some percentile. */
  runsRead: number;
  runsUsed: number;
  labels: LabelCalibration[];
}

/** The spend of one kind of run, and with an upgrade the same spend scaled for runs on the `from` model. */
class Pool {
  readonly values = new ValueBuffer();
  readonly scaled: ValueBuffer | null;
  scaledRuns = 0;

  constructor(upgrade: boolean) {
    this.scaled = upgrade ? new ValueBuffer() : null;
  }

  push(used: number, scaledUsed: number, onFrom: boolean): void {
    this.values.push(used);
    this.scaled?.push(scaledUsed);
    if (onFrom) this.scaledRuns++;
  }
}

class Group {
  readonly unbudgeted: Pool;
  readonly budgeted: Pool;
  readonly cutShort: Pool;
  readonly totals = new ValueBuffer();
  read = 0;
  failed = 0;
  nearTotal = 0;

  constructor(
    readonly label: string,
    readonly unit: Unit,
    upgrade: boolean,
  ) {
    this.unbudgeted = new Pool(upgrade);
    this.budgeted = new Pool(upgrade);
    this.cutShort = new Pool(upgrade);
  }

  get budgetedAll(): number {
    return this.budgeted.values.length + this.cutShort.values.length;
  }
}

export function checkCalibrateOptions(o: CalibrateOptions): CalibrateOptions {
  if (o.percentile !== 'auto' && !(Number.isFinite(o.percentile) && o.percentile > 0 && o.percentile <= 100)) {
    throw new EnvelopeError('invalid_request', `percentile must be in (0, 100] or "auto", got ${o.percentile}`);
  }
  if (!(Number.isFinite(o.headroom) && o.headroom >= 0 && o.headroom <= 2)) {
    throw new EnvelopeError('invalid_request', `headroom must be a fraction from 0 to 2 (0.3 = 30 %), got ${o.headroom}`);
  }
  if (!(Number.isInteger(o.minimumTokens) && o.minimumTokens >= 0)) {
    throw new EnvelopeError('invalid_request', 'minimumTokens must be a whole number ≥ 0');
  }
  if (!(Number.isInteger(o.histogramBins) && o.histogramBins >= 1 && o.histogramBins <= 200)) {
    throw new EnvelopeError('invalid_request', 'histogramBins must be a whole number from 1 to 200');
  }
  return o;
}

/** Collects runs one at a time (from a stream or an array), then calibrates every label. */
export class Calibrator {
  readonly options: CalibrateOptions;
  private readonly groups = new Map<string, Group>();
  private read = 0;
  private readonly onFromModel: ((model: string) => boolean) | null;

  constructor(options: Partial<CalibrateOptions> = {}) {
    this.options = checkCalibrateOptions({ ...DEFAULT_CALIBRATE_OPTIONS, ...options });
    this.onFromModel = this.options.upgrade ? modelMatcher(this.options.upgrade.from) : null;
  }

  add(r: RunLine | RunRecord): void {
    this.read++;
    const key = r.unit === 'usd' ? `usd\u0000${r.label}` : r.label;
    let g = this.groups.get(key);
    if (!g) {
      g = new Group(r.label, r.unit, this.options.upgrade !== null);
      this.groups.set(key, g);
    }
    g.read++;
    // A failed run stopped for another reason than its budget: its spend says nothing about what the task needs.
    if (r.outcome === 'failed') {
      g.failed++;
      return;
    }
    const used = r.used;
    const up = this.options.upgrade;
    const onFrom = up !== null && r.model !== null && this.onFromModel!(r.model);
    // Tokens stay whole numbers after scaling.
    const scaledUsed = !onFrom ? used : r.unit === 'usd' ? used * up.multiplier : Math.round(used * up.multiplier);
    if (r.budgeted === false) {
      g.unbudgeted.push(used, scaledUsed, onFrom);
      return;
    }
    const total = r.total;
    const hasTotal = total !== null && total > 0;
    if (hasTotal) {
      g.totals.push(total);
      if (used >= NEAR_TOTAL_SHARE * total) g.nearTotal++;
    }
    // Cut short by its own budget: its spend is what the budget allowed, not what the task needed.
    const cutShort = r.outcome === 'exhausted' || r.outcome === 'paused' || (hasTotal && used >= total);
    (cutShort ? g.cutShort : g.budgeted).push(used, scaledUsed, onFrom);
  }

  addAll(records: Iterable<RunLine | RunRecord>): this {
    for (const r of records) this.add(r);
    return this;
  }

  finish(): Calibration {
    const labels = [...this.groups.values()]
      .map((g) => this.calibrateGroup(g))
      .filter((c): c is LabelCalibration => c !== null)
      .sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : a.unit < b.unit ? -1 : 1));
    return {
      method: PERCENTILE_METHOD,
      effortRule: EFFORT_RULE,
      percentile: this.options.percentile,
      headroom: this.options.headroom,
      minimumTokens: this.options.minimumTokens,
      upgrade: this.options.upgrade,
      runsRead: this.read,
      runsUsed: labels.reduce((s, l) => s + l.n, 0),
      labels,
    };
  }

  private calibrateGroup(g: Group): LabelCalibration | null {
    const o = this.options;
    const source: CalibrationSource =
      g.unbudgeted.values.length > 0 ? 'unbudgeted' : g.budgeted.values.length > 0 ? 'budgeted' : 'lower-bound';
    const pool = source === 'unbudgeted' ? g.unbudgeted : source === 'budgeted' ? g.budgeted : g.cutShort;
    const sorted = pool.values.values().sort();
    const n = sorted.length;
    if (n === 0) return null;
    const percentiles = percentilesOf(sorted);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += sorted[i]!;
    const budgetedAll = g.budgetedAll;
    const cutShort = g.cutShort.values.length;
    const exhaustionRate = budgetedAll > 0 ? cutShort / budgetedAll : null;
    const nearTotalShare = budgetedAll > 0 ? g.nearTotal / budgetedAll : null;
    const spread = percentiles.p50 > 0 ? percentiles.p90 / percentiles.p50 : null;
    const level = effortFor(spread, exhaustionRate ?? 0);
    const percentile = o.percentile === 'auto' ? EFFORT_PERCENTILE[level] : o.percentile;
    const atPercentile = nearestRank(sorted, percentile);
    const { total: recommendedTotal, minimumApplied } = recommend(atPercentile, g.unit, o);
    const currentTotal = g.totals.length > 0 ? nearestRank(g.totals.values().sort(), 50) : null;
    const currentCoverage = currentTotal === null ? null : countAtMost(sorted, currentTotal) / n;

    let upgrade: UpgradeCalibration | null = null;
    if (o.upgrade && pool.scaledRuns > 0) {
      const scaled = pool.scaled!.values().sort();
      const after = nearestRank(scaled, percentile);
      const budgetBefore = currentTotal ?? recommendedTotal;
      upgrade = {
        from: o.upgrade.from,
        to: o.upgrade.to,
        multiplier: o.upgrade.multiplier,
        runsScaled: pool.scaledRuns,
        ...percentilesOf(scaled),
        atPercentile: after,
        recommendedTotal: recommend(after, g.unit, o).total,
        budgetBefore,
        tooTight: budgetBefore < after,
      };
    }

    const warnings: string[] = [];
    if (source === 'budgeted') {
      warnings.push(
        cutShort > 0
          ? `from ${count(n)} budgeted runs that finished inside their budget; ${count(cutShort)} cut short by it are left out, so the largest needs are missing: measure runs without a budget (budgeted: false)`
          : `from ${count(n)} budgeted runs; runs measured without a budget (budgeted: false) would be a cleaner base`,
      );
    }
    if (source === 'lower-bound') {
      warnings.push(`every one of the ${count(n)} runs was cut short by its budget: these figures are lower bounds and the budget is too tight`);
    }
    if (n < 100) warnings.push(`only ${count(n)} runs: p99 is ${n < 2 ? 'the one run' : 'close to the largest run'}; collect more`);
    if (g.failed > 0) warnings.push(`${count(g.failed)} failed runs left out`);
    if (upgrade?.tooTight) {
      warnings.push(
        `after ${upgrade.from} → ${upgrade.to} (×${upgrade.multiplier}) the budget ${fmt(g.unit, upgrade.budgetBefore)} no longer covers p${percentile} (${fmt(g.unit, upgrade.atPercentile)}); raise it to ${fmt(g.unit, upgrade.recommendedTotal)}`,
      );
    }

    return {
      label: g.label,
      unit: g.unit,
      source,
      n,
      runs: { read: g.read, unbudgeted: g.unbudgeted.values.length, budgeted: budgetedAll, cutShort, failed: g.failed },
      ...percentiles,
      min: sorted[0]!,
      max: sorted[n - 1]!,
      mean: sum / n,
      exhaustionRate,
      nearTotalShare,
      currentTotal,
      currentCoverage,
      effort: { level, percentile: EFFORT_PERCENTILE[level], spread },
      percentile,
      atPercentile,
      recommendedTotal,
      minimumApplied,
      upgrade,
      histogram: histogramOf(sorted, o.histogramBins, percentiles.p99),
      warnings,
    };
  }
}

export function calibrate(records: Iterable<RunLine | RunRecord>, options: Partial<CalibrateOptions> = {}): Calibration {
  return new Calibrator(options).addAll(records).finish();
}

const percentilesOf = (sorted: Float64Array): Percentiles => ({
  p50: nearestRank(sorted, 50),
  p75: nearestRank(sorted, 75),
  p90: nearestRank(sorted, 90),
  p99: nearestRank(sorted, 99),
});

export function effortFor(spread: number | null, exhaustionRate: number): Effort {
  if (spread !== null && spread <= 1.5 && exhaustionRate < 0.05) return 'high';
  if (spread !== null && spread <= 2.5 && exhaustionRate < 0.2) return 'xhigh';
  return 'max';
}

/**
 * Percentile × (1 + headroom), rounded up: to the next 1,000 tokens, or the next cent. A token budget never
 * goes below the minimum.
 */
export function recommend(value: number, unit: Unit, o: CalibrateOptions): { total: number; minimumApplied: boolean } {
  const raw = value * (1 + o.headroom);
  if (unit === 'usd') return { total: Math.ceil(raw * 100 - 1e-9) / 100, minimumApplied: false };
  const rounded = Math.ceil(raw / 1_000 - 1e-9) * 1_000;
  return rounded < o.minimumTokens ? { total: o.minimumTokens, minimumApplied: true } : { total: rounded, minimumApplied: false };
}

/** How many sorted values are ≤ x (binary search). */
function countAtMost(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const count = (n: number): string => n.toLocaleString('en-US');

const fmt = (unit: Unit, x: number): string =>
  unit === 'usd' ? `$${x.toFixed(2)}` : `${Math.round(x).toLocaleString('en-US')} tokens`;
