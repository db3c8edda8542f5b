// What a call costs, before and after it runs (SPEC §1a): the input estimate anchored on the conversation's last
// measured call, the cost of a settled call in every meter, and the cost expected of the next call. Pure.
import { usageTokens } from '../metering/prices.js';
import type { CallCost, Conversation, TaskRow, Usage } from './types.js';

/**
 * Bytes Envelope may add to a request: the countdown line (under 250 bytes with its JSON wrapping, at any figures)
 * or a native task_budget field. Estimates count them, so the call Envelope forwards fits what it reserved.
 */
export const INJECTED_BYTES_MAX = 320;

/** How many of a conversation's last calls the expected cost of its next one is taken from. */
export const RECENT_CALLS_MAX = 3;

/** What a reservation knows of a request's input before the provider counts it. */
export interface InputSource {
  /** Size of the request as the client sent it (before anything Envelope adds). */
  bodyBytes: number;
  /** CallShape.conversation; null when the request names none. */
  conversation: string | null;
  /**
   * The provider-held answer the call continues (OpenAI Responses `previous_response_id`), or null: its body holds
   * only what it adds to that context, all of it new, on top of the conversation's baseline.
   */
  continues?: string | null;
  /** A worst case the caller states itself (the library's `task.reserve()`): taken as it is, for every meter. */
  inputTokens?: number;
  /** The whole input, counted exactly (a tokenizer or the provider's count endpoint), without what Envelope adds. */
  inputTokensExact?: number;
}

export interface InputEstimate {
  /** Worst case of the whole input (cache reads and writes included): what a billed task holds. */
  wholeTokens: number;
  /** Worst case of the input a `loop` task has not been charged for yet. */
  freshTokens: number;
}

/** A conversation's baseline: the whole input and the output of its last settled call. */
export const baselineOf = (c: Conversation): number => c.inputTokens + c.outputTokens;

/**
 * The input's worst case. A conversation's first call (or one after a compaction) is estimated from its whole
 * size; a later call only for the bytes added since the baseline call (its reply, already counted as output, is
 * among them), the rest being known exactly. Tokenizers take at least a few bytes per token, so bytes ÷
 * `bytesPerToken` overestimates; the real figure replaces it at settlement.
 */
export function estimateInput(conv: Conversation | undefined, src: InputSource, bytesPerToken: number): InputEstimate {
  if (src.inputTokens !== undefined) return { wholeTokens: src.inputTokens, freshTokens: src.inputTokens };
  const tokensOf = (bytes: number): number => Math.ceil((bytes + INJECTED_BYTES_MAX) / bytesPerToken);
  let whole: number;
  if (src.inputTokensExact !== undefined) whole = src.inputTokensExact + tokensOf(0);
  else if (conv && src.continues) whole = baselineOf(conv) + tokensOf(src.bodyBytes);
  else if (!conv || src.bodyBytes < conv.bodyBytes) whole = tokensOf(src.bodyBytes);
  else whole = baselineOf(conv) + Math.max(0, tokensOf(src.bodyBytes - conv.bodyBytes) - conv.outputTokens);
  // A call that names no conversation (nor an answer it continues) has no baseline: all of its input is fresh.
  const named = src.conversation !== null || Boolean(src.continues);
  const fresh = !named ? whole : conv ? Math.max(0, whole - baselineOf(conv)) : 0;
  return { wholeTokens: whole, freshTokens: fresh };
}

/**
 * A settled call in the `loop` meter: its output plus the input past the conversation's baseline. A conversation's
 * first call charges no input; a compaction (whole input below the baseline) neither; a call with no conversation
 * is charged in full.
 */
export function loopTokens(u: Usage, conversation: string | null, conv: Conversation | undefined): number {
  if (conversation === null) return usageTokens(u);
  const whole = u.inputTokens + u.cacheWriteTokens + u.cacheReadTokens;
  return u.outputTokens + (conv ? Math.max(0, whole - baselineOf(conv)) : 0);
}

/**
 * The conversation a call belongs to: the one its body names, else the one whose last answer it continues (found in
 * the ledger, so any replica and a restarted process resolve it alike); undefined for a new one.
 */
export function conversationFor(leaf: TaskRow, key: string | null, continues: string | null | undefined): Conversation | undefined {
  if (key !== null) return leaf.conversations.find((c) => c.key === key);
  return continues ? leaf.conversations.find((c) => c.responseId === continues) : undefined;
}

/** A task's measure of a call's cost, in its ledger units. */
export function costIn(t: TaskRow, c: CallCost): number {
  if (t.unit === 'usd') return c.costMicros;
  return t.meter === 'loop' ? c.loop : c.billed;
}

/**
 * What the next call of a conversation is expected to cost a task: the largest of its last calls; for a
 * conversation not seen yet, the largest recent call of any of the leaf's conversations; 0 with no history.
 */
export function expectedCost(t: TaskRow, leaf: TaskRow, conversation: string | null): number {
  const conv = conversationFor(leaf, conversation, null);
  const from = conv ? [conv] : leaf.conversations;
  let most = 0;
  for (const c of from) for (const call of c.recent) most = Math.max(most, costIn(t, call));
  return most;
}

/** The conversations after a settled call: this one moved to the end with its new baseline; at most `max` kept. */
export function withBaseline(
  conversations: Conversation[],
  key: string,
  u: Usage,
  bodyBytes: number,
  cost: CallCost,
  responseId: string | null,
  nowMs: number,
  max: number,
): Conversation[] {
  const prev = conversations.find((c) => c.key === key);
  const next: Conversation = {
    key,
    inputTokens: u.inputTokens + u.cacheWriteTokens + u.cacheReadTokens,
    outputTokens: u.outputTokens,
    bodyBytes,
    recent: [...(prev?.recent ?? []), cost].slice(-RECENT_CALLS_MAX),
    responseId,
    atMs: nowMs,
  };
  const others = conversations.filter((c) => c.key !== key);
  return [...others.slice(Math.max(0, others.length - (max - 1))), next];
}
