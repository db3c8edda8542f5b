// Rows as JSON text, for stores that keep a row in one column or one key. One place, so every store agrees.
import type { ReservationRow, RunRecord, TaskRow } from '../budget/types.js';

export const encodeRow = (row: TaskRow | ReservationRow | RunRecord): string => JSON.stringify(row);
export const decodeTask = (text: string): TaskRow => upgradeTask(JSON.parse(text) as TaskRow);
export const decodeReservation = (text: string): ReservationRow => upgradeReservation(JSON.parse(text) as ReservationRow);

/** A task row as an earlier version wrote it, with the fields added since: such tasks counted every billed token. */
export function upgradeTask(row: TaskRow): TaskRow {
  row.meter ??= 'billed';
  row.conversations ??= [];
  return row;
}

export function upgradeReservation(row: ReservationRow): ReservationRow {
  row.conversation ??= null;
  row.bodyBytes ??= 0;
  row.choices ??= 1;
  return row;
}
export const decodeRun = (text: string): RunRecord => JSON.parse(text) as RunRecord;
