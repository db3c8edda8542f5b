// Run records as JSONL (SPEC §5): one object a line. Unknown fields are kept and ignored; a bad line is reported
// with its line number and skipped, never fatal.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { RunRecord } from '../budget/types.js';

/** The fields calibration and pricing read; everything else a record carries is passed through untouched. */
export interface RunInput {
  task: string;
  label: string;
  model: string | null;
  unit: 'tokens' | 'usd';
  total: number | null;
  used: number;
  costUsd: number | null;
  calls: number | null;
  durationMs: number | null;
  outcome: 'completed' | 'exhausted' | 'paused' | 'failed';
  /** False: measured without a budget, so it was never cut short by one. */
  budgeted: boolean;
}

export interface BadLine {
  line: number;
  reason: string;
}

const OUTCOMES = new Set(['completed', 'exhausted', 'paused', 'failed']);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** One JSONL line as a run, or the reason it is not one. */
export function parseRunLine(text: string): RunInput | string {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const r = o as Record<string, unknown>;
  if (typeof r.label !== 'string' || r.label === '') return 'label: a non-empty string is required';
  const used = num(r.used);
  if (used === null || used < 0) return 'used: a number ≥ 0 is required';
  const unit = r.unit ?? 'tokens';
  if (unit !== 'tokens' && unit !== 'usd') return 'unit: tokens or usd';
  const outcome = r.outcome ?? 'completed';
  if (typeof outcome !== 'string' || !OUTCOMES.has(outcome)) return 'outcome: completed, exhausted, paused or failed';
  return {
    task: typeof r.task === 'string' ? r.task : '',
    label: r.label,
    model: typeof r.model === 'string' ? r.model : null,
    unit,
    total: num(r.total),
    used,
    costUsd: num(r.costUsd),
    calls: num(r.calls),
    durationMs: num(r.durationMs),
    outcome: outcome as RunInput['outcome'],
    budgeted: r.budgeted !== false,
  };
}

/** Streams a JSONL file line by line. */
export async function readRunsJsonl(path: string): Promise<{ runs: RunInput[]; bad: BadLine[] }> {
  const runs: RunInput[] = [];
  const bad: BadLine[] = [];
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() === '') continue;
    const r = parseRunLine(text);
    if (typeof r === 'string') bad.push({ line, reason: r });
    else runs.push(r);
  }
  return { runs, bad };
}

export const runFromRecord = (r: RunRecord): RunInput => ({
  task: r.task,
  label: r.label,
  model: r.model,
  unit: r.unit,
  total: r.total,
  used: r.used,
  costUsd: r.costUsd,
  calls: r.calls,
  durationMs: r.durationMs,
  outcome: r.outcome,
  budgeted: r.budgeted,
});
