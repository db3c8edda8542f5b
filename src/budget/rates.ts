// Rate limits (SPEC §4a): tokens and requests per minute, checked against a sliding window. Pure.
//
// The window is RATE_BUCKETS buckets of a twelfth of a minute each, plus the bucket now filling: a call is counted
// from its admission until its bucket has left the window, so for between 60 and 65 seconds. Every true 60-second
// window therefore lies inside what is counted at its end, and a limit is never exceeded in any 60 seconds (RPM
// exactly; TPM as far as the worst case counted at admission covers what the call is then billed). The price of the
// buckets: a refused caller may wait up to one bucket (5 s) longer than an exact sliding log would make it wait.
import type { RateBucket, RateLimit } from './types.js';

export const RATE_BUCKETS = 12;

/** What a call counts in a window: its tokens (the worst case until it is settled) and one request. */
export interface RateAsk {
  tokens: number;
  requests: number;
}

export type RateCheck =
  | { ok: true }
  | {
      ok: false;
      /** The limit that refused (both may: the one the caller waits longer for). */
      which: 'tpm' | 'rpm';
      limit: number;
      /** What the window holds now, in the refused measure. */
      used: number;
      asked: number;
      /** When the call would fit (ms from now, ≥ 1): once enough old buckets have left the window. */
      retryAfterMs: number;
    };

const bucketMsOf = (windowMs: number): number => Math.max(1, Math.round(windowMs / RATE_BUCKETS));
export const bucketOf = (nowMs: number, windowMs: number): number => Math.floor(nowMs / bucketMsOf(windowMs));
/** When a bucket stops being counted. */
const leavesAtMs = (index: number, windowMs: number): number => (index + RATE_BUCKETS + 1) * bucketMsOf(windowMs);

/** The buckets still counted at `nowMs`, oldest first. */
export function liveBuckets(window: RateBucket[], nowMs: number, windowMs: number): RateBucket[] {
  const oldest = bucketOf(nowMs, windowMs) - RATE_BUCKETS;
  return window[0] === undefined || window[0][0] >= oldest ? window : window.filter((b) => b[0] >= oldest);
}

export function rateUsed(limit: RateLimit, nowMs: number, windowMs: number): RateAsk {
  let tokens = 0;
  let requests = 0;
  for (const [, t, r] of liveBuckets(limit.window, nowMs, windowMs)) {
    tokens += t;
    requests += r;
  }
  return { tokens, requests };
}

/** How long until `excess` of a measure has left the window (the buckets leave oldest first). */
function waitFor(live: RateBucket[], measure: 1 | 2, excess: number, nowMs: number, windowMs: number): number {
  let freed = 0;
  for (const b of live) {
    freed += b[measure];
    if (freed >= excess) return Math.max(1, leavesAtMs(b[0], windowMs) - nowMs);
  }
  return Math.max(1, leavesAtMs(bucketOf(nowMs, windowMs), windowMs) - nowMs);
}

/**
 * Whether a call fits the limit now. A call larger than a whole minute's tokens fits only an empty window (alone):
 * a rate limit paces calls, the budget is what caps their size.
 */
export function checkRate(limit: RateLimit, ask: RateAsk, nowMs: number, windowMs: number): RateCheck {
  const live = liveBuckets(limit.window, nowMs, windowMs);
  const used = rateUsed({ ...limit, window: live }, nowMs, windowMs);
  const refusals: Extract<RateCheck, { ok: false }>[] = [];
  if (limit.rpm !== null && used.requests + ask.requests > limit.rpm) {
    const excess = used.requests + ask.requests - limit.rpm;
    refusals.push({ ok: false, which: 'rpm', limit: limit.rpm, used: used.requests, asked: ask.requests, retryAfterMs: waitFor(live, 2, excess, nowMs, windowMs) });
  }
  if (limit.tpm !== null && used.tokens > 0 && used.tokens + ask.tokens > limit.tpm) {
    const excess = ask.tokens > limit.tpm ? used.tokens : used.tokens + ask.tokens - limit.tpm;
    refusals.push({ ok: false, which: 'tpm', limit: limit.tpm, used: used.tokens, asked: ask.tokens, retryAfterMs: waitFor(live, 1, excess, nowMs, windowMs) });
  }
  if (!refusals.length) return { ok: true };
  return refusals.reduce((a, b) => (b.retryAfterMs > a.retryAfterMs ? b : a));
}

/** The limit with `ask` counted in the bucket `bucket` (the current one, or the one a correction goes back to). */
export function counted(limit: RateLimit, ask: RateAsk, bucket: number, nowMs: number, windowMs: number): RateLimit {
  const live = liveBuckets(limit.window, nowMs, windowMs);
  if (bucket < bucketOf(nowMs, windowMs) - RATE_BUCKETS) return live === limit.window ? limit : { ...limit, window: live };
  const window = live.map((b): RateBucket => (b[0] === bucket ? [b[0], Math.max(0, b[1] + ask.tokens), Math.max(0, b[2] + ask.requests)] : b));
  if (!window.some((b) => b[0] === bucket)) {
    window.push([bucket, Math.max(0, ask.tokens), Math.max(0, ask.requests)]);
    window.sort((a, b) => a[0] - b[0]);
  }
  return { ...limit, window };
}

/** Whether a refusal now should write a `rate_limited` event: the first of a window, then at most one a window. */
export const eventDue = (limit: RateLimit, nowMs: number, windowMs: number): boolean =>
  limit.limitedAtMs === null || nowMs - limit.limitedAtMs >= windowMs;

export const noWindow = (tpm: number | null, rpm: number | null): RateLimit => ({ tpm, rpm, window: [], limitedAtMs: null });
