// The ledger's invariants, asserted where they are made (TigerBeetle style): every rule checks what it decided before a
// store may write it, and every store checks every row it is about to write (store/snapshot.ts `decided`). A failed
// assertion is a bug in Envelope, never the caller's: it throws, nothing is written, and the operation fails loudly
// (the gateway answers 500 and logs it) instead of committing a ledger that could overspend. Pure.
import type { Mutation, ReservationRow, TaskRow } from './types.js';
import { TOTAL_MAX } from './spec.js';

export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
}

export function invariant(condition: boolean, what: () => string): asserts condition {
  if (!condition) throw new InvariantViolation(`ledger invariant violated: ${what()}`);
}

const whole = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

const TASK_COUNTS = ['used', 'reserved', 'tokensUsed', 'costMicros', 'calls', 'callsReserved'] as const;

/** A task row as it may be stored: every figure a whole number ≥ 0, a positive total within the maximum, a sound path. */
export function checkTask(t: TaskRow): void {
  for (const k of TASK_COUNTS) invariant(whole(t[k]), () => `task ${t.id}: ${k} is ${t[k]}, not a whole number ≥ 0`);
  invariant(whole(t.total) && t.total > 0 && t.total <= TOTAL_MAX, () => `task ${t.id}: total is ${t.total}`);
  invariant(t.pathIds.at(-1) === t.id && t.pathIds.length >= 1, () => `task ${t.id}: its path ${JSON.stringify(t.pathIds)} does not end at it`);
  invariant(Number.isSafeInteger(t.version) && t.version >= 1, () => `task ${t.id}: version is ${t.version}`);
}

/** A reservation as it may be stored: one amount ≥ 0 per task of its path, and what it granted ≥ 0. */
export function checkReservation(r: ReservationRow): void {
  invariant(r.amounts.length === r.pathIds.length && r.amounts.every(whole), () => `reservation ${r.id}: amounts ${JSON.stringify(r.amounts)} for path ${JSON.stringify(r.pathIds)}`);
  invariant(whole(r.inputTokens) && whole(r.outputTokens) && whole(r.choices ?? 1), () => `reservation ${r.id}: tokens ${r.inputTokens} in, ${r.outputTokens} × ${r.choices} out`);
  if (r.settledAmounts !== null) {
    invariant(r.settledAmounts.length === r.pathIds.length && r.settledAmounts.every(whole), () => `reservation ${r.id}: settled ${JSON.stringify(r.settledAmounts)}`);
  }
}

/** Everything a store is about to write in one step. */
export function checkMutation(m: Mutation): void {
  for (const t of m.tasks) checkTask(t);
  if (m.reservation) checkReservation(m.reservation);
}

/** The most a task may have used and held together: its total on hard and approval tasks, plus the overrun on advisory ones. */
function ceilingOf(t: TaskRow): number {
  if (t.policy === 'measure') return Number.POSITIVE_INFINITY;
  return t.policy === 'advisory' ? Math.floor(t.total * (1 + t.overrun)) : t.total;
}

/** After a grant: no task of the path has used and holds more than it may spend — on hard tasks, its total. */
export function checkGrant(path: TaskRow[], r: ReservationRow): void {
  checkReservation(r);
  invariant(r.pathIds.length === path.length, () => `reservation ${r.id} holds on ${r.pathIds.length} tasks of a path of ${path.length}`);
  path.forEach((t, i) => {
    invariant(r.pathIds[i] === t.id, () => `reservation ${r.id} holds on ${r.pathIds[i]} where the path has ${t.id}`);
    invariant(t.used + t.reserved <= ceilingOf(t), () => `task ${t.id} (${t.policy}) would have used ${t.used} and hold ${t.reserved} of ${t.total} after reservation ${r.id}`);
  });
}

/**
 * After a settle or a release: each task of the path gives back exactly what the reservation held on it (when it was
 * still pending) and is charged exactly what the settlement says, nothing else changing its figures.
 */
export function checkRelease(before: TaskRow[], after: TaskRow[], held: ReservationRow, charged: number[] | null): void {
  const pending = held.status === 'pending';
  before.forEach((b, i) => {
    const a = after.find((t) => t.id === b.id);
    invariant(a !== undefined, () => `task ${b.id} of reservation ${held.id} is missing after it was settled`);
    const released = pending ? held.amounts[i]! : 0;
    invariant(a.reserved === b.reserved - released, () => `task ${b.id}: reserved ${b.reserved} → ${a.reserved}, but reservation ${held.id} held ${released}`);
    invariant(a.callsReserved === b.callsReserved - (pending ? 1 : 0), () => `task ${b.id}: calls reserved ${b.callsReserved} → ${a.callsReserved}`);
    invariant(a.used === b.used + (charged ? charged[i]! : 0), () => `task ${b.id}: used ${b.used} → ${a.used}, charged ${charged?.[i] ?? 0}`);
  });
}
