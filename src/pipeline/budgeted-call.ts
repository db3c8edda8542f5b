// One budgeted model call, whatever carries it (the gateway, or an SDK client wrapped in-process):
// reserve the worst case → apply the plan (max tokens, countdown or native budget) → forward → settle or release.
import { countdownFor, type Countdown } from '../budget/countdown.js';
import { isEnvelopeError } from '../budget/errors.js';
import type { ReserveGrant } from '../budget/rules.js';
import type { TaskRow, Usage } from '../budget/types.js';
import type { Ledger, Scope } from '../ledger/ledger.js';
import type { CallPlan, CallShape, Dialect } from '../providers/dialect.js';
import { endChild, type CallSpan } from './call-span.js';
import { DEFAULT_NATIVE_MODELS, NATIVE_BUDGET_FLOOR_TOKENS, NativeBudgetTurns, supportsNativeBudget, TASK_BUDGET_BETA } from './native-budgets.js';

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

export interface StartedCall {
  body: Record<string, unknown>;
  /** Headers to add upstream (the beta header for a native budget). */
  betaHeader: string | null;
  reservationId: string;
  grant: ReserveGrant;
  countdown: string;
}

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

export async function startCall(args: {
  ledger: Ledger;
  dialect: Dialect;
  taskId: string;
  scope: Scope;
  body: Record<string, unknown>;
  shape: CallShape;
  bodyBytes: number;
  policy: CallPolicy;
  turns: NativeBudgetTurns;
  /** The call's span: the reservation is a child of it, and the grant is recorded on it. */
  span?: CallSpan;
}): Promise<StartedCall> {
  const { ledger, dialect, taskId, scope, shape, policy, span } = args;
  const reserving = span?.child('envelope.ledger.reserve');
  let reserved;
  try {
    // A carried budget (after compaction or a restart) can lower what the ledger has left, never raise it.
    if (shape.taskBudget?.remaining !== undefined) await ledger.lowerRemaining(taskId, shape.taskBudget.remaining, scope);
    reserved = await reserveCall({ ledger, taskId, scope, policy, model: shape.model, maxTokens: shape.maxTokens, bodyBytes: args.bodyBytes });
  } catch (e) {
    // A task not there yet is no failure: the gateway creates it from the call's headers and reserves again.
    if (reserving) endChild(reserving, isEnvelopeError(e) && e.code === 'not_found' ? undefined : e);
    throw e;
  }
  if (reserving) endChild(reserving);
  const { grant, countdown } = reserved;
  const leaf = grant.path.at(-1)!;
  const nativeBudget = nativeBudgetFor(leaf, dialect, shape, policy, args.turns);
  const plan: CallPlan = {
    maxTokens: reserved.maxTokens,
    countdown: nativeBudget || !countdown.text ? null : countdown.text,
    nativeBudget,
  };
  span?.reserved(grant, shape.maxTokens, nativeBudget ? 'native' : plan.countdown ? 'countdown' : 'none');
  return {
    body: dialect.prepare(args.body, plan),
    betaHeader: nativeBudget ? TASK_BUDGET_BETA : null,
    reservationId: grant.reservation.id,
    grant,
    countdown: countdown.text,
  };
}

function nativeBudgetFor(
  leaf: TaskRow,
  dialect: Dialect,
  shape: CallShape,
  policy: CallPolicy,
  turns: NativeBudgetTurns,
): CallPlan['nativeBudget'] {
  if (dialect.name !== 'anthropic' || leaf.unit !== 'tokens' || leaf.policy === 'measure') return null;
  if (!supportsNativeBudget(shape.model, policy.nativeModels)) return null;
  const ledgerRemaining = Math.max(0, leaf.total - leaf.used);
  if (ledgerRemaining < NATIVE_BUDGET_FLOOR_TOKENS) return null;
  const remaining = turns.remainingFor(leaf.id, ledgerRemaining, shape.turnStart, shape.messageCount);
  return { total: leaf.total, remaining: Math.max(NATIVE_BUDGET_FLOOR_TOKENS, Math.min(remaining, leaf.total)) };
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

/** `anthropic-beta` with one more value, keeping what the client already asked for. */
export function withBeta(existing: string | string[] | undefined, beta: string): string {
  const values = (Array.isArray(existing) ? existing.join(',') : (existing ?? ''))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!values.includes(beta)) values.push(beta);
  return values.join(',');
}
