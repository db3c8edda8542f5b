// The public picture of a task: display units, derived figures, and the estimate to finish.
import { fromLedger, utilization } from './rules.js';
import type { Meter, Outcome, Policy, TaskRow, TaskState, Unit } from './types.js';

export interface TaskView {
  id: string;
  tenant: string;
  label: string;
  parentId: string | null;
  unit: Unit;
  meter: Meter;
  policy: Policy;
  state: TaskState;
  total: number;
  used: number;
  reserved: number;
  remaining: number;
  /** Fraction of the tightest limit used (0..1+). */
  utilization: number;
  tokensUsed: number;
  costUsd: number;
  calls: number;
  callsInFlight: number;
  /** Calls, wall seconds, and tokens and requests per minute; null where there is no limit. */
  limits: { calls: number | null; seconds: number | null; tpm: number | null; rpm: number | null };
  models: string[];
  progress: { done: number; total: number } | null;
  /** From the burn rate per finished subtask; null until progress is reported. */
  estimateToFinish: number | null;
  createdAtMs: number;
  updatedAtMs: number;
  closedAtMs: number | null;
  outcome: Outcome | null;
}

/** A task's or an envelope's figures in its own unit, as every view shows them. */
export function figures(t: TaskRow, nowMs: number): { total: number; used: number; reserved: number; remaining: number; utilization: number } {
  const d = (x: number): number => fromLedger(t.unit, x);
  return {
    total: d(t.total),
    used: d(t.used),
    reserved: d(t.reserved),
    remaining: d(Math.max(0, t.total - t.used - t.reserved)),
    utilization: Math.round(utilization(t, nowMs) * 10_000) / 10_000,
  };
}

export function viewTask(t: TaskRow, nowMs: number): TaskView {
  const d = (x: number): number => fromLedger(t.unit, x);
  let estimate: number | null = null;
  if (t.progressDone !== null && t.progressTotal !== null && t.progressDone > 0) {
    estimate = d(Math.ceil((t.used / t.progressDone) * Math.max(0, t.progressTotal - t.progressDone)));
  }
  return {
    id: t.id,
    tenant: t.tenant,
    label: t.label,
    parentId: t.parentId,
    unit: t.unit,
    meter: t.meter,
    policy: t.policy,
    state: t.state,
    ...figures(t, nowMs),
    tokensUsed: t.tokensUsed,
    costUsd: t.costMicros / 1_000_000,
    calls: t.calls,
    callsInFlight: t.callsReserved,
    limits: { calls: t.limitCalls, seconds: t.limitSeconds, tpm: t.rate?.tpm ?? null, rpm: t.rate?.rpm ?? null },
    models: t.models,
    progress: t.progressDone === null ? null : { done: t.progressDone, total: t.progressTotal ?? 0 },
    estimateToFinish: estimate,
    createdAtMs: t.createdAtMs,
    updatedAtMs: t.updatedAtMs,
    closedAtMs: t.closedAtMs,
    outcome: t.outcome,
  };
}
