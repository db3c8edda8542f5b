// Calibration and cost per label, from the run records. Percentiles, recommended budgets and histogram bins
// come from `GET /envelope/v1/calibration` when the gateway has it (the insight layer); without it (404) the page
// computes them from `GET /envelope/v1/runs` with the rules below. Run counts and costs always come from /runs.

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

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const keyOf = (label, unit) => `${label}\u0000${unit}`;

/**
 * The per-label rows of `GET /calibration` ({method, labels: [{label, unit, n, p50…p99, recommendedTotal,
 * percentile, exhaustionRate, nearTotalShare, histogram: {edges, counts, overflow}}]}), keyed by label and unit.
 */
export function serverCalibration(json) {
  const byKey = new Map();
  for (const row of Array.isArray(json?.labels) ? json.labels : []) {
    if (typeof row?.label !== 'string') continue;
    const h = row.histogram;
    const bins = Array.isArray(h?.edges) && Array.isArray(h?.counts) && h.edges.length === h.counts.length + 1 ? h : null;
    byKey.set(keyOf(row.label, row.unit ?? 'tokens'), {
      n: num(row.n),
      p50: num(row.p50),
      p75: num(row.p75),
      p90: num(row.p90),
      p99: num(row.p99),
      recommended: num(row.recommendedTotal),
      percentile: num(row.percentile),
      exhaustionRate: num(row.exhaustionRate),
      nearTotalShare: num(row.nearTotalShare),
      histogram: bins ? { edges: bins.edges, counts: bins.counts, overflow: num(bins.overflow) ?? 0 } : null,
      warnings: Array.isArray(row.warnings) ? row.warnings.filter((w) => typeof w === 'string') : [],
    });
  }
  return { method: typeof json?.method === 'string' ? json.method : null, byKey };
}

/** Calibration per group: the server's where it has the label, else computed here from the runs. */
export function calibrate(groups, server) {
  return groups.map((g) => {
    const s = server?.byKey.get(keyOf(g.label, g.unit));
    if (s) {
      return { ...g, fromServer: true, ...s, histogram: s.histogram ?? histogram(g.values, [s.p50, s.p75, s.p90, s.p99, s.recommended]) };
    }
    const mine = {
      n: g.values.length,
      p50: percentile(g.values, 50),
      p75: percentile(g.values, 75),
      p90: percentile(g.values, 90),
      p99: percentile(g.values, 99),
      recommended: recommend(g.unit, g.values),
      percentile: FALLBACK.percentile,
      exhaustionRate: g.exhausted / g.runs,
      nearTotalShare: g.nearFull / g.runs,
      warnings: [],
    };
    return { ...g, fromServer: false, ...mine, histogram: histogram(g.values, [mine.p50, mine.p75, mine.p90, mine.p99, mine.recommended]) };
  });
}

/** Equal-width bins of ascending `values`, spanning the runs and the lines: {edges, counts, overflow}. */
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
  return { edges: [...counts.map((_, i) => start + i * width), start + n * width], counts, overflow: 0 };
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
