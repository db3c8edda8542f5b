// Rate-limit admission (SPEC §4a). A tenant's limits live in its rate row and are checked in an atomic step of their
// own before the call's reservation (planAdmit), and corrected after its settlement (planCorrect); a task's own
// limits live on its row and are checked inside the reservation (ratedPath) and corrected inside the settlement
// (rateSettled). A call over a limit is refused with `rate_limited` (HTTP 429 with retry-after), holding nothing.
import { formatAmount } from './amounts.js';
import { EnvelopeError } from './errors.js';
import { bucketOf, checkRate, counted, eventDue, type RateAsk, type RateCheck } from './rates.js';
import type { Decision, RuleContext } from './rules.js';
import { copyTask, touched } from './states.js';
import type { EventDraft, RateLimit, RateRow, ReservationRow, TaskRow } from './types.js';

/** What a call's admission counted in its tenant's window (kept on its reservation, for the correction). */
export type Admission = NonNullable<ReservationRow['admitted']>;

type Refusal = Extract<RateCheck, { ok: false }>;

function refusalError(scope: 'tenant' | 'task', who: string, r: Refusal): EnvelopeError {
  const seconds = Math.ceil(r.retryAfterMs / 1000);
  const what =
    r.which === 'rpm'
      ? `${r.limit.toLocaleString('en-US')} requests per minute (${r.used.toLocaleString('en-US')} in the last minute)`
      : `${formatAmount('tokens', r.limit)} per minute (${r.used.toLocaleString('en-US')} counted in the last minute, and this call may use up to ${r.asked.toLocaleString('en-US')})`;
  return new EnvelopeError('rate_limited', `${scope} ${who} is over its rate limit of ${what}; retry after ${seconds} s`, {
    scope,
    reason: r.which,
    retryAfterMs: r.retryAfterMs,
  });
}

function limitedEvent(scope: 'tenant' | 'task', taskId: string, tenant: string, r: Refusal, nowMs: number): EventDraft {
  return {
    type: 'rate_limited',
    taskId,
    tenant,
    atMs: nowMs,
    data: { scope, limit: r.which, perMinute: r.limit, used: r.used, asked: r.asked, retryAfterMs: r.retryAfterMs },
  };
}

/**
 * Counts one call in its tenant's window, or refuses it (the first refusal of a window writes a `rate_limited`
 * event). Null when the tenant has no rate limit: nothing counted, nothing to correct.
 */
export function planAdmit(rate: RateRow | undefined, taskId: string, tokens: number, ctx: RuleContext): Decision<Admission | null> {
  if (!rate || (rate.tpm === null && rate.rpm === null)) return { result: null };
  const windowMs = ctx.config.rateWindowMs;
  const ask: RateAsk = { tokens, requests: 1 };
  const check = checkRate(rate, ask, ctx.nowMs, windowMs);
  if (!check.ok) {
    const error = refusalError('tenant', rate.tenant, check);
    if (!eventDue(rate, ctx.nowMs, windowMs)) return { error };
    const row: RateRow = { ...rate, limitedAtMs: ctx.nowMs, updatedAtMs: ctx.nowMs, version: rate.version + 1 };
    return { error, mutation: { tasks: [], events: [limitedEvent('tenant', taskId, rate.tenant, check, ctx.nowMs)], rate: row } };
  }
  const bucket = bucketOf(ctx.nowMs, windowMs);
  const row: RateRow = { ...rate, ...counted(rate, ask, bucket, ctx.nowMs, windowMs), updatedAtMs: ctx.nowMs, version: rate.version + 1 };
  return { result: { tenant: rate.tenant, bucket, tokens }, mutation: { tasks: [], events: [], rate: row } };
}

/**
 * Corrects what an admission counted: `tokens` replaces its worst case (what the call was billed; 0 when it ran no
 * tokens), and `requests` −1 takes back a call that never went out (its reservation was refused).
 */
export function planCorrect(rate: RateRow | undefined, admitted: Admission, tokens: number, requests: 0 | -1, ctx: RuleContext): Decision<boolean> {
  if (!rate) return { result: false };
  const next = counted(rate, { tokens: tokens - admitted.tokens, requests }, admitted.bucket, ctx.nowMs, ctx.config.rateWindowMs);
  if (next.window === rate.window) return { result: false };
  const row: RateRow = { ...rate, window: next.window, updatedAtMs: ctx.nowMs, version: rate.version + 1 };
  return { result: true, mutation: { tasks: [], events: [], rate: row } };
}

/**
 * A granted reservation checked against the rate limits of its path's tasks: refused (nothing held) when one is
 * over, else counted in each of their windows. `tokens`: the call's worst case in tokens.
 */
export function ratedPath(
  path: TaskRow[],
  held: TaskRow[],
  tokens: number,
  ctx: RuleContext,
): { tasks: TaskRow[]; rated: ReservationRow['rated'] } | Decision<never> {
  if (!path.some((t) => t.rate)) return { tasks: held, rated: undefined };
  const windowMs = ctx.config.rateWindowMs;
  const ask: RateAsk = { tokens, requests: 1 };
  for (const t of path) {
    if (!t.rate) continue;
    const check = checkRate(t.rate, ask, ctx.nowMs, windowMs);
    if (check.ok) continue;
    const error = refusalError('task', t.id, check);
    if (!eventDue(t.rate, ctx.nowMs, windowMs)) return { error };
    const row = touched(t, { rate: { ...t.rate, limitedAtMs: ctx.nowMs } }, ctx.nowMs);
    return { error, mutation: { tasks: [row], events: [limitedEvent('task', t.id, t.tenant, check, ctx.nowMs)] } };
  }
  const bucket = bucketOf(ctx.nowMs, windowMs);
  const tasks = held.map((t) => (t.rate ? Object.assign(copyTask(t), { rate: counted(t.rate, ask, bucket, ctx.nowMs, windowMs) }) : t));
  return { tasks, rated: { bucket, tokens } };
}

/** A task's window after its call settled (`tokens` billed) or was released (0): the worst case replaced. */
export function rateSettled(limit: RateLimit, r: ReservationRow, tokens: number, ctx: RuleContext): RateLimit {
  if (!r.rated) return limit;
  return counted(limit, { tokens: tokens - r.rated.tokens, requests: 0 }, r.rated.bucket, ctx.nowMs, ctx.config.rateWindowMs);
}
