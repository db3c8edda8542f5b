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

/**
 * Values as they arrive, then one Float64Array to sort. They collect in a plain array (V8 stores it unboxed, 8 bytes
 * a value) rather than a doubling Float64Array: each new ArrayBuffer counts as external memory, and its growth
 * forces full collections of the whole heap; with 10^7 records in memory that made calibration 3× slower.
 */
export class ValueBuffer {
  private readonly data: number[] = [];

  get length(): number {
    return this.data.length;
  }

  push(x: number): void {
    this.data.push(x);
  }

  /** A typed copy of the values, ready for a numeric sort. */
  values(): Float64Array {
    return Float64Array.from(this.data);
  }
}
