// One run record as JSONL carries it (SPEC §5): the fields calibration and pricing read, checked by hand rather
// than with a schema library because a million lines must parse in about a second. Unknown fields stay on the
// object untouched, so a record written by a newer version passes through an older one.
import type { Outcome, RunRecord, Unit, Usage } from '../budget/types.js';

export interface RunLine {
  task: string;
  label: string;
  model: string | null;
  unit: Unit;
  /** The budget the run had (display units); null for a run measured without a budget. */
  total: number | null;
  /** What the run spent (display units: tokens, or USD for a `usd` run). */
  used: number;
  /** What the ledger charged (cache-aware); null when the line does not say. */
  costUsd: number | null;
  calls: number;
  durationMs: number;
  outcome: Outcome;
  /** False for a run measured without a budget: it was never cut short, so calibration prefers it. */
  budgeted: boolean;
  /** All tokens of the run, whatever its unit; store records always carry it. */
  tokensUsed?: number;
  /** Optional usage breakdown; lets the report price a line that has no `costUsd`. */
  usage?: Usage;
  [extra: string]: unknown;
}

const OUTCOMES: ReadonlySet<string> = new Set(['completed', 'exhausted', 'paused', 'failed']);

/** A store record is already a valid line; this only narrows the type. */
export const fromRunRecord = (r: RunRecord): RunLine => r as unknown as RunLine;

/**
 * Checks one parsed JSON value. Returns the line (the same object, defaults filled in) or the reason it is bad.
 * Required: `label`, `used`. Defaults: task "", unit tokens, budgeted true, outcome completed, counts 0.
 */
export function checkRunLine(v: unknown): RunLine | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  if (o.task === undefined) o.task = '';
  else if (typeof o.task !== 'string') return 'task must be a string';
  if (typeof o.label !== 'string' || o.label === '') return 'label must be a non-empty string';
  if (!isCount(o.used)) return 'used must be a number ≥ 0';
  if (o.unit === undefined) o.unit = 'tokens';
  else if (o.unit !== 'tokens' && o.unit !== 'usd') return 'unit must be "tokens" or "usd"';
  if (o.model === undefined) o.model = null;
  else if (o.model !== null && typeof o.model !== 'string') return 'model must be a string or null';
  if (o.budgeted === undefined) o.budgeted = true;
  else if (typeof o.budgeted !== 'boolean') return 'budgeted must be true or false';
  if (o.total === undefined || o.total === null) o.total = null;
  else if (!isCount(o.total)) return 'total must be a number ≥ 0 or null';
  if (o.costUsd === undefined || o.costUsd === null) o.costUsd = null;
  else if (!isCount(o.costUsd)) return 'costUsd must be a number ≥ 0 or null';
  for (const k of ['calls', 'durationMs'] as const) {
    if (o[k] === undefined) o[k] = 0;
    else if (!isCount(o[k])) return `${k} must be a number ≥ 0`;
  }
  if (o.tokensUsed !== undefined && !isCount(o.tokensUsed)) return 'tokensUsed must be a number ≥ 0';
  if (o.outcome === undefined) o.outcome = 'completed';
  else if (typeof o.outcome !== 'string' || !OUTCOMES.has(o.outcome)) {
    return 'outcome must be completed, exhausted, paused or failed';
  }
  if (o.usage !== undefined) {
    const u = o.usage as Record<string, unknown> | null;
    if (typeof u !== 'object' || u === null) return 'usage must be an object';
    for (const k of ['inputTokens', 'outputTokens', 'cacheWriteTokens', 'cacheReadTokens']) {
      if (u[k] === undefined) u[k] = 0;
      else if (!isCount(u[k])) return `usage.${k} must be a number ≥ 0`;
    }
  }
  return o as RunLine;
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;

/** The tokens a line spent: `tokensUsed`, else `used` of a token run, else its usage breakdown; null if unknown. */
export function tokensOf(r: RunLine): number | null {
  if (typeof r.tokensUsed === 'number') return r.tokensUsed;
  if (r.unit === 'tokens') return r.used;
  if (r.usage) return r.usage.inputTokens + r.usage.outputTokens + r.usage.cacheWriteTokens + r.usage.cacheReadTokens;
  return null;
}
