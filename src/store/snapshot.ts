// What the rules read, built from a store's rows, and what they decided, checked before it is written: the one place
// every store turns a Need into a Snapshot and a decision into rows.
import { checkMutation } from '../budget/invariants.js';
import type { Decision, Snapshot } from '../budget/rules.js';
import type { RateRow, ReservationRow, TaskRow } from '../budget/types.js';
import type { Need } from './store.js';

/** How a store finds one row of each kind (as its transaction, batch or cache sees it). */
export interface RowSource {
  task(id: string): TaskRow | undefined;
  reservation(id: string): ReservationRow | undefined;
  /** The `existing` task of a creation, where it is found elsewhere than `task` (Redis: another tree). */
  existing?(id: string): TaskRow | undefined;
  rate(tenant: string): RateRow | undefined;
}

/** Loads a path from any lookup: the leaf's `pathIds`, in order. Missing rows mean a broken tree. */
export function pathFrom(leaf: TaskRow | undefined, lookup: (id: string) => TaskRow | undefined): TaskRow[] {
  if (!leaf) return [];
  return leaf.pathIds.map((id) => (id === leaf.id ? leaf : lookup(id))).filter((t): t is TaskRow => t !== undefined);
}

export function snapshotFor(need: Need, rows: RowSource): Snapshot {
  const task = (id: string): TaskRow | undefined => rows.task(id);
  const snap: Snapshot = { path: [] };
  if (need.reservation !== undefined) {
    snap.reservation = rows.reservation(need.reservation);
    if (snap.reservation) snap.path = pathFrom(task(snap.reservation.taskId), task);
  }
  if (need.path) snap.path = pathFrom(task(need.path), task);
  if (need.existing !== undefined) snap.existing = (rows.existing ?? task)(need.existing);
  if (need.rate !== undefined) snap.rate = rows.rate(need.rate);
  return snap;
}

/**
 * Assertions of the ledger's invariants (budget/invariants.ts) run unless ENVELOPE_ASSERTIONS=off: on in tests and in
 * production alike (README, design: a few comparisons per row, and a wrong row must never be written).
 */
export const assertionsOn = (): boolean => process.env.ENVELOPE_ASSERTIONS !== 'off';

const ASSERTIONS = assertionsOn();

/** Runs a rule's decision on a snapshot and checks every row it would write: what each store calls before writing. */
export function decided<T>(decide: (snap: Snapshot) => Decision<T>, snap: Snapshot): Decision<T> {
  const decision = decide(snap);
  if (ASSERTIONS && decision.mutation) checkMutation(decision.mutation);
  return decision;
}
