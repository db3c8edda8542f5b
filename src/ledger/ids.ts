// Reservation ids that sort by creation time, so new rows go to the end of an index instead of a random page.
import { randomBytes } from 'node:crypto';

let lastMs = 0;
let counter = 0;
const processTag = randomBytes(4).toString('hex');

/** `r` + 11 base-36 digits of milliseconds + a per-process counter + a random process tag: unique and ordered. */
export function reservationId(nowMs = Date.now()): string {
  if (nowMs === lastMs) counter++;
  else {
    lastMs = nowMs;
    counter = 0;
  }
  return `r${nowMs.toString(36).padStart(11, '0')}${counter.toString(36).padStart(4, '0')}${processTag}`;
}
