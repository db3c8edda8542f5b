// The pricing report: what each label costs per run, per model, and whether its price covers that cost by the
// target ratio (default 3×). Pure: records in, a PricingReport out. Money is summed in integer micro-USD so the
// totals are exact whatever the order of the records.
import { EnvelopeError } from '../budget/errors.js';
import type { RunRecord } from '../budget/types.js';
import { costMicros, priceFor, type PriceTable } from '../metering/prices.js';
import { tokensOf, type RunLine } from './run-line.js';

export const USD_MICROS = 1_000_000;
export const DEFAULT_COVERAGE_TARGET = 3;

/** A price tier: a run of `tokens` tokens at a flat rate, and what it sells for. */
export interface TierSpec {
  name: string;
  tokens: number;
  /** Sale price per run; without one the report suggests target × cost. */
  priceUsd: number | null;
}

/** The seeds' example: 5,000-token quick scan ≈ $0.015, 50,000-token deep analysis ≈ $0.15 priced $0.50 (3.3×). */
export const DEFAULT_TIERS: TierSpec[] = [
  { name: 'quick scan', tokens: 5_000, priceUsd: null },
  { name: 'deep analysis', tokens: 50_000, priceUsd: 0.5 },
];

/** The seeds' flat compute rate: Sonnet input pricing, $3 per million tokens. */
export const DEFAULT_TIER_RATE_USD_PER_MTOK = 3;

export interface ReportOptions {
  /** Sale price per run, by label. */
  prices: Record<string, number>;
  /** Price ÷ cost per run a label should reach. */
  target: number;
  /** Prices a record that has a usage breakdown but no `costUsd`. */
  priceTable: PriceTable;
  tiers: TierSpec[];
  tierRateUsdPerMtok: number;
}

export interface ModelRow {
  label: string;
  model: string;
  runs: number;
  tokens: number;
  costUsd: number;
  costPerRunUsd: number | null;
  tokensPerRun: number;
  /** Runs with neither a cost nor a usage breakdown on a priced model: left out of the cost. */
  unpricedRuns: number;
  /** The label's price per run, and price ÷ cost per run (null without a price or a cost). */
  priceUsd: number | null;
  coverage: number | null;
}

export interface LabelRow extends Omit<ModelRow, 'model'> {
  models: string[];
  /** True when the price falls short of the target; null without a price. */
  short: boolean | null;
}

export interface TierRow {
  name: string;
  tokens: number;
  rateUsdPerMtok: number;
  costUsd: number;
  priceUsd: number | null;
  coverage: number | null;
  /** target × cost: the least price that reaches the target. */
  suggestedPriceUsd: number;
}

export interface PricingReport {
  target: number;
  runs: number;
  tokens: number;
  costUsd: number;
  rows: ModelRow[];
  labels: LabelRow[];
  /** Labels priced with `--price` that fall short of the target. */
  short: string[];
  /** Labels given a price that no run has. */
  unknownPriced: string[];
  tiers: TierRow[];
}

interface Sum {
  runs: number;
  tokens: number;
  micros: number;
  unpriced: number;
}

const emptySum = (): Sum => ({ runs: 0, tokens: 0, micros: 0, unpriced: 0 });

/** Collects runs one at a time, then builds the report. */
export class PricingAccumulator {
  private readonly byModel = new Map<string, Map<string, Sum>>();
  private readonly priceTable: PriceTable;

  constructor(priceTable: PriceTable) {
    this.priceTable = priceTable;
  }

  add(r: RunLine | RunRecord): void {
    const model = r.model ?? '(none)';
    let models = this.byModel.get(r.label);
    if (!models) this.byModel.set(r.label, (models = new Map()));
    let s = models.get(model);
    if (!s) models.set(model, (s = emptySum()));
    s.runs++;
    s.tokens += tokensOf(r as RunLine) ?? 0;
    const micros = this.microsOf(r as RunLine);
    if (micros === null) s.unpriced++;
    else s.micros += micros;
  }

  /** What the ledger charged; else the usage breakdown priced cache-aware; null when neither is known. */
  private microsOf(r: RunLine): number | null {
    if (r.costUsd !== null && r.costUsd !== undefined) return Math.round(r.costUsd * USD_MICROS);
    const price = priceFor(r.model, this.priceTable);
    return r.usage && price ? costMicros(r.usage, price) : null;
  }

  finish(o: ReportOptions): PricingReport {
    checkReportOptions(o);
    const rows: ModelRow[] = [];
    const labels: LabelRow[] = [];
    const all = emptySum();
    for (const label of [...this.byModel.keys()].sort()) {
      const models = this.byModel.get(label)!;
      const priceUsd = o.prices[label] ?? null;
      const sum = emptySum();
      for (const model of [...models.keys()].sort()) {
        const s = models.get(model)!;
        rows.push({ label, model, ...figures(s, priceUsd) });
        add(sum, s);
      }
      add(all, sum);
      const f = figures(sum, priceUsd);
      labels.push({
        label,
        models: [...models.keys()].sort(),
        ...f,
        short: priceUsd === null ? null : f.coverage === null ? false : f.coverage < o.target,
      });
    }
    return {
      target: o.target,
      runs: all.runs,
      tokens: all.tokens,
      costUsd: all.micros / USD_MICROS,
      rows,
      labels,
      short: labels.filter((l) => l.short).map((l) => l.label),
      unknownPriced: Object.keys(o.prices).filter((l) => !this.byModel.has(l)).sort(),
      tiers: tierTable(o.tiers, o.tierRateUsdPerMtok, o.target),
    };
  }
}

export function pricingReport(records: Iterable<RunLine | RunRecord>, o: ReportOptions): PricingReport {
  const acc = new PricingAccumulator(o.priceTable);
  for (const r of records) acc.add(r);
  return acc.finish(o);
}

function add(into: Sum, s: Sum): void {
  into.runs += s.runs;
  into.tokens += s.tokens;
  into.micros += s.micros;
  into.unpriced += s.unpriced;
}

/** Money as integer micro-USD until the last division, so a price of exactly 3× cost is 3, not 2.9999999999999996. */
function figures(s: Sum, priceUsd: number | null) {
  const priced = s.runs - s.unpriced;
  return {
    runs: s.runs,
    tokens: s.tokens,
    costUsd: s.micros / USD_MICROS,
    // Per priced run: an unpriced run would otherwise pull the average toward $0.
    costPerRunUsd: priced > 0 ? s.micros / priced / USD_MICROS : null,
    tokensPerRun: s.runs > 0 ? s.tokens / s.runs : 0,
    unpricedRuns: s.unpriced,
    priceUsd,
    coverage: priceUsd !== null && s.micros > 0 ? (Math.round(priceUsd * USD_MICROS) * priced) / s.micros : null,
  };
}

export function tierTable(tiers: TierSpec[], rateUsdPerMtok: number, target: number): TierRow[] {
  return tiers.map((t) => {
    // tokens × USD per million tokens = micro-USD.
    const costMicros = t.tokens * rateUsdPerMtok;
    return {
      name: t.name,
      tokens: t.tokens,
      rateUsdPerMtok,
      costUsd: costMicros / USD_MICROS,
      priceUsd: t.priceUsd,
      coverage: t.priceUsd !== null && costMicros > 0 ? Math.round(t.priceUsd * USD_MICROS) / costMicros : null,
      suggestedPriceUsd: (costMicros * target) / USD_MICROS,
    };
  });
}

function checkReportOptions(o: ReportOptions): void {
  if (!(Number.isFinite(o.target) && o.target > 0)) {
    throw new EnvelopeError('invalid_request', `coverage target must be a positive number, got ${o.target}`);
  }
  for (const [label, usd] of Object.entries(o.prices)) {
    if (!(Number.isFinite(usd) && usd >= 0)) {
      throw new EnvelopeError('invalid_request', `price for ${label} must be a number of USD ≥ 0`);
    }
  }
  if (!(Number.isFinite(o.tierRateUsdPerMtok) && o.tierRateUsdPerMtok >= 0)) {
    throw new EnvelopeError('invalid_request', 'tier rate must be USD per million tokens ≥ 0');
  }
}

/** `LABEL=USD` (the value may start with `$`). */
export function parsePriceArg(arg: string): [string, number] {
  const m = /^(.+)=\$?([0-9]*\.?[0-9]+)$/.exec(arg);
  if (!m) throw new EnvelopeError('invalid_request', `--price takes LABEL=USD, e.g. bug-fix=0.50; got "${arg}"`);
  return [m[1]!, Number(m[2])];
}

/** `NAME=TOKENS` or `NAME=TOKENS@USD`. */
export function parseTierArg(arg: string): TierSpec {
  const m = /^(.+)=([0-9_,]+)(?:@\$?([0-9]*\.?[0-9]+))?$/.exec(arg);
  const tokens = m ? Number(m[2]!.replace(/[_,]/g, '')) : Number.NaN;
  if (!m || !Number.isInteger(tokens) || tokens <= 0) {
    throw new EnvelopeError('invalid_request', `--tier takes NAME=TOKENS or NAME=TOKENS@USD, e.g. "deep analysis=50000@0.50"; got "${arg}"`);
  }
  return { name: m[1]!, tokens, priceUsd: m[3] === undefined ? null : Number(m[3]) };
}
