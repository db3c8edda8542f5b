// How a task's state follows its figures, and how rule decisions are built and combined: shared by every rule.
import { utilization } from './amounts.js';
import type { Decision } from './rules.js';
import type { EventDraft, Mutation, TaskRow, TaskState } from './types.js';

const LEVEL_RANK: Record<TaskState, number> = {
  active: 0,
  scoping: 1,
  wrapping_up: 2,
  exhausted: 3,
  paused: 3,
  closed: 4,
};

export function levelFor(u: number, thresholds: [number, number]): TaskState {
  if (u >= 1) return 'exhausted';
  if (u >= thresholds[1]) return 'wrapping_up';
  if (u >= thresholds[0]) return 'scoping';
  return 'active';
}

/**
 * Recomputes a task's state from its figures and returns the events of the change. `closed` is final;
 * `paused` holds until an approval lifts it (planApprove); an approval task that reaches 100 % pauses.
 */
export function restate(prev: TaskRow, next: TaskRow, nowMs: number): { row: TaskRow; events: EventDraft[] } {
  // A measured task has no budget to cross: it stays active, and its total is only the reference it is measured against.
  if (prev.state === 'closed' || next.policy === 'measure') return { row: next, events: [] };
  const u = utilization(next, nowMs);
  const level = levelFor(u, next.thresholds);
  const state: TaskState =
    prev.state === 'paused' || (next.policy === 'approval' && level === 'exhausted') ? 'paused' : level;
  const events: EventDraft[] = [];
  const ev = (type: EventDraft['type'], data: Record<string, unknown>): void => {
    events.push({ type, taskId: next.id, tenant: next.tenant, atMs: nowMs, data });
  };
  const fromRank = LEVEL_RANK[prev.state];
  next.thresholds.forEach((threshold, i) => {
    if (fromRank <= i && LEVEL_RANK[level] > i) {
      ev('threshold_crossed', { threshold, utilization: round4(u), state: i === 0 ? 'scoping' : 'wrapping_up' });
    }
  });
  if (fromRank < 3 && level === 'exhausted') ev('exhausted', { utilization: round4(u), used: next.used });
  if (state === 'paused' && prev.state !== 'paused') ev('paused', { utilization: round4(u), used: next.used });
  if (next.used > next.total && prev.used <= prev.total) {
    ev('overrun', { used: next.used, total: next.total, over: next.used - next.total, policy: next.policy });
  }
  return { row: state === next.state ? next : Object.assign(copyTask(next), { state }), events };
}

export const round4 = (x: number): number => Math.round(x * 10_000) / 10_000;

/** The figures of a task row that has done nothing yet. */
export const unused = (nowMs: number) =>
  ({
    used: 0,
    reserved: 0,
    tokensUsed: 0,
    costMicros: 0,
    calls: 0,
    callsReserved: 0,
    state: 'active',
    models: [],
    progressDone: null,
    progressTotal: null,
    conversations: [],
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
    closedAtMs: null,
    outcome: null,
    version: 1,
  }) satisfies Partial<TaskRow>;

/** A task row's next version: `changes` over a copy of `prev`. */
export function touched(prev: TaskRow, changes: Partial<TaskRow>, nowMs: number): TaskRow {
  const next = Object.assign(copyTask(prev), changes);
  next.version = prev.version + 1;
  next.updatedAtMs = nowMs;
  return next;
}

/** The fields a task row may leave out (absent, not undefined: rows are compared and encoded as they are). */
type OptionalField = 'rate' | 'period' | 'periodStartMs' | 'burn';
type OptionalOf<T> = { [K in keyof T]-?: object extends Pick<T, K> ? K : never }[keyof T];
/** Fails to compile when TaskRow gains an optional field that copyTask does not copy. */
type Holds<T extends true> = T;
type CopiesEveryOptionalField = Holds<[OptionalOf<TaskRow>] extends [OptionalField] ? true : false>;

/**
 * A shallow copy of a task row, written out field by field. Every rule that changes a row copies it (several times
 * a model call), and a spread (`{ ...row }`) builds an object with most of its 30 fields out of line and of another
 * hidden class than the row it copied: rows of 5-7 shapes made every read of a field megamorphic. One literal
 * gives one shape with every field in the object. The required fields are checked by the type; the optional ones
 * by CopiesEveryOptionalField.
 */
export function copyTask(t: TaskRow): TaskRow {
  const row: TaskRow = {
    id: t.id,
    tenant: t.tenant,
    label: t.label,
    unit: t.unit,
    meter: t.meter,
    total: t.total,
    totalApproved: t.totalApproved,
    policy: t.policy,
    overrun: t.overrun,
    limitCalls: t.limitCalls,
    limitSeconds: t.limitSeconds,
    thresholds: t.thresholds,
    parentId: t.parentId,
    pathIds: t.pathIds,
    used: t.used,
    reserved: t.reserved,
    tokensUsed: t.tokensUsed,
    costMicros: t.costMicros,
    calls: t.calls,
    callsReserved: t.callsReserved,
    state: t.state,
    models: t.models,
    progressDone: t.progressDone,
    progressTotal: t.progressTotal,
    conversations: t.conversations,
    createdAtMs: t.createdAtMs,
    updatedAtMs: t.updatedAtMs,
    closedAtMs: t.closedAtMs,
    outcome: t.outcome,
    version: t.version,
  };
  if (t.rate !== undefined) row.rate = t.rate;
  if (t.period !== undefined) row.period = t.period;
  if (t.periodStartMs !== undefined) row.periodStartMs = t.periodStartMs;
  if (t.burn !== undefined) row.burn = t.burn;
  return row;
}

/** Two changes as one: rows the second changed replace the first's; events in order. */
export function merged<T>(first: Mutation, then: Decision<T>): Decision<T> {
  if (!then.mutation) return { ...then, mutation: first };
  const second = then.mutation;
  const tasks = [...first.tasks.filter((t) => !second.tasks.some((u) => u.id === t.id)), ...second.tasks];
  return { ...then, mutation: { tasks, events: [...first.events, ...second.events], reservation: second.reservation ?? first.reservation, run: second.run ?? first.run } };
}
