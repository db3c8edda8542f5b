// Calibration and cost per label, from the run records. The numbers come from `GET /envelope/v1/calibration`
// when the gateway has it; without it (404) the page computes them from `GET /envelope/v1/runs` with the rules
// below. Histograms always need the raw runs, so /runs is read either way.

export const PERCENTILES = [50, 75, 90, 99];
/** Fallback recommendation: p90 × (1 + headroom), rounded up, never below the minimum (SPEC §5). */
export const FALLBACK = { percentile: 90, headroom: 0.3, minimumTokens: 20_000 };
export const COVERAGE_TARGET = 3;

/** Nearest-rank percentile of ascending values. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1];
}

export function recommend(unit, sorted) {
  const base = percentile(sorted, FALLBACK.percentile) * (1 + FALLBACK.headroom);
  if (unit === 'usd') return Math.ceil(base * 100) / 100;
  return Math.max(FALLBACK.minimumTokens, Math.ceil(base / 1_000) * 1_000);
}

/** One group per label and unit: the used amounts (ascending) and the cost figures. */
export function groupRuns(runs) {
  const groups = new Map();
  for (const r of runs) {
    const key = `${r.label}\u0000${r.unit}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { label: r.label, unit: r.unit, values: [], runs: 0, tokens: 0, costUsd: 0, exhausted: 0, nearFull: 0 }));
    g.values.push(r.used);
    g.runs++;
    g.tokens += r.tokensUsed ?? 0;
    g.costUsd += r.costUsd ?? 0;
    if (r.outcome === 'exhausted' || r.outcome === 'paused') g.exhausted++;
    if (r.total > 0 && r.used >= 0.95 * r.total) g.nearFull++;
  }
  for (const g of groups.values()) g.values.sort((a, b) => a - b);
  return [...groups.values()].sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : a.unit < b.unit ? -1 : 1));
}

/**
 * The per-label figures of `GET /calibration`, whatever envelope they come in: an array, or `{labels: [...]}`,
 * `{calibration: [...]}`; fields p50/p75/p90/p99 and `recommended` (or `recommendedTotal`).
 */
export function serverCalibration(json) {
  const list = Array.isArray(json) ? json : (json?.labels ?? json?.calibration ?? json?.rows ?? []);
  const byLabel = new Map();
  for (const row of Array.isArray(list) ? list : []) {
    if (typeof row?.label !== 'string') continue;
    const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
    byLabel.set(row.label, {
      p50: num(row.p50),
      p75: num(row.p75),
      p90: num(row.p90),
      p99: num(row.p99),
      recommended: num(row.recommended ?? row.recommendedTotal ?? row.recommendation?.total),
    });
  }
  return byLabel;
}

/** Calibration per group: from the server where it has the label, else computed here. */
export function calibrate(groups, server) {
  return groups.map((g) => {
    const s = server?.get(g.label);
    const mine = {
      p50: percentile(g.values, 50),
      p75: percentile(g.values, 75),
      p90: percentile(g.values, 90),
      p99: percentile(g.values, 99),
      recommended: recommend(g.unit, g.values),
    };
    const pick = (k) => s?.[k] ?? mine[k];
    return {
      ...g,
      fromServer: s !== undefined,
      p50: pick('p50'),
      p75: pick('p75'),
      p90: pick('p90'),
      p99: pick('p99'),
      recommended: pick('recommended'),
    };
  });
}

/** Histogram bins of ascending `values`, spanning the runs and the lines: { starts, counts, width }. */
export function histogram(values, lines) {
  const marks = lines.filter((v) => v !== null);
  // Sorted values: first and last are the extremes (no spread: run lists can be long).
  const low = Math.min(values[0] ?? 0, ...marks);
  const high = Math.max(values.at(-1) ?? 0, ...marks);
  const bins = Math.min(24, Math.max(8, Math.ceil(Math.sqrt(values.length)) * 2));
  const width = niceStep(Math.max(high - low, Math.abs(high) * 0.1, 1e-6) / bins);
  const start = Math.max(0, Math.floor(low / width) - 1) * width;
  // 1e-9: bin edges are decimal fractions, which floating point may put a hair off.
  const n = Math.floor((high - start) / width + 1e-9) + 2;
  const counts = new Array(n).fill(0);
  for (const v of values) counts[Math.min(n - 1, Math.floor((v - start) / width + 1e-9))]++;
  return { starts: counts.map((_, i) => start + i * width), counts, width };
}

function niceStep(raw) {
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

/** Coverage of a price per run against the mean cost of a run; null without a price or cost. */
export function coverage(priceUsd, costPerRunUsd) {
  if (!(priceUsd > 0) || !(costPerRunUsd > 0)) return null;
  return priceUsd / costPerRunUsd;
}
