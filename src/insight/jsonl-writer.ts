// Writes run records as JSONL, one object a line: the SPEC §5 fields first in their documented order, then any
// other field the record has (store records carry tenant, models, tokensUsed, parent, closedAtMs).
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { RunRecord } from '../budget/types.js';
import type { RunLine } from './run-line.js';

const SPEC_ORDER = ['task', 'label', 'model', 'unit', 'total', 'used', 'costUsd', 'calls', 'durationMs', 'outcome', 'budgeted'];

export function runLineText(r: RunRecord | RunLine): string {
  const src = r as unknown as Record<string, unknown>;
  const ordered: Record<string, unknown> = {};
  for (const k of SPEC_ORDER) if (k in src) ordered[k] = src[k];
  for (const k of Object.keys(src)) if (!(k in ordered)) ordered[k] = src[k];
  return JSON.stringify(ordered);
}

/** Writes every record, waiting when the stream is full; returns how many lines were written. */
export async function writeRunLines(
  records: Iterable<RunRecord | RunLine> | AsyncIterable<RunRecord | RunLine>,
  out: Writable,
): Promise<number> {
  let n = 0;
  for await (const r of records) {
    if (!out.write(`${runLineText(r)}\n`)) await once(out, 'drain');
    n++;
  }
  return n;
}
