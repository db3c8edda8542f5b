// Percentiles by the nearest-rank method: the p-th percentile of n sorted values is the value at rank
// ceil(p/100 × n) (1-based). It is always a value that was observed, and it reads directly as a budget:
// "p % of runs used at most this much". (Hyndman & Fan definition 1; numpy's method="inverted_cdf".)

export const PERCENTILE_METHOD = 'nearest-rank (Hyndman & Fan type 1: the value at rank ceil(p/100 × n))';

/** Sorts in place, ascending (typed-array sort is numeric and native). */
export function sortValues(values: Float64Array): Float64Array {
  return values.sort();
}

/** The p-th percentile (0 < p ≤ 100) of values sorted ascending; NaN when there are none. */
export function nearestRank(sorted: Float64Array, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  // The small epsilon keeps p/100 × n from landing one rank high through float error (e.g. 0.07 × 100).
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n - 1e-9)));
  return sorted[rank - 1]!;
}

/** A Float64Array that grows by doubling, so a million values are appended without a JS array in between. */
export class ValueBuffer {
  private data: Float64Array;
  length = 0;

  constructor(capacity = 64) {
    this.data = new Float64Array(capacity);
  }

  push(x: number): void {
    if (this.length === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = x;
  }

  /** A copy of exactly the values pushed. */
  values(): Float64Array {
    return this.data.slice(0, this.length);
  }
}
