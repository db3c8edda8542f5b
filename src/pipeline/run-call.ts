// One budgeted model call, as small steps over one context, whatever carries it — the gateway, an SDK client wrapped
// with task.wrap(), the AI SDK middleware:
//
//   validate → identify → reserve → inject → forward → settle        (one `finally` for telemetry)
//
// A carrier supplies only what differs: which task the call is for, how it is sent upstream and relayed back, and how
// an error is answered. Every step after a reservation runs under one try/finally that releases the hold unless the
// call was settled: a body the countdown cannot go into, an upstream that is down, a store that fails mid-call.
import type { Context } from '@opentelemetry/api';
import { EnvelopeError, isEnvelopeError } from '../budget/errors.js';
import type { Countdown } from '../budget/countdown.js';
import type { ReserveGrant } from '../budget/rules.js';
import type { Delivered, TaskRow, Usage } from '../budget/types.js';
import type { Ledger, Scope } from '../ledger/ledger.js';
import type { CallPlan, CallShape, Dialect, Provider } from '../providers/provider.js';
import { finishCall, reserveCall, type CallPolicy } from './budgeted-call.js';
import { CallSpan, endChild, type Carrier as CarrierName } from './call-span.js';
import { NATIVE_BUDGET_FLOOR_TOKENS, NativeBudgetTurns, supportsNativeBudget } from './native-budgets.js';

/** What every call of one gateway or one in-process Envelope shares. */
export interface CallEnv {
  ledger: Ledger;
  policy: CallPolicy;
  turns: NativeBudgetTurns;
}

export const newCallEnv = (ledger: Ledger, policy: CallPolicy): CallEnv => ({
  ledger,
  policy,
  turns: new NativeBudgetTurns(),
});

/** The task a call is for; `create` is the spec to create it with on first sight, or null (it must exist). */
export interface TaskRef {
  id: string;
  create: Record<string, unknown> | null;
}

/** The provider's answer, read whole (a stream: relayed to its end). */
export interface Answer {
  /** What the provider billed; null when it generated nothing (an error), and the hold goes back. */
  usage: Usage | null;
  /** A reply without exact usage (a cut stream): what it delivered, charged as an estimate when `usage` is null. */
  delivered?: Delivered | null;
  /** The id the provider gave the answer, when a later call can continue from it. */
  responseId?: string | null;
  /** What waits for the settled figures: a JSON answer with its budget headers, a stream's closing comment. */
  finish?(row: TaskRow | null): Promise<void> | void;
}

export interface Carrier<Body> {
  readonly name: CarrierName;
  /** Which task the call is for (null: none, it passes through); runs after validation. */
  identify(call: BudgetedCall<Body>): TaskRef | null;
  /** Sends `call.outgoing` upstream and relays the answer; resolves once the answer has been read whole. */
  forward(call: BudgetedCall<Body>): Promise<Answer>;
  /** Answers with an error (in the provider's shape) — or, once the answer has begun, cuts it off. */
  fail(call: BudgetedCall<Body>, e: unknown, row?: TaskRow): Promise<void> | void;
  /** Told once when the call is over, whatever happened (metrics, the call log). */
  end?(call: BudgetedCall<Body>): void;
  /** POSTs a JSON body to a path of the provider's upstream with the caller's own headers (an exact token count). */
  ask?(call: BudgetedCall<Body>, path: string, body: unknown): Promise<unknown>;
}

/** The one context every step reads and writes. */
export class BudgetedCall<Body> {
  shape: CallShape | null = null;
  ref: TaskRef | null = null;
  span: CallSpan | null = null;
  grant: ReserveGrant | null = null;
  countdown: Countdown | null = null;
  plan: CallPlan | null = null;
  /** The body as sent upstream: the client's with the plan applied and Envelope's fields removed. */
  outgoing: Body;
  /** The HTTP status the caller got (0 until known), the usage settled, and whether a budget refused the call. */
  status = 0;
  usage: Usage | null = null;
  refused = false;
  /** A rate limit refused the call (429): whose, and which. */
  rateLimited: { scope: string; limit: string } | null = null;
  readonly startedAtMs = performance.now();
  /** The GenAI system for telemetry; the dialect's unless the carrier knows better (the AI SDK's provider). */
  system: string;

  constructor(
    readonly env: CallEnv,
    readonly dialect: Dialect<Body>,
    /** The request body as the client sent it, parsed. */
    readonly body: Body,
    /** Its size as sent: the base of the input estimate (before Envelope adds anything). */
    readonly bodyBytes: number,
    /** The path it was sent to (Gemini names the model and streaming there). */
    readonly path: string,
    readonly scope: Scope,
    /** The parent of the call's span (a client's traceparent, or the caller's active span). */
    readonly traceParent?: Context,
  ) {
    this.outgoing = body;
    this.system = dialect.system;
  }

  /** The task as reserved (before settlement). */
  get leaf(): TaskRow | undefined {
    return this.grant?.path.at(-1);
  }
}

export async function runCall<Body>(call: BudgetedCall<Body>, carrier: Carrier<Body>): Promise<void> {
  try {
    validate(call);
    call.ref = carrier.identify(call) ?? (await countedUnderTenant(call));
    if (call.ref === null) {
      call.outgoing = call.dialect.strip(call.body);
      const answer = await carrier.forward(call);
      call.usage = answer.usage;
      await answer.finish?.(null);
      return;
    }
    call.span = CallSpan.start(carrier.name, call.system, call.ref.id, call.shape!, call.traceParent);
    await reserve(call, carrier);
    let settled = false;
    try {
      inject(call);
      const answer = await carrier.forward(call);
      const row = await settle(call, answer);
      settled = true;
      await answer.finish?.(row);
    } finally {
      if (!settled) await call.env.ledger.release(call.grant!.reservation.id);
    }
  } catch (e) {
    await refuse(call, carrier, e);
  } finally {
    carrier.end?.(call);
    call.span?.end();
  }
}

/**
 * A call that names no task is still counted under its tenant when the operator governs it (SPEC §2, §4a): in the
 * tenant's envelope, against its rate limits. So no client escapes the cap by naming no task.
 */
async function countedUnderTenant<Body>(call: BudgetedCall<Body>): Promise<TaskRef | null> {
  if (call.scope.tenant === undefined) return null;
  const policy = await call.env.ledger.governance.policyOf(call.scope.tenant);
  return policy?.envelopeId ? { id: policy.envelopeId, create: null } : null;
}

/** validate: what the call asks for, from the dialect; a body it would refuse or Envelope could not rewrite is a 400. */
function validate<Body>(call: BudgetedCall<Body>): void {
  const shape = call.dialect.parse(call.body, call.path);
  call.shape = shape;
}

/**
 * reserve: the worst case on the task and its ancestors — created with it on first sight when the call describes it,
 * a carried `remaining` applied in the same step. Near the budget's edge the ledger asks the provider's exact count.
 */
async function reserve<Body>(call: BudgetedCall<Body>, carrier: Carrier<Body>): Promise<void> {
  const { ledger, policy } = call.env;
  const ref = call.ref!;
  const shape = call.shape!;
  const step = call.span?.child('envelope.ledger.reserve');
  const provider = call.dialect as Partial<Provider>;
  const ask = carrier.ask?.bind(carrier);
  const countInputTokens =
    provider.countInputTokens && ask
      ? async (): Promise<number | null> => {
          try {
            return await provider.countInputTokens!({ body: call.body as Record<string, unknown>, path: call.path, post: (path, body) => ask(call, path, body) });
          } catch {
            return null; // no count: the estimate stands
          }
        }
      : undefined;
  try {
    const reserved = await reserveCall({
      ledger,
      taskId: ref.id,
      scope: call.scope,
      policy,
      create: ref.create ?? undefined,
      call: {
        model: shape.model,
        maxTokens: shape.maxTokens,
        bodyBytes: call.bodyBytes,
        conversation: shape.conversation,
        continues: shape.continues,
        choices: shape.choices,
        ...(shape.multiplierUnknown ? { multiplierUnknown: shape.multiplierUnknown } : {}),
        ...(shape.taskBudget?.remaining !== undefined ? { remainingCarried: shape.taskBudget.remaining } : {}),
        countInputTokens,
      },
    });
    call.grant = reserved.grant;
    call.countdown = reserved.countdown;
    call.plan = { maxTokens: reserved.maxTokens, countdown: null, nativeBudget: null };
    if (step) endChild(step);
  } catch (e) {
    if (step) endChild(step, e);
    if (isEnvelopeError(e) && e.code === 'not_found' && ref.create === null) {
      throw new EnvelopeError('not_found', `${e.message}; to create it on first sight send x-envelope-budget: <total> (and x-envelope-policy, x-envelope-label) with it`);
    }
    throw e;
  }
}

/** inject: the plan (output cap, countdown or native budget) applied to a copy of the body. */
function inject<Body>(call: BudgetedCall<Body>): void {
  const leaf = call.leaf!;
  const shape = call.shape!;
  const nativeBudget = nativeBudgetFor(leaf, call.dialect, shape, call.env);
  const text = call.countdown!.text;
  const plan: CallPlan = { maxTokens: call.plan!.maxTokens, countdown: nativeBudget || !text ? null : text, nativeBudget };
  call.plan = plan;
  call.span?.reserved(call.grant!, shape.maxTokens, nativeBudget ? 'native' : plan.countdown ? 'countdown' : 'none');
  try {
    call.outgoing = call.dialect.prepare(call.body, plan);
  } catch (e) {
    if (isEnvelopeError(e)) throw e;
    throw new EnvelopeError('invalid_request', `Envelope cannot add its countdown to this request body (${(e as Error).message}); check the shape of the last user message`);
  }
}

function nativeBudgetFor(leaf: TaskRow, dialect: Dialect<unknown>, shape: CallShape, env: CallEnv): CallPlan['nativeBudget'] {
  if (!(dialect as Partial<Provider>).nativeBudget || leaf.unit !== 'tokens' || leaf.policy === 'measure') return null;
  if (!supportsNativeBudget(shape.model, env.policy.nativeModels)) return null;
  const ledgerRemaining = Math.max(0, leaf.total - leaf.used);
  if (ledgerRemaining < NATIVE_BUDGET_FLOOR_TOKENS) return null;
  const remaining = env.turns.remainingFor(leaf.id, ledgerRemaining, shape.turnStart, shape.messageCount);
  return { total: leaf.total, remaining: Math.max(NATIVE_BUDGET_FLOOR_TOKENS, Math.min(remaining, leaf.total)) };
}

/**
 * settle: the real usage (or an estimate of what a reply without it delivered), or the hold released when the provider
 * generated nothing; returns the task as settled. The answer's id goes to the ledger with the conversation's
 * baseline, so a later call that continues from it (on any replica) is known to be that conversation.
 */
async function settle<Body>(call: BudgetedCall<Body>, answer: Answer): Promise<TaskRow | null> {
  const settled = await finishCall(call.env.ledger, call.grant!.reservation.id, answer.usage ?? answer.delivered ?? null, call.span ?? undefined, answer.responseId ?? null);
  call.usage = settled.usage;
  return settled.leaf;
}

/** An error before or during the call: the caller gets it in the provider's shape, the span and status record it. */
async function refuse<Body>(call: BudgetedCall<Body>, carrier: Carrier<Body>, e: unknown): Promise<void> {
  if (!isEnvelopeError(e)) {
    // The carrier recorded what it knows (an upstream that could not be reached); anything else is a fault of ours.
    if (call.status === 0) call.span?.fault('internal', (e as Error).message);
    call.status = call.status || 500;
    await carrier.fail(call, e);
    return;
  }
  const row = call.ref && e.httpStatus === 402 ? await call.env.ledger.findTask(call.ref.id, call.scope) : undefined;
  call.status = e.httpStatus;
  call.refused = e.httpStatus === 402;
  if (e.code === 'rate_limited') call.rateLimited = { scope: String(e.details.scope), limit: String(e.details.reason) };
  if (e.code !== 'upstream_error') call.span?.refused(e, row);
  await carrier.fail(call, e, row);
}
