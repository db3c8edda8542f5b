// The ledger: every budget operation as (what to load, which rule decides), run atomically by a store.
// The gateway and the in-process library both go through this class; neither decides anything itself.
import { reservationId } from './ids.js';
import { DEFAULT_BUDGET_CONFIG, type BudgetConfig } from '../budget/config.js';
import { EnvelopeError } from '../budget/errors.js';
import { planCloseIdle } from '../budget/idle.js';
import {
  planApprove,
  planClose,
  planCreate,
  planCreateAndReserve,
  planLowerRemaining,
  planProgress,
  planExtend,
  planRelease,
  planReserve,
  planSettle,
  toLedger,
  type Decision,
  type ExactCountWanted,
  type ReserveGrant,
  type ReserveRequest,
  type RuleContext,
  type SettleResult,
  type Snapshot,
} from '../budget/rules.js';
import { parseTaskId, parseTaskSpec, shownIdOf, storeIdOf, type TaskSpec } from '../budget/spec.js';
import { isDelivered } from '../budget/delivered.js';
import { INJECTED_BYTES_MAX } from '../budget/estimate.js';
import { envelopeIdOf, isEnvelopeId, withPeriods } from '../budget/tenants.js';
import type { Delivered, Outcome, ReservationRow, RunRecord, StoredEvent, TaskRow, Usage } from '../budget/types.js';
import { viewTask, type TaskView } from '../budget/view.js';
import { usageTokens, type PriceTable } from '../metering/prices.js';
import { parsePriceTable } from '../metering/prices-file.js';
import { BoundedMap } from '../store/bounded-map.js';
import { assertionsOn } from '../store/snapshot.js';
import type { EventQuery, LedgerStore, Need, RunQuery, TaskQuery } from '../store/store.js';
import { Governance } from './governance.js';

export interface LedgerOptions {
  config?: Partial<BudgetConfig>;
  /** The user's prices, over the catalog's. */
  prices?: PriceTable;
  clock?: () => number;
}

/**
 * Who is asking: a tenant sees and changes only its own tasks, by ids of its own (the store keeps them as `tenant~id`:
 * budget/spec.ts); no tenant means the admin, who names every task by its store id.
 */
export interface Scope {
  tenant?: string;
}

/** The store id of a task a caller names. */
export const idIn = (scope: Scope, id: string): string => (scope.tenant === undefined ? id : storeIdOf(scope.tenant, id));

/** A row as the caller sees it: a tenant's own ids without its prefix. */
export function shownRow(scope: Scope, row: TaskRow): TaskRow {
  if (scope.tenant === undefined) return row;
  const shown = (id: string): string => shownIdOf(scope.tenant, id);
  return { ...row, id: shown(row.id), parentId: row.parentId === null ? null : shown(row.parentId), pathIds: row.pathIds.map(shown) };
}

/** A refusal as the caller reads it: a tenant's messages name its tasks by its own ids. */
function shownError(scope: Scope, e: unknown): unknown {
  if (scope.tenant !== undefined && e instanceof EnvelopeError) e.message = e.message.split(storeIdOf(scope.tenant, '')).join('');
  return e;
}

/** A new task's spec with the store's ids: its own under its tenant, its parent as the caller named it. */
function stored(scope: Scope, spec: TaskSpec): TaskSpec {
  return { ...spec, id: storeIdOf(spec.tenant, spec.id), parentId: spec.parentId === null ? null : idIn(scope, spec.parentId) };
}

/** A reservation as callers ask for it: the request's size and conversation may be left out when `inputTokens` is given. */
export type ReserveInput = Omit<ReserveRequest, 'reservationId' | 'bodyBytes' | 'conversation'> & {
  reservationId?: string;
  bodyBytes?: number;
  conversation?: string | null;
};

export interface ReserveOptions {
  /** The task's spec, to create it with this call's reservation if it does not exist yet (one atomic step). */
  create?: unknown;
  /** Counts the request's whole input exactly, asked for only where the estimate alone would refuse or cut the call. */
  countInputTokens?: () => Promise<number | null>;
}

const CONVERSATION_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * A caller's reservation as the rules take it, on the store's id of its task. Written out field by field (the type
 * makes each one listed): a spread of the caller's object costs more than the rest of the checks together.
 */
function requestOf(input: ReserveInput, taskId: string, clock: () => number, options: ReserveOptions): ReserveRequest {
  if (input.inputTokens === undefined && input.bodyBytes === undefined) {
    throw new EnvelopeError('invalid_request', 'a reservation needs the request size (bodyBytes) or its worst-case inputTokens');
  }
  const req: { [K in keyof Required<ReserveRequest>]: ReserveRequest[K] } = {
    taskId,
    reservationId: input.reservationId ?? reservationId(clock()),
    model: input.model,
    bodyBytes: input.bodyBytes ?? 0,
    conversation: input.conversation ?? null,
    continues: input.continues,
    inputTokens: input.inputTokens,
    inputTokensExact: input.inputTokensExact,
    outputTokensMax: input.outputTokensMax,
    outputTokensMin: input.outputTokensMin,
    choices: input.choices,
    multiplierUnknown: input.multiplierUnknown,
    exactCountAvailable: options.countInputTokens !== undefined,
    admitted: input.admitted,
    remainingCarried: input.remainingCarried,
    ttlMs: input.ttlMs,
  };
  return req;
}

export class Ledger {
  readonly store: LedgerStore;
  readonly config: BudgetConfig;
  readonly prices: PriceTable;
  private readonly clock: () => number;
  private readonly listeners = new Set<() => void>();
  /** Reservations of calls this process is still working on: when each began and was last extended (ledger clock). */
  private readonly held = new Map<string, { sinceMs: number; extendedMs: number }>();
  private keeper: NodeJS.Timeout | null = null;
  /** Tenant envelopes and rate limits: which apply, admission, the operator's settings. */
  readonly governance: Governance;
  /** The tenant of each task this process has reserved on (a task's tenant never changes). */
  private readonly tenants = new BoundedMap<string, string>(100_000);

  constructor(store: LedgerStore, options: LedgerOptions = {}) {
    this.store = store;
    this.config = { ...DEFAULT_BUDGET_CONFIG, assertions: assertionsOn(), ...options.config };
    this.prices = parsePriceTable(options.prices ?? {}, 'prices');
    // The store's clock by default, so that replicas agree on expiries and on when a period ends.
    this.clock = options.clock ?? (store.now ? () => store.now!() : Date.now);
    this.governance = new Governance(store, () => this.ctx());
  }

  now(): number {
    return this.clock();
  }

  private ctx(): RuleContext {
    return { nowMs: this.clock(), config: this.config, prices: this.prices };
  }

  /**
   * Runs a rule on a task's path, refusing tasks outside the caller's scope as if they did not exist. A tenant
   * envelope is not a task: only a reservation (a call counted in it) may name one.
   */
  private async onPath<T>(taskId: string, scope: Scope, rule: (path: TaskRow[], ctx: RuleContext) => Decision<T>, envelope = false) {
    if (isEnvelopeId(taskId) && !envelope) throw notFound(taskId);
    const result = await this.atomically({ path: taskId }, (snap: Snapshot) => {
      const leaf = snap.path.at(-1);
      if (!leaf || leaf.id !== taskId || (scope.tenant !== undefined && leaf.tenant !== scope.tenant)) {
        return { error: notFound(taskId) };
      }
      return rule(snap.path, this.ctx());
    });
    this.changed();
    return result;
  }

  /** `onPath` for a caller's own id, answering with the task's row as the caller sees it. */
  private async onPathShown(taskId: string, scope: Scope, rule: (path: TaskRow[], ctx: RuleContext) => Decision<TaskRow>): Promise<TaskRow> {
    try {
      return shownRow(scope, await this.onPath(idIn(scope, taskId), scope, rule));
    } catch (e) {
      throw shownError(scope, e);
    }
  }

  /** A rule run by the store on rows as they stand now: an envelope whose period ended starts over first. */
  private atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T> {
    return this.store.atomically(need, withPeriods(this.clock(), decide));
  }

  /** Creates a task, or returns the existing one when the same id comes again with the same settings. */
  async createTask(input: unknown, scope: Scope = {}): Promise<TaskRow> {
    const parsed: TaskSpec = parseTaskSpec(input, { tenant: scope.tenant });
    if (scope.tenant !== undefined && parsed.tenant !== scope.tenant) {
      throw new EnvelopeError('invalid_request', 'a tenant key can only create tasks for its own tenant');
    }
    const spec = stored(scope, parsed);
    // A root task hangs under its tenant's envelope, if the tenant has one.
    const row = await this.atomically({ path: spec.parentId ?? envelopeIdOf(spec.tenant), existing: spec.id }, (snap) => {
      // Unreachable by construction (each tenant's ids are its own); kept as an invariant.
      if (snap.existing && snap.existing.tenant !== spec.tenant) return { error: new EnvelopeError('conflict', `task id ${spec.id} is taken; choose another id`) };
      return planCreate(snap, spec, this.ctx());
    }).catch((e: unknown) => {
      throw shownError(scope, e);
    });
    this.changed();
    return shownRow(scope, row);
  }

  /**
   * Holds one call's worst case on a task and its ancestors (creating the task first when `options.create` describes
   * it and it does not exist) and words its countdown. Where the estimate alone would refuse or cut the call and the
   * caller can count the input exactly, it is counted and the call decided again on that count.
   */
  async reserve(input: ReserveInput, scope: Scope = {}, options: ReserveOptions = {}): Promise<ReserveGrant> {
    try {
      return await this.reserveStored(requestOf(input, idIn(scope, input.taskId), this.clock, options), scope, options);
    } catch (e) {
      throw shownError(scope, e);
    }
  }

  /** `reserve` on the store's id of the task; its grant's rows carry store ids. */
  private async reserveStored(req: ReserveRequest, scope: Scope, options: ReserveOptions): Promise<ReserveGrant> {
    checkCount('bodyBytes', req.bodyBytes);
    if (req.inputTokens !== undefined) checkCount('inputTokens', req.inputTokens);
    if (req.inputTokensExact !== undefined) checkCount('inputTokensExact', req.inputTokensExact);
    checkCount('outputTokensMax', req.outputTokensMax);
    if (req.outputTokensMin !== undefined) checkCount('outputTokensMin', req.outputTokensMin);
    if (req.choices !== undefined && !(Number.isInteger(req.choices) && req.choices >= 1 && req.choices <= CHOICES_MAX)) {
      throw new EnvelopeError('invalid_request', `choices must be a whole number from 1 to ${CHOICES_MAX}`);
    }
    if (req.multiplierUnknown !== undefined && !(typeof req.multiplierUnknown === 'string' && req.multiplierUnknown.length <= 200)) {
      throw new EnvelopeError('invalid_request', 'multiplierUnknown must describe the field in at most 200 characters');
    }
    if (req.continues !== undefined && req.continues !== null && !(typeof req.continues === 'string' && req.continues.length <= 256)) {
      throw new EnvelopeError('invalid_request', 'continues must be a response id of at most 256 characters');
    }
    if (req.conversation !== null && !CONVERSATION_PATTERN.test(req.conversation)) {
      throw new EnvelopeError('invalid_request', 'conversation must be 1-64 letters, digits and . _ : -');
    }
    if (req.ttlMs !== undefined && !(Number.isInteger(req.ttlMs) && req.ttlMs > 0)) {
      throw new EnvelopeError('invalid_request', 'ttlMs must be a whole number of milliseconds > 0');
    }
    if (req.remainingCarried !== undefined && !(Number.isFinite(req.remainingCarried) && req.remainingCarried >= 0)) {
      throw new EnvelopeError('invalid_request', 'remaining must be a number ≥ 0');
    }
    const parsed: TaskSpec | null = options.create === undefined ? null : parseTaskSpec(options.create, { tenant: scope.tenant });
    const spec = parsed && stored(scope, parsed);
    if (spec && (spec.id !== req.taskId || (scope.tenant !== undefined && spec.tenant !== scope.tenant))) {
      throw new EnvelopeError('invalid_request', `the spec to create names task ${spec.id}, the call task ${req.taskId}`);
    }
    // The tenant's rate limit first (an atomic step of its own: SPEC §4a), then the reservation; a call the
    // reservation refuses is taken back out of the window.
    const tenant = scope.tenant ?? spec?.tenant ?? ((await this.governance.any()) ? await this.tenantOf(req.taskId) : undefined);
    const policy = tenant === undefined ? undefined : await this.governance.policyOf(tenant);
    if (policy?.limited) req.admitted = (await this.governance.admit(tenant!, req.taskId, this.admissionTokens(req))) ?? undefined;
    try {
      let decided = await this.decideReserve(req, scope, spec, policy?.envelopeId ?? null);
      if (decided.kind === 'exact_count_wanted') {
        const exact = await options.countInputTokens!();
        const counted: ReserveRequest = { ...req, exactCountAvailable: false, ...(exact === null ? {} : { inputTokensExact: exact }) };
        decided = await this.decideReserve(counted, scope, spec, policy?.envelopeId ?? null);
      }
      if (decided.kind !== 'grant') throw new EnvelopeError('internal', 'a reservation was not decided');
      return decided;
    } catch (e) {
      if (req.admitted) await this.governance.correct(req.admitted, 0, -1);
      throw e;
    }
  }

  /** What a call counts in its tenant's window at admission: its worst case, as the rules estimate a first call. */
  private admissionTokens(req: ReserveRequest): number {
    const input = req.inputTokens ?? req.inputTokensExact ?? Math.ceil((req.bodyBytes + INJECTED_BYTES_MAX) / this.config.bytesPerToken);
    return input + req.outputTokensMax * (req.choices ?? 1);
  }

  /** The tenant of a task, read once (undefined: no such task, and the reservation will say so). */
  private async tenantOf(taskId: string): Promise<string | undefined> {
    let tenant = this.tenants.get(taskId);
    if (tenant === undefined) {
      tenant = (await this.store.getTask(taskId))?.tenant;
      if (tenant !== undefined) this.tenants.set(taskId, tenant);
    }
    return tenant;
  }

  /**
   * `envelopeId`: the envelope the tenant has now. A task created before it existed is not under it, and may not
   * spend outside it: the tenant starts a new task (it then hangs under the envelope).
   */
  private async decideReserve(req: ReserveRequest, scope: Scope, spec: TaskSpec | null, envelopeId: string | null): Promise<ReserveGrant | ExactCountWanted> {
    const outside = (path: TaskRow[]): EnvelopeError | undefined =>
      envelopeId !== null && path[0]!.id !== envelopeId
        ? new EnvelopeError('budget_exceeded', `task ${req.taskId} was started before tenant ${path.at(-1)!.tenant} had an envelope and cannot spend outside it; start a new task, which will count against the envelope`, { taskId: req.taskId, reason: 'envelope' })
        : undefined;
    try {
      return await this.onPath(req.taskId, scope, (path, ctx) => {
        const error = outside(path);
        return error ? { error } : planReserve(path, req, ctx);
      }, true);
    } catch (e) {
      // First sight of a task its call describes: created together with the call's hold, or not at all.
      if (!spec || !(e instanceof EnvelopeError) || e.code !== 'not_found') throw e;
    }
    const result = await this.atomically({ path: spec.parentId ?? envelopeIdOf(spec.tenant), existing: spec.id }, (snap) => {
      if (snap.existing && snap.existing.tenant !== spec.tenant) return { error: notFound(spec.id) };
      const decided = planCreateAndReserve(snap, spec, req, this.ctx());
      const error = decided.result?.kind === 'grant' ? outside(decided.result.path) : undefined;
      return error ? { error } : decided;
    });
    this.changed();
    return result;
  }

  /**
   * Keeps a reservation from expiring while this process works on its call (a long stream): its expiry is pushed a
   * time-to-live ahead every third of one, until it is settled or released. If the process dies the pushing stops,
   * and the sweeper gives the hold back one time-to-live later.
   */
  keepAlive(reservationId: string): void {
    const now = this.clock();
    this.held.set(reservationId, { sinceMs: now, extendedMs: now });
    if (this.keeper) return;
    this.keeper = setInterval(() => void this.extendHeld(), Math.max(1, Math.floor(this.config.reservationTtlMs / 3)));
    this.keeper.unref();
  }

  /** Pushes a pending reservation's expiry to `ttlMs` from now (never earlier); false if it is no longer pending. */
  async extend(reservationId: string, ttlMs: number = this.config.reservationTtlMs): Promise<boolean> {
    return this.store.atomically({ reservation: reservationId }, (snap) => planExtend(snap, ttlMs, this.ctx()));
  }

  private async extendHeld(): Promise<void> {
    const now = this.clock();
    for (const [id, hold] of this.held) {
      // A call that never finished (a bug, a lost promise) must not hold budget for the life of the process.
      if (now - hold.sinceMs > HOLD_KEPT_ALIVE_MAX_MS) {
        this.held.delete(id);
        continue;
      }
      if (now - hold.extendedMs < this.config.reservationTtlMs / 3) continue;
      // A failed push is retried on the next tick (the hold has two more thirds of its time-to-live); a hold that is
      // no longer pending has nothing left to keep.
      const pushed = await this.extend(id).catch(() => null);
      if (pushed) hold.extendedMs = now;
      else if (pushed === false) this.held.delete(id);
    }
    if (this.held.size === 0 && this.keeper) {
      clearInterval(this.keeper);
      this.keeper = null;
    }
  }

  /**
   * Charges real usage for a reservation — or, for a reply that came without it (a cut stream), what it delivered, as
   * an estimate with a `usage_estimated` event; settling the same reservation again charges nothing. `responseId`: the
   * id the provider gave the answer, which a later call may continue from (OpenAI Responses).
   */
  async settle(reservationId: string, answer: Usage | Delivered, responseId: string | null = null): Promise<SettleResult> {
    // Every field is required: a missing one would turn the task's figures into NaN.
    if (isDelivered(answer)) {
      if (answer.reason !== 'stream_cut' && answer.reason !== 'no_usage') throw new EnvelopeError('invalid_request', 'reason must be stream_cut or no_usage');
      checkCount('outputTokens', answer.outputTokens);
      if (answer.reported !== null) for (const k of USAGE_FIELDS) checkCount(k, answer.reported[k]);
    } else {
      for (const k of USAGE_FIELDS) checkCount(k, answer[k]);
    }
    this.held.delete(reservationId);
    const result = await this.atomically({ reservation: reservationId }, (snap) =>
      planSettle(snap, answer, responseId, this.ctx()),
    );
    this.changed();
    const admitted = result.reservation.admitted;
    if (result.charged && result.usage && admitted) await this.governance.correct(admitted, usageTokens(result.usage), 0);
    return result;
  }

  /** Gives back a reservation's hold unused (the call failed before any tokens were generated). */
  async release(reservationId: string): Promise<boolean> {
    this.held.delete(reservationId);
    let admitted: ReservationRow['admitted'];
    const result = await this.atomically({ reservation: reservationId }, (snap) => {
      admitted = snap.reservation?.admitted;
      return planRelease(snap, false, this.ctx());
    });
    this.changed();
    // The call ran no tokens; it went out, so its request stays counted.
    if (result && admitted) await this.governance.correct(admitted, 0, 0);
    return result;
  }

  /** Releases every reservation past its time-to-live; safe to run on several replicas at once. */
  async sweep(limit = 1_000): Promise<number> {
    const ids = await this.store.expiredReservations(this.clock(), limit);
    let released = 0;
    // One hold that cannot be released (a store error, a broken invariant) must not keep the others held: each is
    // tried, and the first failure is thrown once the rest are done.
    let failure: unknown = null;
    for (const id of ids) {
      try {
        const done = await this.atomically({ reservation: id }, (snap) => planRelease(snap, true, this.ctx()));
        if (done) released++;
      } catch (e) {
        failure ??= e;
      }
    }
    // Envelopes nobody touched since their period ended start over now, with their period_reset event.
    if (await this.governance.rollPeriods()) this.changed();
    // Settled reservations are kept a day so that a late or repeated settle stays idempotent.
    await this.store.pruneReservations(this.clock() - 24 * 3_600_000);
    if (released) this.changed();
    if (failure !== null) throw failure;
    return released;
  }

  /**
   * Closes every task that made calls and then went quiet for `quietMs` (no call in flight, not paused), with a
   * `closed` event and its run record; safe to run on several replicas at once. Returns how many it closed.
   */
  async closeIdle(quietMs: number, limit = 1_000): Promise<number> {
    const ids = await this.store.idleTasks(this.clock() - quietMs, limit);
    let closed = 0;
    for (const id of ids) {
      if (await this.store.atomically({ path: id }, (snap) => planCloseIdle(snap.path, quietMs, this.ctx()))) closed++;
    }
    if (closed) this.changed();
    return closed;
  }

  /** Adds to a task's total (display units: tokens or USD) and lifts a pause if that makes room. */
  async approve(taskId: string, add: number, scope: Scope = {}): Promise<TaskRow> {
    return this.onPathShown(taskId, scope, (path, ctx) => {
      if (!Number.isFinite(add) || add <= 0) {
        return { error: new EnvelopeError('invalid_request', 'add must be a positive number') };
      }
      const leaf = path.at(-1)!;
      if (leaf.unit === 'tokens' && !Number.isInteger(add)) {
        return { error: new EnvelopeError('invalid_request', 'add must be a whole number of tokens') };
      }
      return planApprove(path, toLedger(leaf.unit, add), ctx);
    });
  }

  async close(taskId: string, outcome?: Outcome, scope: Scope = {}): Promise<TaskRow> {
    return this.onPathShown(taskId, scope, (path, ctx) => planClose(path, outcome, ctx));
  }

  async progress(taskId: string, done: number, total: number, scope: Scope = {}): Promise<TaskRow> {
    checkCount('done', done);
    checkCount('total', total);
    if (done > total) throw new EnvelopeError('invalid_request', 'done cannot exceed total');
    return this.onPathShown(taskId, scope, (path, ctx) => planProgress(path, done, total, ctx));
  }

  /** Applies a carried `remaining` (display units): it can lower what the ledger has left, never raise it. */
  async lowerRemaining(taskId: string, remaining: number, scope: Scope = {}): Promise<number> {
    if (!Number.isFinite(remaining) || remaining < 0) {
      throw new EnvelopeError('invalid_request', 'remaining must be a number ≥ 0');
    }
    return this.onPath(idIn(scope, taskId), scope, (path, ctx) =>
      planLowerRemaining(path, toLedger(path.at(-1)!.unit, remaining), ctx),
    ).catch((e: unknown) => {
      throw shownError(scope, e);
    });
  }

  async task(id: string, scope: Scope = {}): Promise<TaskRow> {
    const row = await this.store.getTask(idIn(scope, parseTaskId(id)));
    if (!row || (scope.tenant !== undefined && row.tenant !== scope.tenant)) throw notFound(id);
    return shownRow(scope, row);
  }

  /** A task's path, root first, as the countdown weighs it: its tenant's envelope included. */
  async pathOf(row: TaskRow): Promise<TaskRow[]> {
    const rows = await Promise.all(row.pathIds.map((id, i) => (i === row.pathIds.length - 1 ? row : this.store.getTask(storeIdOf(row.tenant, id)))));
    return rows.filter((t): t is TaskRow => t !== undefined);
  }

  async findTask(id: string, scope: Scope = {}): Promise<TaskRow | undefined> {
    const row = await this.store.getTask(idIn(scope, id));
    return row && (scope.tenant === undefined || row.tenant === scope.tenant) ? shownRow(scope, row) : undefined;
  }

  view(row: TaskRow): TaskView {
    return viewTask(row, this.clock());
  }

  async listTasks(q: Partial<TaskQuery>, scope: Scope = {}): Promise<TaskRow[]> {
    if (scope.tenant === undefined) return this.store.listTasks({ limit: 100, offset: 0, ...q });
    const parentId = typeof q.parentId === 'string' ? idIn(scope, q.parentId) : q.parentId;
    const rows = await this.store.listTasks({ limit: 100, offset: 0, ...q, ...(parentId === undefined ? {} : { parentId }), tenant: scope.tenant });
    return rows.map((r) => shownRow(scope, r));
  }

  async events(q: Partial<EventQuery>, scope: Scope = {}): Promise<StoredEvent[]> {
    if (scope.tenant === undefined) return this.store.readEvents({ afterSeq: 0, limit: 1_000, ...q });
    const taskId = q.taskId === undefined ? {} : { taskId: idIn(scope, q.taskId) };
    const events = await this.store.readEvents({ afterSeq: 0, limit: 1_000, ...q, ...taskId, tenant: scope.tenant });
    return events.map((e) => ({ ...e, taskId: shownIdOf(scope.tenant, e.taskId) }));
  }

  async runs(q: Partial<RunQuery>, scope: Scope = {}): Promise<RunRecord[]> {
    if (scope.tenant === undefined) return this.store.readRuns({ limit: 100_000, ...q });
    const runs = await this.store.readRuns({ limit: 100_000, ...q, tenant: scope.tenant });
    return runs.map((r) => ({ ...r, task: shownIdOf(scope.tenant, r.task), parent: r.parent === null ? null : shownIdOf(scope.tenant, r.parent) }));
  }

  /** Called after every change this process makes; live views re-read the store (other processes poll). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  async shutdown(): Promise<void> {
    if (this.keeper) clearInterval(this.keeper);
    await this.store.close();
  }
}

/** OpenAI's `n` tops out at 128 answers a request. */
const CHOICES_MAX = 128;

/** The longest a call's hold is kept alive: past it, the hold expires as if its process had stopped. */
const HOLD_KEPT_ALIVE_MAX_MS = 60 * 60_000;

const USAGE_FIELDS = ['inputTokens', 'outputTokens', 'cacheWriteTokens', 'cacheReadTokens'] as const;

const notFound = (id: string): EnvelopeError => new EnvelopeError('not_found', `task ${id} does not exist`);

function checkCount(name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new EnvelopeError('invalid_request', `${name} must be a whole number ≥ 0`);
}
