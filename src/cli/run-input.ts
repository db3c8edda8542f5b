// Where `calibrate` and `report` read run records: a JSONL file (`--from`, `-` for stdin) streamed batch by batch,
// or the ledger store's finished tasks. Bad JSONL lines are collected for the output, never fatal.
import { Option } from 'commander';
import type { RunRecord } from '../budget/types.js';
import { jsonlSource, runLineBatches, type LineIssue } from '../insight/jsonl-reader.js';
import { fromRunRecord, type RunLine } from '../insight/run-line.js';
import { Ledger } from '../ledger/ledger.js';
import { openStore, redactUrl } from '../store/open.js';
import { intArg } from './options.js';

export interface RunInputOptions {
  from?: string;
  store: string;
  label?: string;
  limit: number;
}

export interface RunInputSummary {
  /** Where the records came from, safe to print. */
  source: string;
  records: number;
  badLines: number;
  /** The first bad lines, with their line numbers. */
  issues: LineIssue[];
}

const ISSUES_KEPT = 20;

export const fromOption = (): Option =>
  new Option('--from <file.jsonl>', 'read run records from a JSONL file (- for stdin) instead of the store');
export const limitOption = (): Option =>
  new Option('--limit <n>', 'at most this many records from the store, newest').argParser(intArg('--limit')).default(1_000_000);

/** Feeds every record to `sink`; with `label`, only that label's. */
export async function readRuns(o: RunInputOptions, sink: (r: RunLine) => void): Promise<RunInputSummary> {
  const summary: RunInputSummary = { source: '', records: 0, badLines: 0, issues: [] };
  const take = (r: RunLine): void => {
    if (o.label !== undefined && r.label !== o.label) return;
    summary.records++;
    sink(r);
  };
  if (o.from !== undefined) {
    summary.source = o.from === '-' ? 'stdin' : o.from;
    const onIssue = (issue: LineIssue): void => {
      summary.badLines++;
      if (summary.issues.length < ISSUES_KEPT) summary.issues.push(issue);
    };
    for await (const batch of runLineBatches(jsonlSource(o.from), onIssue)) for (const r of batch) take(r);
    return summary;
  }
  summary.source = redactUrl(o.store);
  const ledger = new Ledger(await openStore(o.store));
  try {
    const runs: RunRecord[] = await ledger.runs({ label: o.label, limit: o.limit });
    for (const r of runs) take(fromRunRecord(r));
  } finally {
    await ledger.shutdown();
  }
  return summary;
}

/** Bad lines for a person: on stderr, so stdout stays clean for --json and --csv. */
export function printIssues(s: RunInputSummary): void {
  for (const i of s.issues) process.stderr.write(`envelope: ${s.source} line ${i.line}: ${i.message} (skipped)\n`);
  if (s.badLines > s.issues.length) {
    process.stderr.write(`envelope: … and ${s.badLines - s.issues.length} more bad lines skipped\n`);
  }
}
