// The WHERE clauses of listings, for the SQL stores: one text for SQLite and PostgreSQL, with each store's own
// placeholders (`arg` records a value and returns its placeholder: `?`, or `$n`).
import type { EventQuery, RunQuery, TaskQuery } from './store.js';

export type Arg = (value: unknown) => string;

const where = (clauses: string[]): string => (clauses.length ? `WHERE ${clauses.join(' AND ')}` : '');

/**
 * Task ids sort below `~` (their characters all do) and tenant envelopes' (`~tenant`) at or above it: listings of
 * tasks never include the envelopes.
 */
export const TASKS_ONLY = "id < '~'";
export const ENVELOPES_ONLY = "id >= '~'";

export function taskFilter(q: TaskQuery, arg: Arg): string {
  const c: string[] = [TASKS_ONLY];
  if (q.tenant !== undefined) c.push(`tenant = ${arg(q.tenant)}`);
  if (q.parentId === null) c.push('parent_id IS NULL');
  else if (q.parentId !== undefined) c.push(`parent_id = ${arg(q.parentId)}`);
  if (q.state !== undefined) c.push(`state = ${arg(q.state)}`);
  if (q.label !== undefined) c.push(`label = ${arg(q.label)}`);
  return where(c);
}

export function eventFilter(q: EventQuery, arg: Arg): string {
  const c = [`seq > ${arg(q.afterSeq)}`];
  if (q.tenant !== undefined) c.push(`tenant = ${arg(q.tenant)}`);
  if (q.taskId !== undefined) c.push(`task_id = ${arg(q.taskId)}`);
  return where(c);
}

export function runFilter(q: RunQuery, arg: Arg): string {
  const c: string[] = [];
  if (q.tenant !== undefined) c.push(`tenant = ${arg(q.tenant)}`);
  if (q.label !== undefined) c.push(`label = ${arg(q.label)}`);
  return where(c);
}

/** Placeholders as SQLite writes them, collecting the values in order. */
export function sqliteArgs(): { args: unknown[]; arg: Arg } {
  const args: unknown[] = [];
  return { args, arg: (v) => (args.push(v), '?') };
}

/** Placeholders as PostgreSQL writes them ($1, $2 …), collecting the values in order. */
export function postgresArgs(): { args: unknown[]; arg: Arg } {
  const args: unknown[] = [];
  return { args, arg: (v) => `$${args.push(v)}` };
}
