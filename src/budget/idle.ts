// Idle close: a task that has worked (made calls) and then gone quiet for a whole quiet period closes itself, so tasks
// created from headers, which nobody closes, still leave their run records for calibrate and report. A task with a
// call in flight is not idle, and neither is a paused one: a pause waits for a person, who may take longer.
import { planClose, type Decision, type RuleContext } from './rules.js';
import { isEnvelope } from './tenants.js';
import type { TaskRow } from './types.js';

/** Whether `t` has been quiet since `cutoffMs` (its last change at or before it). */
export const isIdle = (t: TaskRow, cutoffMs: number): boolean =>
  !isEnvelope(t) && // a tenant envelope lasts as long as its tenant
  t.state !== 'closed' &&
  t.state !== 'paused' &&
  t.calls > 0 &&
  t.reserved === 0 &&
  t.callsReserved === 0 &&
  t.updatedAtMs <= cutoffMs;

/**
 * Closes the path's leaf if it is still idle (a call may have come since the store listed it): a `closed` event
 * that says why, and a run record whose duration ends at the task's last activity, not at the close.
 */
export function planCloseIdle(path: TaskRow[], quietMs: number, ctx: RuleContext): Decision<boolean> {
  const t = path.at(-1);
  if (!t || !isIdle(t, ctx.nowMs - quietMs)) return { result: false };
  const mutation = planClose(path, undefined, ctx).mutation!;
  return {
    result: true,
    mutation: {
      ...mutation,
      events: mutation.events.map((e) => ({ ...e, data: { ...e.data, reason: 'idle', quietMs } })),
      run: mutation.run && { ...mutation.run, durationMs: t.updatedAtMs - t.createdAtMs },
    },
  };
}
