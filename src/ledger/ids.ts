// Reservation ids that sort by creation time, so new rows go to the end of an index instead of a random page.
import { randomBytes } from 'node:crypto';

const COUNTER_SPAN = 36 ** 6;
let counter = 0;
const processTag = randomBytes(4).toString('hex');

const timePart = (ms: number): string => ms.toString(36).padStart(11, '0');

/** Sorts before every id `reservationId` makes at or after `ms`: the upper end of a key range of older ids. */
export const reservationIdFloor = (ms: number): string => `r${timePart(ms)}`;

/**
 * `r` + 11 base-36 digits of milliseconds + a per-process sequence + a random process tag. The sequence never
 * restarts (a clock that steps back, or two ledgers with their own clocks, cannot repeat an id); the time orders ids.
 */
export function reservationId(nowMs = Date.now()): string {
  counter = (counter + 1) % COUNTER_SPAN;
  return `r${timePart(nowMs)}${counter.toString(36).padStart(6, '0')}${processTag}`;
}
