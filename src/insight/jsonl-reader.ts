// Reads run records from JSONL as a stream: one chunk at a time, never the whole file in memory. A bad line is
// reported with its 1-based line number and skipped; it never stops the read.
import { createReadStream } from 'node:fs';
import { checkRunLine, type RunLine } from './run-line.js';

export interface LineIssue {
  /** 1-based line number in the input. */
  line: number;
  message: string;
}

export type IssueSink = (issue: LineIssue) => void;

/** Longer lines are reported and skipped rather than buffered without bound. */
export const LINE_CHARS_MAX = 1_000_000;

/**
 * Yields the good records of each chunk as one batch (a per-record yield would cost an await per line).
 * Blank lines are skipped silently; `\r\n` endings are accepted.
 */
export async function* runLineBatches(
  source: AsyncIterable<string | Buffer>,
  onIssue: IssueSink,
): AsyncGenerator<RunLine[]> {
  const decoder = new TextDecoder('utf-8');
  let carry = '';
  let lineNo = 0;
  // True while skipping the rest of an over-long line.
  let skipping = false;

  const take = (text: string, out: RunLine[]): void => {
    lineNo++;
    const line = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      onIssue({ line: lineNo, message: `not valid JSON (${(e as Error).message})` });
      return;
    }
    const checked = checkRunLine(value);
    if (typeof checked === 'string') onIssue({ line: lineNo, message: checked });
    else out.push(checked);
  };

  for await (const chunk of source) {
    const text = carry + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    const out: RunLine[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      if (skipping) {
        skipping = false;
        lineNo++;
      } else take(text.slice(start, nl), out);
      start = nl + 1;
    }
    carry = text.slice(start);
    if (carry.length > LINE_CHARS_MAX) {
      if (!skipping) onIssue({ line: lineNo + 1, message: `line longer than ${LINE_CHARS_MAX} characters` });
      skipping = true;
      carry = '';
    }
    if (out.length) yield out;
  }
  carry += decoder.decode();
  if (skipping) return;
  const out: RunLine[] = [];
  if (carry !== '') take(carry, out);
  if (out.length) yield out;
}

/** Every good record, one at a time. */
export async function* readRunLines(source: AsyncIterable<string | Buffer>, onIssue: IssueSink): AsyncGenerator<RunLine> {
  for await (const batch of runLineBatches(source, onIssue)) yield* batch;
}

/** A JSONL file as a chunk source (`-` reads standard input). */
export function jsonlSource(path: string): AsyncIterable<string | Buffer> {
  return path === '-' ? process.stdin : createReadStream(path, { highWaterMark: 1 << 20 });
}
