// What a settled call is charged when the provider's usage cannot be taken as it is (SPEC §2). A reply without exact
// usage (a stream that broke, a provider that left usage out) is charged an estimate of what it delivered, never
// zero; usage beyond any call's reach (an upstream reporting absurd counts) is charged as the call's hold. Either way
// the settlement says so with a `usage_estimated` event. Pure.
import type { Delivered, ReservationRow, Usage } from './types.js';

/**
 * No call reads or writes more tokens than this in one usage field: ten times the largest context window offered
 * (2M tokens), and above the most output any request can ask for (128 answers of 128k). Past it, a count is a fault.
 */
export const CALL_TOKENS_MAX = 20_000_000;

export type EstimateReason = Delivered['reason'] | 'usage_implausible';

export interface Chargeable {
  /** The usage the call is charged. */
  usage: Usage;
  /** Why it is an estimate, and what the provider had reported (null: none); null when the usage is the provider's. */
  estimated: { reason: EstimateReason; reported: Usage | null } | null;
}

const FIELDS = ['inputTokens', 'outputTokens', 'cacheWriteTokens', 'cacheReadTokens'] as const;

const plausible = (u: Usage): boolean => FIELDS.every((k) => u[k] <= CALL_TOKENS_MAX);

const wholeInput = (u: Usage): number => u.inputTokens + u.cacheWriteTokens + u.cacheReadTokens;

export const isDelivered = (answer: Usage | Delivered): answer is Delivered => 'reason' in answer;

/**
 * The usage to charge for a reservation's call. Exact usage is taken as it is unless it passes CALL_TOKENS_MAX.
 * An estimate takes the input the provider reported (Anthropic says it at the start of a stream), else the input
 * the reservation estimated; and the output delivered, at least one token (a stream that began generated some),
 * never more than every answer's output cap: the provider stops there.
 */
export function toCharge(r: ReservationRow, answer: Usage | Delivered): Chargeable {
  const outputHeld = Math.max(1, r.outputTokens * (r.choices ?? 1));
  const held: Usage = { inputTokens: r.inputTokens, outputTokens: outputHeld, cacheWriteTokens: 0, cacheReadTokens: 0 };
  if (!isDelivered(answer)) {
    if (plausible(answer)) return { usage: answer, estimated: null };
    return { usage: held, estimated: { reason: 'usage_implausible', reported: answer } };
  }
  const reported = answer.reported && plausible(answer.reported) ? answer.reported : null;
  const output = Math.min(outputHeld, Math.max(1, answer.outputTokens, reported?.outputTokens ?? 0));
  const input = reported && wholeInput(reported) > 0 ? reported : held;
  return {
    usage: { inputTokens: input.inputTokens, cacheWriteTokens: input.cacheWriteTokens, cacheReadTokens: input.cacheReadTokens, outputTokens: output },
    estimated: { reason: answer.reason, reported: answer.reported },
  };
}
