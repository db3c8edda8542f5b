// The ledger's side of one budgeted model call: reserve its worst case (and word the countdown), then settle the real
// usage or release the hold. run-call.ts composes these with the dialect's steps into the one pipeline every carrier runs.
import { countdownFor, type Countdown } from '../budget/countdown.js';
import type { ReserveGrant } from '../budget/rules.js';
import type { TaskRow, Usage } from '../budget/types.js';
import type { Ledger, Scope } from '../ledger/ledger.js';
import { endChild, type CallSpan } from './call-span.js';
import { DEFAULT_NATIVE_MODELS } from './native-budgets.js';

export interface CallPolicy {
  /** Models that take Anthropic's native task_budget. */
  nativeModels: readonly string[];
  /** Bytes of request body per input token, for the worst-case estimate (lower is more cautious). */
  bytesPerToken: number;
  /** max tokens asked of the provider when the client set none (OpenAI makes it optional). */
  defaultMaxOutputTokens: number;
}

export const DEFAULT_CALL_POLICY: CallPolicy = {
  nativeModels: DEFAULT_NATIVE_MODELS,
  bytesPerToken: 3,
  defaultMaxOutputTokens: 4_096,
};

/**
 * Bytes Envelope may add to a request: the countdown line (under 250 bytes with its JSON wrapping, at any figures)
 * or a native task_budget field. The estimate counts them, so the call Envelope forwards fits what it reserved.
 */
export const INJECTED_BYTES_MAX = 320;

/**
 * Worst-case input tokens of a request from its size. Tokenizers cover at least a few bytes per token in
 * practice, and JSON adds punctuation, so this overestimates; the real figure replaces it at settlement.
 */
export const estimateInputTokens = (bodyBytes: number, bytesPerToken: number): number =>
  Math.ceil((bodyBytes + INJECTED_BYTES_MAX) / bytesPerToken);

/**
 * Reserves one call's worst case (its estimated input plus the output asked for, lowered to what fits down to the
 * floor) and words the countdown from the task path as reserved. Every carrier of a call starts here.
 */
export async function reserveCall(args: {
  ledger: Ledger;
  taskId: string;
  scope: Scope;
  policy: CallPolicy;
  model: string | null;
  /** Output the call asks for; null when left to the provider's default. */
  maxTokens: number | null;
  /** Size of the request as sent: the base of the input estimate. */
  bodyBytes: number;
}): Promise<{ grant: ReserveGrant; countdown: Countdown; maxTokens: number | null }> {
  const { ledger, policy } = args;
  const outputTokensMax = args.maxTokens ?? policy.defaultMaxOutputTokens;
  const grant = await ledger.reserve(
    {
      taskId: args.taskId,
      model: args.model,
      inputTokens: estimateInputTokens(args.bodyBytes, policy.bytesPerToken),
      outputTokensMax,
      outputTokensMin: Math.min(outputTokensMax, ledger.config.floorOutputTokens),
    },
    args.scope,
  );
  // The call may outlast the time-to-live (a long stream): its hold must not lapse while it runs.
  ledger.keepAlive(grant.reservation.id);
  // The output cap to send: what fits, except that a measure task changes nothing the client asked for, not even an
  // output cap it left out (null: leave the request's as it is).
  const maxTokens = grant.path.at(-1)!.policy === 'measure' ? args.maxTokens : grant.outputTokens;
  return { grant, countdown: countdownFor(grant.path, ledger.now()), maxTokens };
}

/**
 * Settles the real usage, or releases the hold when the provider generated nothing (usage null); the call's span
 * (if any) gets a child span for it and the usage and budget as settled. The caller ends the call's span.
 */
export async function finishCall(ledger: Ledger, reservationId: string, usage: Usage | null, span?: CallSpan): Promise<TaskRow | null> {
  const step = span?.child(usage === null ? 'envelope.ledger.release' : 'envelope.ledger.settle');
  try {
    if (usage === null) {
      await ledger.release(reservationId);
      if (step) endChild(step);
      return null;
    }
    const settled = await ledger.settle(reservationId, usage);
    if (step) endChild(step);
    const leaf = settled.path.at(-1) ?? null;
    span?.settled(usage, leaf);
    return leaf;
  } catch (e) {
    if (step) endChild(step, e);
    throw e;
  }
}
