// Task listing for stores that hold rows in memory or scan them: the same filter and order everywhere.
import { isEnvelope } from '../budget/tenants.js';
import type { TaskRow } from '../budget/types.js';
import type { TaskQuery } from './store.js';

/** Tasks as listings show them: tenant envelopes are the operator's (the tenants API), never listed as tasks. */
export function filterTasks(rows: TaskRow[], q: TaskQuery): TaskRow[] {
  return rows
    .filter(
      (t) =>
        !isEnvelope(t) &&
        (q.tenant === undefined || t.tenant === q.tenant) &&
        (q.parentId === undefined || t.parentId === q.parentId) &&
        (q.state === undefined || t.state === q.state) &&
        (q.label === undefined || t.label === q.label),
    )
    .sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : 1))
    .slice(q.offset, q.offset + q.limit);
}
