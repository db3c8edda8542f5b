// The budget rules: pure functions from (task path, request, now) to a decision and the mutation that records it.
// Every store and every adapter uses these; stores only make a decision atomic and durable.
import type { BudgetConfig } from './config.js';
import { EnvelopeError } from './errors.js';
import {
  conversationFor,
  costIn,
  estimateInput,
  expectedCost,
  loopTokens,
  withBaseline,
  type InputSource,
} from './estimate.js';
import { countdownFor, type Countdown } from './countdown.js';
import { toCharge, type EstimateReason } from './delivered.js';
import { checkGrant, checkRelease } from './invariants.js';
import type {
  CallCost,
  Conversation,
  Delivered,
  EventDraft,
  Meter,
  Mutation,
  Outcome,
  RateRow,
  ReservationRow,
  RunRecord,
  TaskRow,
  TaskState,
  Unit,
  Usage,
} from './types.js';
import { TOTAL_MAX, type TaskSpec } from './spec.js';
import { formatAmount, fromLedger, toLedger, USD_MICROS, utilization } from './amounts.js';
import { ratedPath, rateSettled } from './admission.js';
import { noWindow } from './rates.js';
import { copyTask, levelFor, merged, restate, round4, touched, unused } from './states.js';
import { budgetOwner, burned, isEnvelope, moreHint, underEnvelope } from './tenants.js';
import { costMicros, priceFor, usageTokens, worstRates, type ModelPrice, type PriceTable } from '../metering/prices.js';

export interface RuleContext {
  nowMs: number;
  config: BudgetConfig;
  prices: PriceTable;
}

/** What a store reads before the rules decide; `path` is root first. */
export interface Snapshot {
  path: TaskRow[];
  reservation?: ReservationRow;
  existing?: TaskRow;
  /** A tenant's rate row (Need.rate), if it has one. */
  rate?: RateRow;
}

export interface Decision<T> {
  result?: T;
  /** Thrown after `mutation` (if any) is committed: a refusal can still change state, e.g. pause a task. */
  error?: EnvelopeError;
  mutation?: Mutation;
}

export { formatAmount, fromLedger, toLedger, USD_MICROS, utilization } from './amounts.js';
export { restate } from './states.js';

// ---------------------------------------------------------------------------------------------------------
// Creation

/**
 * A new task's unit, meter and policy: its own where it names them, else its parent's (SPEC §1, hierarchy), else
 * tokens, `loop` and advisory. A USD task is always billed; a token child of a USD parent counts in `loop`.
 */
function inherited(spec: TaskSpec, parent: TaskRow | undefined): { unit: Unit; meter: Meter; policy: TaskRow['policy'] } {
  const unit = spec.unit ?? parent?.unit ?? 'tokens';
  const meter: Meter = unit === 'usd' ? 'billed' : (spec.meter ?? (parent?.unit === 'tokens' ? parent.meter : 'loop'));
  return { unit, meter, policy: spec.policy ?? parent?.policy ?? 'advisory' };
}

export function planCreate(snap: Snapshot, spec: TaskSpec, ctx: RuleContext): Decision<TaskRow> {
  // The tenant's envelope, when it has one, is the implicit root: on the path, never a parent to inherit from.
  const last = snap.path.at(-1);
  const parent = last && !isEnvelope(last) ? last : undefined;
  const envelope = underEnvelope(snap.path) ? snap.path[0] : undefined;
  if (spec.parentId !== null && !parent) {
    return { error: new EnvelopeError('not_found', `parent task ${spec.parentId} does not exist`) };
  }
  if (parent && spec.tenant !== parent.tenant) {
    return { error: new EnvelopeError('not_found', `parent task ${spec.parentId} does not exist`) };
  }
  const { unit, meter, policy } = inherited(spec, parent);
  if (unit === 'usd' && spec.meter === 'loop') {
    return { error: new EnvelopeError('invalid_request', `task ${spec.id}: a USD task is always billed; leave meter out`) };
  }
  if (spec.overrun !== null && policy !== 'advisory') {
    return { error: new EnvelopeError('invalid_request', 'overrun: overrun applies to advisory tasks only') };
  }
  if (unit === 'tokens' && !Number.isInteger(spec.total)) {
    return { error: new EnvelopeError('invalid_request', 'total: a token total must be a whole number') };
  }
  const total = toLedger(unit, spec.total);
  if (total > TOTAL_MAX) {
    return { error: new EnvelopeError('invalid_request', `task ${spec.id}: a total is at most ${formatAmount(unit, TOTAL_MAX)}`) };
  }
  if (unit === 'tokens' && total < ctx.config.minimumTokens) {
    return {
      error: new EnvelopeError(
        'invalid_request',
        `task ${spec.id}: total ${total.toLocaleString('en-US')} tokens is below the minimum of ${ctx.config.minimumTokens.toLocaleString('en-US')} tokens`,
      ),
    };
  }
  if (total <= 0) return { error: new EnvelopeError('invalid_request', `task ${spec.id}: total must be positive`) };
  // Copied once more, so that a new row has the one shape every changed row has (copyTask).
  const row: TaskRow = copyTask({
    id: spec.id,
    tenant: spec.tenant,
    label: spec.label,
    unit,
    meter,
    total,
    totalApproved: 0,
    policy,
    overrun: policy === 'advisory' ? (spec.overrun ?? ctx.config.overrun) : 0,
    limitCalls: spec.limitCalls,
    limitSeconds: spec.limitSeconds,
    thresholds: spec.thresholds ?? ctx.config.thresholds,
    parentId: spec.parentId,
    pathIds: [...snap.path.map((t) => t.id), spec.id],
    ...unused(ctx.nowMs),
    ...(spec.tpm !== null || spec.rpm !== null ? { rate: noWindow(spec.tpm, spec.rpm) } : {}),
  });
  if (snap.existing) {
    if (sameSettings(snap.existing, row)) return { result: snap.existing };
    return {
      error: new EnvelopeError(
        'conflict',
        `task ${spec.id} already exists with different settings (${describeSettings(snap.existing)}); use a new id`,
      ),
    };
  }
  if (parent) {
    if (parent.state === 'closed') {
      return { error: new EnvelopeError('task_closed', `parent task ${parent.id} is closed`) };
    }
    if (row.pathIds.length - (envelope ? 1 : 0) > ctx.config.depthMax) {
      return { error: new EnvelopeError('invalid_request', `task trees are at most ${ctx.config.depthMax} deep`) };
    }
    if (parent.unit === row.unit) {
      const parentRemaining = parent.total - parent.used - parent.reserved;
      if (row.total > parentRemaining) {
        return {
          error: new EnvelopeError(
            'invalid_request',
            `child task ${row.id} asks for ${formatAmount(row.unit, row.total)} but parent ${parent.id} has only ${formatAmount(parent.unit, Math.max(0, parentRemaining))} remaining`,
          ),
        };
      }
    }
  }
  return { result: row, mutation: { tasks: [row], events: [] } };
}

function sameSettings(a: TaskRow, b: TaskRow): boolean {
  return (
    a.tenant === b.tenant &&
    a.label === b.label &&
    a.unit === b.unit &&
    a.meter === b.meter &&
    a.total - a.totalApproved === b.total && // approvals since creation do not make it a different task
    a.policy === b.policy &&
    a.overrun === b.overrun &&
    a.limitCalls === b.limitCalls &&
    a.limitSeconds === b.limitSeconds &&
    a.parentId === b.parentId &&
    a.thresholds[0] === b.thresholds[0] &&
    a.thresholds[1] === b.thresholds[1] &&
    (a.rate?.tpm ?? null) === (b.rate?.tpm ?? null) &&
    (a.rate?.rpm ?? null) === (b.rate?.rpm ?? null)
  );
}

function describeSettings(t: TaskRow): string {
  return `label ${t.label}, ${formatAmount(t.unit, t.total)}, ${t.policy}, meter ${t.meter}${t.parentId ? `, parent ${t.parentId}` : ''}`;
}

// ---------------------------------------------------------------------------------------------------------
// Reservations

export interface ReserveRequest extends InputSource {
  taskId: string;
  reservationId: string;
  model: string | null;
  /** The output the call asks for (max_tokens), per choice; hard and approval budgets may grant less. */
  outputTokensMax: number;
  /** Refuse rather than grant fewer output tokens than this. Defaults to a useful floor (usefulFloor). */
  outputTokensMin?: number;
  /** Answers the provider generates for the one request (OpenAI `n`): each may use the output granted. */
  choices?: number;
  /**
   * The request multiplies its output in a way that cannot be held for (an `n` out of range, a field the dialect
   * does not know), described for the error: hard and approval budgets refuse it (SPEC §1a), others hold one choice.
   */
  multiplierUnknown?: string;
  /**
   * The caller can count the input exactly (a local tokenizer, the provider's count endpoint): when the estimate
   * alone would refuse the call or cut its output below the floor, the rule asks for that count instead of deciding.
   */
  exactCountAvailable?: boolean;
  /** What the call's admission counted in its tenant's rate window (Ledger.reserve): kept on the reservation. */
  admitted?: ReservationRow['admitted'];
  /** A `remaining` the client carried (Anthropic's task_budget, display units): it can lower the task's, never raise it. */
  remainingCarried?: number;
  ttlMs?: number;
}

export interface ReserveGrant {
  kind: 'grant';
  reservation: ReservationRow;
  /** Output tokens the call may use: `outputTokensMax`, or less where the budget cannot fit it. */
  outputTokens: number;
  /** The path after the reservation, root first. */
  path: TaskRow[];
  /** What the model is told on this call: decided on the use projected with this call's expected cost (SPEC §1a). */
  countdown: Countdown;
}

/** The estimate alone would refuse or cut the call: count its input exactly and ask again (nothing was written). */
export interface ExactCountWanted {
  kind: 'exact_count_wanted';
}

/** Per-task conversion of tokens into the task's ledger units. */
interface Rates {
  inputPerToken: number;
  outputPerToken: number;
}

function ratesFor(t: TaskRow, price: ModelPrice | undefined, model: string | null): Rates {
  if (t.unit === 'tokens') return { inputPerToken: 1, outputPerToken: 1 };
  if (!price) {
    throw new EnvelopeError(
      'price_unknown',
      `task ${t.id} has a USD budget but model ${model ?? '(none)'} has no known price; configure one with --prices FILE or ENVELOPE_PRICES (envelope prices ls shows the known models)`,
      { model },
    );
  }
  // Worst case for input: every token written to the cache, if that costs more than plain input (long-context tiers too).
  return worstRates(price);
}

/**
 * The ceiling a call may reach on this task: the total, or for advisory tasks the total plus the overrun; a
 * measured task has none (its ancestors still limit it).
 */
const spendLimit = (t: TaskRow): number =>
  t.policy === 'measure' ? Number.POSITIVE_INFINITY : t.policy === 'advisory' ? Math.floor(t.total * (1 + t.overrun)) : t.total;
const callLimit = (t: TaskRow): number | null =>
  t.limitCalls === null || t.policy === 'measure' ? null : t.policy === 'advisory' ? Math.floor(t.limitCalls * (1 + t.overrun)) : t.limitCalls;
const secondsLimit = (t: TaskRow): number | null =>
  t.limitSeconds === null || t.policy === 'measure' ? null : t.policy === 'advisory' ? t.limitSeconds * (1 + t.overrun) : t.limitSeconds;

/** Output that keeps a call useful: what the conversation's calls produce (at least 256), never above the configured floor. */
export const USEFUL_OUTPUT_TOKENS_MIN = 256;

function usefulFloor(conv: Conversation | undefined, config: BudgetConfig): number {
  if (!conv) return config.floorOutputTokens;
  return Math.min(config.floorOutputTokens, Math.max(conv.outputTokens, USEFUL_OUTPUT_TOKENS_MIN));
}

export function planReserve(path: TaskRow[], req: ReserveRequest, ctx: RuleContext): Decision<ReserveGrant | ExactCountWanted> {
  for (const t of path) {
    if (t.state === 'closed') {
      return { error: new EnvelopeError('task_closed', `task ${t.id} is closed; start a new task to continue`) };
    }
    if (t.state === 'paused') return { error: pausedError(t) };
  }
  // A carried budget (a compacted context, a restarted process) first lowers what the task has left.
  let carried: Mutation | undefined;
  if (req.remainingCarried !== undefined) {
    const lowered = planLowerRemaining(path, toLedger(path.at(-1)!.unit, req.remainingCarried), ctx);
    if (lowered.mutation) {
      carried = lowered.mutation;
      path = path.map((t) => lowered.mutation!.tasks.find((c) => c.id === t.id) ?? t);
    }
  }
  const decided = decideReserve(path, req, ctx);
  return carried ? merged(carried, decided) : decided;
}

function decideReserve(path: TaskRow[], req: ReserveRequest, ctx: RuleContext): Decision<ReserveGrant | ExactCountWanted> {
  const leaf = path.at(-1)!;
  const enforced = req.multiplierUnknown === undefined ? undefined : path.find((t) => t.policy === 'hard' || t.policy === 'approval');
  if (enforced) {
    return {
      error: new EnvelopeError(
        'invalid_request',
        `task ${enforced.id} has a ${enforced.policy} budget, and this request's ${req.multiplierUnknown}: Envelope cannot hold for the answers it would generate; send a whole number of answers the provider takes (OpenAI n from 1 to 128)`,
      ),
    };
  }
  const price = priceFor(req.model, ctx.prices, ctx.nowMs);
  let rates: Rates[];
  try {
    rates = path.map((t) => ratesFor(t, price, req.model));
  } catch (e) {
    return { error: e as EnvelopeError };
  }
  const conv = ctx.config.admission === 'whole-body' ? undefined : conversationFor(leaf, req.conversation, req.continues);
  // A call that continues an answer of a conversation this task no longer keeps starts a conversation of its own.
  const conversation = req.conversation ?? conv?.key ?? (req.continues ? `continues:${req.continues}`.slice(0, 64) : null);
  const estimate = estimateInput(conv, req, ctx.config.bytesPerToken);
  // Each task holds the input in its own meter: a loop task only what it has not been charged for yet.
  const inputCost = path.map((t, i) =>
    Math.ceil((t.unit === 'tokens' && t.meter === 'loop' ? estimate.freshTokens : estimate.wholeTokens) * rates[i]!.inputPerToken - 1e-9),
  );
  const choices = req.choices ?? 1;
  let granted = req.outputTokensMax;
  let blocking = -1;
  let blockedBy: 'spend' | 'calls' | 'seconds' = 'spend';
  path.forEach((t, i) => {
    const calls = callLimit(t);
    const seconds = secondsLimit(t);
    let fit: number;
    let why: typeof blockedBy = 'spend';
    if (calls !== null && t.calls + t.callsReserved + 1 > calls) {
      fit = -1;
      why = 'calls';
    } else if (seconds !== null && ctx.nowMs - t.createdAtMs > seconds * 1000) {
      fit = -1;
      why = 'seconds';
    } else {
      const room = spendLimit(t) - t.used - t.reserved - inputCost[i]!;
      const perOut = rates[i]!.outputPerToken * choices;
      fit = perOut === 0 ? Number.POSITIVE_INFINITY : Math.floor(room / perOut + 1e-9);
    }
    if (fit < granted) {
      granted = fit;
      blocking = i;
      blockedBy = why;
    }
  });
  const floor = usefulFloor(conv, ctx.config);
  const minOut = Math.min(req.outputTokensMin ?? floor, req.outputTokensMax);
  const cut = granted < minOut || granted < 0 || granted < Math.min(req.outputTokensMax, ctx.config.floorOutputTokens);
  // Only the spend depends on the estimate; an exact count can move it only where input was estimated.
  if (cut && blockedBy === 'spend' && req.exactCountAvailable && req.inputTokensExact === undefined && req.inputTokens === undefined && inputCost[blocking]! > 0) {
    return { result: { kind: 'exact_count_wanted' } };
  }
  if (granted < minOut || granted < 0) {
    const need = inputCost[blocking]! + Math.ceil(minOut * choices * rates[blocking]!.outputPerToken);
    return refuse(path, blocking, blockedBy, need, ctx);
  }
  const amounts = rates.map((r, i) => inputCost[i]! + Math.ceil(granted * choices * r.outputPerToken - 1e-9));
  // The countdown sees the path as it was before this call's hold, plus what a call of this conversation costs.
  const next = {
    expected: path.map((t) => expectedCost(t, leaf, conversation)),
    holdMin: rates.map((r, i) => inputCost[i]! + Math.ceil(Math.min(minOut, granted) * choices * r.outputPerToken - 1e-9)),
  };
  const countdown = countdownFor(path, ctx.nowMs, ctx.config.admission === 'projected' ? next : undefined);
  const held = path.map((t, i) =>
    touched(t, { reserved: t.reserved + amounts[i]!, callsReserved: t.callsReserved + 1 }, ctx.nowMs),
  );
  // A call that fits the budget may still be over a rate limit of its path: refused then, holding nothing.
  const rated = ratedPath(path, held, estimate.wholeTokens + granted * choices, ctx);
  if (!('tasks' in rated)) return rated;
  const tasks = rated.tasks;
  const reservation: ReservationRow = {
    id: req.reservationId,
    taskId: req.taskId,
    pathIds: path.map((t) => t.id),
    amounts,
    model: req.model,
    inputTokens: estimate.wholeTokens,
    outputTokens: granted,
    choices,
    conversation,
    bodyBytes: req.bodyBytes,
    status: 'pending',
    createdAtMs: ctx.nowMs,
    expiresAtMs: ctx.nowMs + (req.ttlMs ?? ctx.config.reservationTtlMs),
    settledAmounts: null,
    ...(rated.rated ? { rated: rated.rated } : {}),
    ...(req.admitted ? { admitted: req.admitted } : {}),
  };
  if (ctx.config.assertions) checkGrant(tasks, reservation);
  return {
    result: { kind: 'grant', reservation, outputTokens: granted, path: tasks, countdown },
    mutation: { tasks, reservation, events: [] },
  };
}

/**
 * A task created by the call that first names it (the gateway's headers, a body's task_budget): one decision, so a
 * call refused before it reaches the provider creates no task (SPEC §2, hardening).
 */
export function planCreateAndReserve(snap: Snapshot, spec: TaskSpec, req: ReserveRequest, ctx: RuleContext): Decision<ReserveGrant | ExactCountWanted> {
  const created = planCreate(snap, spec, ctx);
  if (created.error) return { error: created.error };
  // The task's own path: one that exists already may have been created before its tenant had an envelope.
  const path = [...snap.path.filter((t) => created.result!.pathIds.includes(t.id)), created.result!];
  const reserved = planReserve(path, req, ctx);
  if (!created.mutation) return reserved;
  // Refused (or asking for a count): nothing is written, the refusal's own changes included (a pause of a task
  // that is not there yet).
  if (reserved.error || reserved.result?.kind !== 'grant') return { result: reserved.result, error: reserved.error };
  return merged(created.mutation, reserved);
}


function pausedError(t: TaskRow): EnvelopeError {
  return new EnvelopeError(
    'budget_paused',
    `${budgetOwner(t)} is paused at ${formatAmount(t.unit, t.used)} of ${formatAmount(t.unit, t.total)}, waiting for approval; ${moreHint(t, suggestedAdd(t, 0), Date.now())}`,
    { taskId: t.id },
  );
}

/** A round amount (display units) that makes room for `need` more ledger units, and at least a fifth of the total. */
function suggestedAdd(t: TaskRow, need: number): number {
  const shortfall = Math.max(need - (t.total - t.used - t.reserved), Math.ceil(t.total / 5));
  if (t.unit === 'usd') return Math.ceil(shortfall / 10_000) / 100;
  return Math.ceil(shortfall / 1_000) * 1_000;
}

function refuse(
  path: TaskRow[],
  i: number,
  why: 'spend' | 'calls' | 'seconds',
  need: number,
  ctx: RuleContext,
): Decision<ReserveGrant | ExactCountWanted> {
  const t = path[i]!;
  const used =
    why === 'calls'
      ? `${t.calls} of ${t.limitCalls} calls`
      : why === 'seconds'
        ? `${Math.round((ctx.nowMs - t.createdAtMs) / 1000)} of ${t.limitSeconds} seconds`
        : `${formatAmount(t.unit, t.used + t.reserved).replace(/ tokens$/, '')} of ${formatAmount(t.unit, t.total)}`;
  const holding = t.reserved > 0 && why === 'spend' ? ' (including calls in flight)' : '';
  const needs = why === 'spend' ? ` and this call needs at least ${formatAmount(t.unit, need)}` : '';
  const add = suggestedAdd(t, need);
  const state = t.policy === 'approval' ? ' is paused for approval: it' : '';
  const message = `${budgetOwner(t)}${state} has used ${used}${holding}${needs}; ${moreHint(t, add, ctx.nowMs)}`;
  // An approval task pauses; any other task's state follows its figures (a wall-clock limit expires by itself).
  let mutation: Mutation | undefined;
  if (t.policy === 'approval') {
    const paused: EventDraft = {
      type: 'paused',
      taskId: t.id,
      tenant: t.tenant,
      atMs: ctx.nowMs,
      data: { reason: why, utilization: round4(utilization(t, ctx.nowMs)), used: t.used },
    };
    mutation = { tasks: [touched(t, { state: 'paused' }, ctx.nowMs)], events: [paused] };
  } else {
    const { row, events } = restate(t, t, ctx.nowMs);
    if (row.state !== t.state) mutation = { tasks: [touched(row, {}, ctx.nowMs)], events };
  }
  const code = t.policy === 'approval' ? 'budget_paused' : 'budget_exceeded';
  return {
    error: new EnvelopeError(code, message, { taskId: t.id, reason: why }),
    mutation,
  };
}

/** What a settled call costs each task of the path, in its own unit and meter. */
function chargesFor(path: TaskRow[], r: ReservationRow, usage: Usage, ctx: RuleContext): { amounts: number[]; cost: CallCost } {
  const price = priceFor(r.model, ctx.prices, ctx.nowMs);
  const leaf = path.at(-1)!;
  const conv = r.conversation === null ? undefined : leaf.conversations.find((c) => c.key === r.conversation);
  const cost: CallCost = {
    loop: loopTokens(usage, r.conversation, conv),
    billed: usageTokens(usage),
    costMicros: price ? costMicros(usage, price) : 0,
  };
  const amounts = path.map((t) => {
    if (t.unit === 'usd' && !price) throw new EnvelopeError('price_unknown', `model ${r.model ?? '(none)'} has no known price`);
    return costIn(t, cost);
  });
  return { amounts, cost };
}

function charge(
  path: TaskRow[],
  amounts: number[],
  cost: CallCost,
  r: ReservationRow,
  release: number[] | null,
  leafChanges: Partial<TaskRow>,
  ctx: RuleContext,
): Mutation {
  const mutation: Mutation = { tasks: [], events: [] };
  const model = r.model;
  path.forEach((t, i) => {
    const next = touched(
      t,
      {
        used: t.used + amounts[i]!,
        reserved: t.reserved - (release ? release[i]! : 0),
        callsReserved: t.callsReserved - (release ? 1 : 0),
        calls: t.calls + 1,
        tokensUsed: t.tokensUsed + cost.billed,
        costMicros: t.costMicros + cost.costMicros,
        models: model && !t.models.includes(model) ? [...t.models, model] : t.models,
        ...(t.rate ? { rate: rateSettled(t.rate, r, cost.billed, ctx) } : {}),
        ...(isEnvelope(t) ? { burn: burned(t.burn, cost.billed, ctx.nowMs) } : {}),
        ...(i === path.length - 1 ? leafChanges : {}),
      },
      ctx.nowMs,
    );
    const { row, events } = restate(t, next, ctx.nowMs);
    mutation.tasks.push(row);
    mutation.events.push(...events);
  });
  return mutation;
}

export interface SettleResult {
  reservation: ReservationRow;
  /** False when the reservation had already been settled: nothing was charged again. */
  charged: boolean;
  path: TaskRow[];
  /** The usage charged (the provider's, or the estimate that stood in for it); absent when nothing was charged again. */
  usage?: Usage;
  /** Why the usage charged is an estimate (a `usage_estimated` event says so), when it is. */
  estimated?: EstimateReason;
}

/**
 * Charges the real usage and releases the rest; the call's conversation takes it as its new baseline. A reply without
 * exact usage, or with usage past any call's reach, is charged an estimate with a `usage_estimated` event
 * (budget/delivered.ts). Idempotent by reservation id; a late settle still charges.
 */
export function planSettle(snap: Snapshot, answer: Usage | Delivered, responseId: string | null, ctx: RuleContext): Decision<SettleResult> {
  const r = snap.reservation;
  if (!r) return { error: new EnvelopeError('not_found', 'reservation does not exist') };
  if (r.status === 'settled') return { result: { reservation: r, charged: false, path: snap.path } };
  // Usage that is not the provider's own exact count (a cut stream, absurd figures) is charged as an estimate.
  const { usage, estimated } = toCharge(r, answer);
  let charges;
  try {
    charges = chargesFor(snap.path, r, usage, ctx);
  } catch (e) {
    return { error: e as EnvelopeError };
  }
  const release = r.status === 'pending' ? r.amounts : null;
  const leaf = snap.path.at(-1)!;
  const leafChanges: Partial<TaskRow> =
    r.conversation === null
      ? {}
      : { conversations: withBaseline(leaf.conversations, r.conversation, usage, r.bodyBytes, charges.cost, responseId, ctx.nowMs, ctx.config.conversationsMax) };
  const mutation = charge(snap.path, charges.amounts, charges.cost, r, release, leafChanges, ctx);
  if (estimated) {
    mutation.events.unshift({
      type: 'usage_estimated',
      taskId: r.taskId,
      tenant: leaf.tenant,
      atMs: ctx.nowMs,
      data: { reservation: r.id, reason: estimated.reason, model: r.model, usage, reported: estimated.reported, charged: charges.amounts.at(-1) },
    });
  }
  if (ctx.config.assertions) checkRelease(snap.path, mutation.tasks, r, charges.amounts);
  const reservation: ReservationRow = { ...r, status: 'settled', settledAmounts: charges.amounts };
  mutation.reservation = reservation;
  return { result: { reservation, charged: true, path: mutation.tasks, usage, ...(estimated ? { estimated: estimated.reason } : {}) }, mutation };
}

/** Gives a pending reservation's hold back. `expired` marks the sweeper's releases with an event. */
export function planRelease(snap: Snapshot, expired: boolean, ctx: RuleContext): Decision<boolean> {
  const r = snap.reservation;
  if (!r) return { error: new EnvelopeError('not_found', 'reservation does not exist') };
  if (r.status !== 'pending') return { result: false };
  if (expired && r.expiresAtMs > ctx.nowMs) return { result: false };
  // A released call ran no tokens: its worst case leaves the rate windows too (its request stays counted).
  const tasks = snap.path.map((t, i) =>
    touched(t, { reserved: t.reserved - r.amounts[i]!, callsReserved: t.callsReserved - 1, ...(t.rate ? { rate: rateSettled(t.rate, r, 0, ctx) } : {}) }, ctx.nowMs),
  );
  if (ctx.config.assertions) checkRelease(snap.path, tasks, r, null);
  const leaf = snap.path.at(-1)!;
  const events: EventDraft[] = expired
    ? [
        {
          type: 'reservation_expired',
          taskId: r.taskId,
          tenant: leaf.tenant,
          atMs: ctx.nowMs,
          data: { reservation: r.id, released: r.amounts.at(-1), model: r.model },
        },
      ]
    : [];
  return {
    result: true,
    mutation: { tasks, events, reservation: { ...r, status: expired ? 'expired' : 'released' } },
  };
}

/**
 * Pushes a pending reservation's expiry to `ttlMs` from now: its holder is still at work (a long stream). Expiry then
 * means "the holder stopped", so a dead process's holds go back soon while a live call's never lapse. Never shortens.
 * The result says whether the hold is still pending (there is something to keep alive).
 */
export function planExtend(snap: Snapshot, ttlMs: number, ctx: RuleContext): Decision<boolean> {
  const r = snap.reservation;
  if (!r) return { error: new EnvelopeError('not_found', 'reservation does not exist') };
  if (r.status !== 'pending') return { result: false };
  const expiresAtMs = ctx.nowMs + ttlMs;
  if (expiresAtMs <= r.expiresAtMs) return { result: true };
  return { result: true, mutation: { tasks: [], events: [], reservation: { ...r, expiresAtMs } } };
}

/**
 * Usage the ledger never saw (a client-sent `remaining` lower than the ledger's): charged as spent on the task
 * and its ancestors of the same unit, so a carried budget is never reset upward.
 */
export function planLowerRemaining(path: TaskRow[], remaining: number, ctx: RuleContext): Decision<number> {
  const leaf = path.at(-1)!;
  const ledgerRemaining = leaf.total - leaf.used - leaf.reserved;
  const unseen = ledgerRemaining - Math.max(0, remaining);
  if (unseen <= 0) return { result: 0 };
  const mutation: Mutation = { tasks: [], events: [] };
  for (const t of path) {
    if (t.unit !== leaf.unit) continue;
    const tokens = t.unit === 'tokens' ? unseen : 0;
    const next = touched(t, { used: t.used + unseen, tokensUsed: t.tokensUsed + tokens }, ctx.nowMs);
    const { row, events } = restate(t, next, ctx.nowMs);
    mutation.tasks.push(row);
    mutation.events.push(...events);
  }
  return { result: unseen, mutation };
}

// ---------------------------------------------------------------------------------------------------------
// Approval, progress, closing

export function planApprove(path: TaskRow[], add: number, ctx: RuleContext): Decision<TaskRow> {
  const t = path.at(-1)!;
  if (t.state === 'closed') return { error: new EnvelopeError('task_closed', `task ${t.id} is closed`) };
  if (!(add > 0)) return { error: new EnvelopeError('invalid_request', 'approve needs a positive amount to add') };
  if (t.total + add > TOTAL_MAX) {
    return { error: new EnvelopeError('invalid_request', `task ${t.id}: approving that much would take its total past the maximum of ${formatAmount(t.unit, TOTAL_MAX)}`) };
  }
  const raised = touched(t, { total: t.total + add, totalApproved: t.totalApproved + add }, ctx.nowMs);
  // Going down in utilisation emits nothing but `approved`; a task still over its total stays paused.
  const level = levelFor(utilization(raised, ctx.nowMs), raised.thresholds);
  const state: TaskState = level === 'exhausted' && t.state === 'paused' ? 'paused' : level;
  const row = Object.assign(copyTask(raised), { state });
  const approved: EventDraft = {
    type: 'approved',
    taskId: t.id,
    tenant: t.tenant,
    atMs: ctx.nowMs,
    data: { add, total: row.total, state: row.state },
  };
  return { result: row, mutation: { tasks: [row], events: [approved] } };
}

export function planProgress(path: TaskRow[], done: number, total: number, ctx: RuleContext): Decision<TaskRow> {
  const t = path.at(-1)!;
  const row = touched(t, { progressDone: done, progressTotal: total }, ctx.nowMs);
  return { result: row, mutation: { tasks: [row], events: [] } };
}

export function planClose(path: TaskRow[], outcome: Outcome | undefined, ctx: RuleContext): Decision<TaskRow> {
  const t = path.at(-1)!;
  if (t.state === 'closed') return { result: t };
  const settled = restate(t, t, ctx.nowMs).row;
  const finalOutcome: Outcome =
    outcome ?? (settled.state === 'paused' ? 'paused' : settled.state === 'exhausted' ? 'exhausted' : 'completed');
  const row = touched(t, { state: 'closed', closedAtMs: ctx.nowMs, outcome: finalOutcome }, ctx.nowMs);
  const closed: EventDraft = {
    type: 'closed',
    taskId: t.id,
    tenant: t.tenant,
    atMs: ctx.nowMs,
    data: { outcome: finalOutcome, used: t.used, total: t.total },
  };
  return { result: row, mutation: { tasks: [row], events: [closed], run: runRecordOf(row) } };
}

export function runRecordOf(t: TaskRow): RunRecord {
  return {
    task: t.id,
    tenant: t.tenant,
    label: t.label,
    model: t.models[0] ?? null,
    models: t.models,
    unit: t.unit,
    meter: t.meter,
    total: fromLedger(t.unit, t.total),
    used: fromLedger(t.unit, t.used),
    tokensUsed: t.tokensUsed,
    costUsd: t.costMicros / USD_MICROS,
    calls: t.calls,
    durationMs: (t.closedAtMs ?? t.updatedAtMs) - t.createdAtMs,
    outcome: t.outcome ?? 'completed',
    // A measured run used what the work took, not what a budget allowed: what calibration learns from first.
    budgeted: t.policy !== 'measure',
    parent: t.parentId,
    closedAtMs: t.closedAtMs ?? t.updatedAtMs,
  };
}
