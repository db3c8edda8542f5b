// Histograms of what runs spent: equal-width bins from the smallest run to the largest, or to p99 when a long
// tail would squash every other bin into one (the rest is counted as overflow). Plus a terminal rendering with
// the percentile markers, which the dashboard draws from the same bins.

export interface Histogram {
  /** Bin edges, ascending; bin i holds values in [edges[i], edges[i+1]) and the last bin includes its top edge. */
  edges: number[];
  counts: number[];
  /** Values above the last edge. */
  overflow: number;
}

/** A tail is "long" when the largest run is more than this many times p99. */
const TAIL_FACTOR = 1.5;

export function histogramOf(sorted: Float64Array, bins: number, p99: number): Histogram {
  const n = sorted.length;
  if (n === 0) return { edges: [], counts: [], overflow: 0 };
  const lo = sorted[0]!;
  const max = sorted[n - 1]!;
  const hi = max > p99 * TAIL_FACTOR ? p99 : max;
  const binCount = hi > lo ? bins : 1;
  const width = hi > lo ? (hi - lo) / binCount : 1;
  const edges = Array.from({ length: binCount + 1 }, (_, i) => (i === binCount ? hi : lo + i * width));
  const counts = new Array<number>(binCount).fill(0);
  let overflow = 0;
  for (let i = 0; i < n; i++) {
    const b = binIndex(lo, hi, binCount, sorted[i]!);
    if (b < 0) overflow++;
    else counts[b]!++;
  }
  return { edges, counts, overflow };
}

/** The bin a value falls in, or -1 above the top edge. One formula for counting and for placing markers. */
function binIndex(lo: number, hi: number, binCount: number, x: number): number {
  if (x > hi) return -1;
  if (!(hi > lo)) return 0;
  return Math.max(0, Math.min(binCount - 1, Math.floor((x - lo) / ((hi - lo) / binCount))));
}

export interface Marker {
  name: string;
  value: number;
}

/**
 * One line per bin: range, bar, count, and the percentiles that fall in it (`◂ p50 p75`).
 * `format` prints a value (tokens or USD).
 */
export function renderHistogram(h: Histogram, markers: Marker[], format: (x: number) => string, barWidth = 40): string {
  if (h.counts.length === 0) return '  (no runs)';
  const peak = Math.max(...h.counts, h.overflow, 1);
  const bar = (c: number): string => {
    const w = (c / peak) * barWidth;
    return c > 0 && w < 1 ? '▏' : '█'.repeat(Math.round(w));
  };
  const last = h.counts.length - 1;
  const marks = new Map<number, string[]>();
  for (const m of markers) {
    const i = binIndex(h.edges[0]!, h.edges[last + 1]!, h.counts.length, m.value);
    marks.set(i, [...(marks.get(i) ?? []), m.name]);
  }
  const ranges = h.counts.map((_, i) => `${format(h.edges[i]!)} – ${format(h.edges[i + 1]!)}`);
  if (h.overflow > 0) ranges.push(`> ${format(h.edges[last + 1]!)}`);
  const rangeWidth = Math.max(...ranges.map((r) => r.length));
  const counts = [...h.counts, ...(h.overflow > 0 ? [h.overflow] : [])];
  const countWidth = Math.max(...counts.map((c) => c.toLocaleString('en-US').length));
  return counts
    .map((c, i) => {
      const where = i > last ? -1 : i;
      const tag = marks.get(where);
      const row = `  ${ranges[i]!.padStart(rangeWidth)}  ${bar(c).padEnd(barWidth)}  ${c.toLocaleString('en-US').padStart(countWidth)}`;
      return tag ? `${row}  ◂ ${tag.join(' ')}` : row;
    })
    .join('\n');
}
