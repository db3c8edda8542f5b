// Rows as JSON text, for stores that keep a row in one column or one key. One place, so every store agrees.
import type { ReservationRow, RunRecord, TaskRow } from '../budget/types.js';

export const encodeRow = (row: TaskRow | ReservationRow | RunRecord): string => JSON.stringify(row);
export const decodeTask = (text: string): TaskRow => JSON.parse(text) as TaskRow;
export const decodeReservation = (text: string): ReservationRow => JSON.parse(text) as ReservationRow;
export const decodeRun = (text: string): RunRecord => JSON.parse(text) as RunRecord;
