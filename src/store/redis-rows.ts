// How the Redis store keeps a row: a hash with one field per property, each value JSON. A write then sends only the
// properties that changed (a reservation touches four numbers of a task row), and the commit script compares one
// field: a task's `version`, a reservation's `status`.
import type { RateRow, ReservationRow, TaskRow } from '../budget/types.js';
import { upgradeReservation, upgradeTask } from './codec.js';
import type { RowRef } from './redis-keys.js';

export type Row = TaskRow | ReservationRow | RateRow;

/** The field the commit script compares, and its value as stored ('' for a row that does not exist). */
export const tokenField = (ref: RowRef): string => (ref.startsWith('r:') ? 'status' : 'version');
export const tokenOf = (row: Row | null | undefined): string =>
  !row ? '' : JSON.stringify('version' in row ? row.version : row.status);

/** Field/value pairs of `row` that differ from `base` (all of them for a new row). Unchanged values keep their
 *  identity through the rules' spreads, so `!==` finds exactly what changed. */
export function changedFields(base: Row | null | undefined, row: Row): string[] {
  const out: string[] = [];
  const before = base as Record<string, unknown> | null | undefined;
  for (const [field, value] of Object.entries(row)) {
    if (before && before[field] === value) continue;
    out.push(field, fieldText(value));
  }
  return out;
}

/** A field's JSON; a reservation's writes are mostly finite numbers and nulls, whose JSON needs no serializer. */
function fieldText(value: unknown): string {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return value === null ? 'null' : JSON.stringify(value);
}

/** A row of the kind `ref` names from its hash (HGETALL as an object, or a flat field/value list from a script); null if empty. */
export function rowFromHash(hash: Record<string, string> | string[] | null | undefined, ref: RowRef): Row | null {
  if (!hash) return null;
  const row: Record<string, unknown> = {};
  if (Array.isArray(hash)) {
    for (let i = 0; i < hash.length; i += 2) row[hash[i]!] = JSON.parse(hash[i + 1]!);
  } else {
    for (const field in hash) row[field] = JSON.parse(hash[field]!);
  }
  if (!Object.keys(row).length) return null;
  if (ref.startsWith('q:')) return row as unknown as RateRow;
  return ref.startsWith('t:') ? upgradeTask(row as unknown as TaskRow) : upgradeReservation(row as unknown as ReservationRow);
}
