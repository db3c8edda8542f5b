// The ledger's side of one budgeted model call: reserve its worst case (and word the countdown), then settle the real
// usage or release the hold. run-call.ts composes these with the dialect's steps into the one pipeline every carrier runs.
import type { Countdown } from '../budget/countdown.js';
import type { ReserveGrant } from '../budget/rules.js';
import type { Delivered, TaskRow, Usage } from '../budget/types.js';
import type { Ledger, Scope } from '../ledger/ledger.js';
import { endChild, type CallSpan } from './call-span.js';
import { DEFAULT_NATIVE_MODELS } from './native-budgets.js';

export interface CallPolicy {
  /** Models that take Anthropic's native task_budget. */
  nativeModels: readonly string[];
  /** max tokens asked of the provider when the client set none (OpenAI makes it optional). */
  defaultMaxOutputTokens: number;
}

export const DEFAULT_CALL_POLICY: CallPolicy = {
  nativeModels: DEFAULT_NATIVE_MODELS,
  defaultMaxOutputTokens: 4_096,
};

/** What a call's reservation needs to know of the request, whichever carrier it comes by. */
export interface CallRequest {
  model: string | null;
  /** Output the call asks for; null when left to the provider's default. */
  maxTokens: number | null;
  /** Size of the request as the client sent it: what the ledger's estimate starts from. */
  bodyBytes: number;
  conversation: string | null;
  /** The provider-held answer the call continues (OpenAI Responses `previous_response_id`), or null. */
  continues?: string | null;
  /** Answers the provider generates for the one request (OpenAI `n`, Gemini `candidateCount`). */
  choices?: number;
  /** A field that multiplies the output in a way Envelope cannot hold for (CallShape.multiplierUnknown): hard budgets refuse. */
  multiplierUnknown?: string;
  /** A carried task_budget `remaining` (display units): lowers the ledger's, never raises it. */
  remainingCarried?: number;
  /** Counts the whole input exactly (the provider's count endpoint, a local tokenizer); asked only near the edge. */
  countInputTokens?: () => Promise<number | null>;
}

/**
 * Reserves one call's worst case (the ledger estimates its input from the conversation's baseline; the output asked
 * for is lowered to what fits, down to a useful floor) and words the countdown. Every carrier of a call starts here.
 * `create`: the task's spec when the call is the first to name it (created with the reservation, or not at all).
 */
export async function reserveCall(args: {
  ledger: Ledger;
  taskId: string;
  scope: Scope;
  policy: CallPolicy;
  call: CallRequest;
  create?: unknown;
}): Promise<{ grant: ReserveGrant; countdown: Countdown; maxTokens: number | null }> {
  const { ledger, policy, call } = args;
  const outputTokensMax = call.maxTokens ?? policy.defaultMaxOutputTokens;
  const grant = await ledger.reserve(
    {
      taskId: args.taskId,
      model: call.model,
      bodyBytes: call.bodyBytes,
      conversation: call.conversation,
      ...(call.continues ? { continues: call.continues } : {}),
      outputTokensMax,
      ...(call.choices !== undefined ? { choices: call.choices } : {}),
      ...(call.multiplierUnknown !== undefined ? { multiplierUnknown: call.multiplierUnknown } : {}),
      ...(call.remainingCarried !== undefined ? { remainingCarried: call.remainingCarried } : {}),
    },
    args.scope,
    { create: args.create, countInputTokens: call.countInputTokens },
  );
  // The call may outlast the time-to-live (a long stream): its hold must not lapse while it runs.
  ledger.keepAlive(grant.reservation.id);
  // The output cap to send: what fits, except that a measure task changes nothing the client asked for, not even an
  // output cap it left out (null: leave the request's as it is).
  const maxTokens = grant.path.at(-1)!.policy === 'measure' ? call.maxTokens : grant.outputTokens;
  return { grant, countdown: grant.countdown, maxTokens };
}

/**
 * Settles the real usage — or what a reply without it delivered, as an estimate — or releases the hold when the
 * provider generated nothing (null); the call's span (if any) gets a child span for it and the usage and budget as
 * settled. Returns the task as settled and the usage charged; the caller ends the call's span.
 */
export async function finishCall(
  ledger: Ledger,
  reservationId: string,
  answer: Usage | Delivered | null,
  span?: CallSpan,
  responseId: string | null = null,
): Promise<{ leaf: TaskRow | null; usage: Usage | null }> {
  const step = span?.child(answer === null ? 'envelope.ledger.release' : 'envelope.ledger.settle');
  try {
    if (answer === null) {
      await ledger.release(reservationId);
      if (step) endChild(step);
      return { leaf: null, usage: null };
    }
    const settled = await ledger.settle(reservationId, answer, responseId);
    if (step) endChild(step);
    const leaf = settled.path.at(-1) ?? null;
    const usage = settled.usage ?? null;
    // A cut stream was recorded where it broke; usage past any call's reach is the provider's fault, recorded here.
    if (settled.estimated === 'usage_implausible') span?.fault('upstream_usage_implausible', 'the provider reported usage past any call’s reach: charged the call’s hold instead');
    if (usage) span?.settled(usage, leaf);
    return { leaf, usage };
  } catch (e) {
    if (step) endChild(step, e);
    throw e;
  }
}
