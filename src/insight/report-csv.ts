// The pricing report's label × model table as CSV (RFC 4180: a field with a comma, quote or line break is quoted,
// quotes doubled), for `envelope report --csv` and `GET /envelope/v1/report?format=csv`.
import type { PricingReport } from './report.js';

type Cell = string | number | boolean | null;

export function csv(header: string[], rows: Cell[][]): string {
  const field = (v: Cell): string => {
    const s = v === null ? '' : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(field).join(',')).join('\n');
}

export function reportCsv(r: PricingReport): string {
  return csv(
    ['label', 'model', 'runs', 'tokens', 'cost_usd', 'cost_per_run_usd', 'unpriced_runs', 'price_usd', 'coverage', 'target'],
    r.rows.map((x) => [x.label, x.model, x.runs, x.tokens, x.costUsd, x.costPerRunUsd, x.unpricedRuns, x.priceUsd, x.coverage, r.target]),
  );
}
