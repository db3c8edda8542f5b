// The Redis store's writes. Optimistic concurrency: an operation reads its rows (each carries a version), the
// TypeScript rules decide, and one Lua script writes the decided change only if every row read is unchanged;
// otherwise the operation is decided again on fresh rows (bounded retries with jitter). The rules never run in Lua.
//
// Within one process, operations on the same task tree queue in a lane and are committed in batches: each is decided
// on the rows as the ones before it left them, and one script call checks and writes them in order. A hot budget
// therefore costs one round trip per batch, not per call, and the process's own callers never conflict.
//
// When several processes write one busy tree, a writer that commits keeps the tree's turn for TURN_MS, and a writer
// that finds it taken waits for it (TAKE_TURN_LUA) instead of losing races; the version checks alone keep it exact.
import { randomUUID } from 'node:crypto';
import type { RedisClient } from './redis-scripts.js';
import { EnvelopeError } from '../budget/errors.js';
import { isEnvelopeId } from '../budget/tenants.js';
import type { Decision, Snapshot } from '../budget/rules.js';
import type { ReservationRow, TaskRow } from '../budget/types.js';
import { backoffMs, sleep, unavailable } from './failures.js';
import type { RedisKeys, RowRef } from './redis-keys.js';
import type { RedisLookups } from './redis-lookups.js';
import type { RedisOutbox } from './redis-outbox.js';
import { CommitPlan, refsOf, type Located, type PlannedOp, type TreeOp } from './redis-plan.js';
import { rowFromHash, type Row } from './redis-rows.js';
import { outcomeOf, type Need } from './store.js';

const BATCH_OPS_MAX = 128;
/** Conflicts per op, and time spent waiting for other writers' turns, before it fails with store_unavailable. */
const ATTEMPTS_MAX = 40;
const WAIT_MAX_MS = 10_000;
/** A conflict returns the fresh rows, so the first retries go at once; later ones wait a random 0-8 ms. */
const RETRIES_AT_ONCE = 2;
const BACKOFF_CAP_MS = 8;
/**
 * How long a writer keeps a busy tree to itself once it commits (see the class comment). Longer turns waste fewer
 * hand-overs (4 processes on one hot budget: about 12 % more pairs/s at 50 ms than at 25 ms, measured side by side);
 * the cost is that, only while several processes hammer one tree, a call may wait up to a turn per other writer.
 */
const TURN_MS = 50;
/** How long a new task's id stays claimed if its creator dies before publishing it. */
const CLAIM_TTL_MS = 60_000;
const LANES_MAX = 4_096;

/** Index writes of one event-loop tick, from every lane: one command per index. */
interface IndexBatch {
  holds: ReservationRow[];
  finishes: ReservationRow[];
  /** Settles once the batch's commands are issued: a command issued after that runs after them. */
  issued: Promise<{ answered: Promise<unknown> }>;
}

interface Lane {
  root: string;
  queue: TreeOp[];
  running: Promise<void> | null;
  /** Rows as this process last read or wrote them; `null` is a row known to be absent. May be stale: checked. */
  rows: Map<RowRef, Row | null>;
  /** Commits lost in a row. */
  conflicts: number;
  /** Another writer has the tree's turn until then (Date.now() ms); take the turn before the next commit. */
  waitUntilMs: number;
  takeTurn: boolean;
}
export class RedisWriter {
  private readonly lanes = new Map<string, Lane>();
  private indexBatch: IndexBatch | null = null;
  /** Commit script calls, those that lost a race or found another writer's turn, and the ops they carried. */
  readonly stats = { commits: 0, conflicts: 0, waits: 0, ops: 0 };
  /** Names this process's writes for the turn-taking on busy trees. */
  private readonly writerId = randomUUID();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly lookups: RedisLookups,
    private readonly outbox: RedisOutbox,
  ) {}

  atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.submit({
        need,
        decide,
        refs: [],
        attempts: 0,
        queuedAtMs: Date.now(),
        root: '',
        resolve: resolve as (value: unknown) => void,
        reject,
      });
    });
  }

  /** Finds the op's tree from the lookups, then queues it in that tree's lane. */
  private submit(op: TreeOp): void {
    // A hot budget's paths are cached: the op joins its lane in this turn, without a promise hop per call.
    const cached = this.locateCached(op.need);
    if (cached !== null) return this.enqueue(op, cached);
    this.locate(op.need).then(
      (located) => this.enqueue(op, located),
      (e: unknown) => op.reject(unavailable('redis', e)),
    );
  }

  private enqueue(op: TreeOp, located: Located | undefined): void {
    if (located) {
      Object.assign(op, located);
      op.refs = refsOf(op);
      const lane = this.lane(located.root);
      lane.queue.push(op);
      lane.running ??= this.runLane(lane);
      return;
    }
    // Nothing to load (a missing task or reservation): the rule refuses, and there is nothing to write.
    try {
      const decision = op.decide({ path: [] });
      if (decision.mutation) throw new Error('redis store: a change without a task tree');
      op.resolve(outcomeOf(decision));
    } catch (e) {
      op.reject(e);
    }
  }

  /**
   * The op's location when every path it needs is cached (and its `existing` task, if any, is in its own tree);
   * else null, and `locate` asks Redis.
   */
  private locateCached(need: Need): Located | undefined | null {
    // A tenant's rate row lives in its own tree, which admission touches alone.
    if (need.rate !== undefined) return { root: this.keys.rateTree(need.rate) };
    const { taskPaths, reservationPaths } = this.lookups;
    const path = need.path ? taskPaths.get(need.path) : undefined;
    if (need.path && !path) return null;
    const existing = need.existing !== undefined ? taskPaths.get(need.existing) : undefined;
    if (need.existing !== undefined && !existing) return null;
    const reservation = need.reservation !== undefined ? reservationPaths.get(need.reservation) : undefined;
    if (need.reservation !== undefined && !reservation) return null;
    const located = this.located(need, path, existing, reservation);
    return located && !(existing && existing[0] !== located.root) ? located : null;
  }

  /** The op's location from the lookup keys, for what `locateCached` could not place (never a rate op). */
  private async locate(need: Need): Promise<Located | undefined> {
    const [path, existing, reservation] = await Promise.all([
      need.path ? this.lookups.taskPath(need.path) : undefined,
      need.existing !== undefined ? this.lookups.taskPath(need.existing) : undefined,
      need.reservation !== undefined ? this.lookups.reservationPath(need.reservation) : undefined,
    ]);
    const located = this.located(need, path, existing, reservation);
    if (located && existing && existing[0] !== located.root) {
      located.foreignExisting = await this.lookups.readTask(existing[0]!, need.existing!);
    }
    return located;
  }

  /** The op's tree from its paths; an `existing` task in another tree is left for the caller to read. */
  private located(need: Need, path?: string[], existing?: string[], reservation?: string[]): Located | undefined {
    // A new task starts its own tree (or joins its tenant's envelope's); a new envelope is a tree of its own.
    const root =
      need.reservation !== undefined
        ? reservation?.[0]
        : ((need.path ? path?.[0] : undefined) ??
          (need.existing !== undefined ? (existing?.[0] ?? need.existing) : need.path && isEnvelopeId(need.path) ? need.path : undefined));
    if (root === undefined) return undefined;
    return { root, path, reservation };
  }

  private lane(root: string): Lane {
    let lane = this.lanes.get(root);
    if (!lane) {
      if (this.lanes.size >= LANES_MAX) {
        for (const [key, idle] of this.lanes) {
          if (!idle.running) this.lanes.delete(key);
          if (this.lanes.size < LANES_MAX / 2) break;
        }
      }
      lane = { root, queue: [], running: null, rows: new Map(), conflicts: 0, waitUntilMs: 0, takeTurn: false };
      this.lanes.set(root, lane);
    }
    return lane;
  }

  private async runLane(lane: Lane): Promise<void> {
    for (;;) {
      // Let the promise jobs already queued run first: callers answered together then queue together, one batch.
      await new Promise<void>((resolve) => process.nextTick(resolve));
      if (!lane.queue.length) break;
      const waitMs = lane.waitUntilMs - Date.now();
      if (waitMs > 0) await sleep(waitMs);
      const batch = lane.queue.splice(0, BATCH_OPS_MAX);
      let retry: TreeOp[] = [];
      try {
        retry = lane.takeTurn && !(await this.takeTurn(lane, batch)) ? batch : await this.commit(lane, batch);
      } catch (e) {
        lane.rows.clear();
        for (const op of batch) op.reject(unavailable('redis', e));
      }
      const now = Date.now();
      const kept = retry.filter((op) => {
        if (op.attempts < ATTEMPTS_MAX && now - op.queuedAtMs < WAIT_MAX_MS) return true;
        op.reject(new EnvelopeError('store_unavailable', `redis: task tree ${lane.root} stayed too busy; try again`));
        return false;
      });
      lane.queue.unshift(...kept);
      if (kept.length && lane.conflicts > RETRIES_AT_ONCE) {
        await sleep(backoffMs(lane.conflicts - RETRIES_AT_ONCE, BACKOFF_CAP_MS));
      }
    }
    lane.running = null;
  }

  /** Waits for, and takes, the tree's turn, with the rows the batch reads as they are now; false while busy. */
  private async takeTurn(lane: Lane, batch: TreeOp[]): Promise<boolean> {
    const refs = [...new Set(batch.flatMap((op) => op.refs))];
    const keys = [this.keys.turn(lane.root), this.keys.nextTurn(lane.root), ...refs.map((ref) => this.keys.row(lane.root, ref))];
    const reply = await this.redis.envelopeTakeTurn(keys.length, ...keys, this.writerId, TURN_MS);
    if (reply[0] === 2) {
      this.stats.waits++;
      lane.waitUntilMs = Date.now() + Number(reply[1]) + Math.random();
      return false;
    }
    refs.forEach((ref, i) => lane.rows.set(ref, rowFromHash(reply[i + 1] as string[], ref)));
    lane.takeTurn = false;
    return true;
  }

  /** Decides and commits one batch; returns the ops to try again (all of them after a conflict). */
  private async commit(lane: Lane, batch: TreeOp[]): Promise<TreeOp[]> {
    const { root } = lane;
    const missing = new Set<RowRef>();
    for (const op of batch) for (const ref of op.refs) if (!lane.rows.has(ref)) missing.add(ref);
    if (missing.size) await this.load(lane, [...missing]);

    let ops = batch;
    let plan: CommitPlan;
    const later: TreeOp[] = [];
    for (;;) {
      plan = new CommitPlan(this.keys, root, lane.rows);
      for (const op of ops) plan.add(op);
      const taken = await this.claimNewTasks(plan);
      if (taken === undefined) break;
      // The id is taken, or being created, in another tree: locate that op again (it will find the task there);
      // the ops after it were decided on its change, so they wait for the next batch.
      const at = ops.indexOf(taken);
      later.push(...ops.slice(at + 1));
      this.relocate(taken);
      ops = ops.slice(0, at);
    }
    for (const { op, error } of plan.failed) op.reject(error);
    if (!plan.planned.length) return later;

    // A new hold is indexed (by expiry, and its id → path) before the commit that writes it, so a process that dies
    // in between leaves an index entry the sweeper clears, never an unindexed hold.
    const holds = plan.planned.flatMap((p) => (p.held ? [p.held] : []));
    let indexed: Promise<unknown> | undefined;
    if (holds.length) {
      const batch = this.nextIndexBatch();
      batch.holds.push(...holds);
      indexed = (await batch.issued).answered;
    }
    const registeredAt = plan.planned.some((p) => p.hasOutbox) ? Date.now() : undefined;
    const registered = registeredAt !== undefined ? this.redis.zadd(this.keys.outboxes(), registeredAt, root) : undefined;
    const args = plan.args(this.writerId, TURN_MS);
    const reply = await this.redis.envelopeCommit(plan.keys.length, ...plan.keys, JSON.stringify(args));
    if (indexed) await indexed;
    if (registered) await registered;
    this.stats.commits++;
    this.stats.ops += plan.planned.length;
    if (reply[0] === 2) {
      this.stats.waits++;
      lane.waitUntilMs = Date.now() + Number(reply[1]) + Math.random();
      lane.takeTurn = true;
      return [...plan.planned.map((p) => p.op), ...later];
    }
    if (reply[0] === 0) {
      for (const p of plan.planned) p.op.attempts++;
      this.stats.conflicts++;
      lane.conflicts++;
      plan.checked.forEach((ref, i) => lane.rows.set(ref, rowFromHash(reply[i + 1] as string[], ref)));
      return [...plan.planned.map((p) => p.op), ...later];
    }
    lane.conflicts = 0;
    for (const [ref, row] of plan.changes) lane.rows.set(ref, row);
    if (registeredAt !== undefined) await this.outbox.publish(lane.root, registeredAt);
    this.afterCommit(lane, plan.planned);
    return later;
  }

  private nextIndexBatch(): IndexBatch {
    if (this.indexBatch) return this.indexBatch;
    const batch: IndexBatch = {
      holds: [],
      finishes: [],
      issued: new Promise((resolve) =>
        process.nextTick(() => {
          this.indexBatch = null;
          resolve({ answered: this.writeIndexes(batch) });
        }),
      ),
    };
    this.indexBatch = batch;
    return batch;
  }

  private writeIndexes({ holds, finishes }: IndexBatch): Promise<unknown> {
    const k = this.keys;
    const writes: Promise<unknown>[] = [];
    if (holds.length) {
      writes.push(this.redis.hset(k.reservationPaths(), ...holds.flatMap((r) => [r.id, JSON.stringify(r.pathIds)])));
      writes.push(this.redis.zadd(k.pending(), ...holds.flatMap((r) => [r.expiresAtMs, r.id])));
    }
    if (finishes.length) {
      writes.push(this.redis.zrem(k.pending(), ...finishes.map((r) => r.id)));
      writes.push(this.redis.zadd(k.finished(), ...finishes.flatMap((r) => [r.createdAtMs, r.id])));
    }
    return Promise.all(writes);
  }

  /** Claims the ids of the batch's new tasks store-wide; returns the first op whose id another tree holds. */
  private async claimNewTasks(plan: CommitPlan): Promise<TreeOp | undefined> {
    const claims = plan.planned.flatMap((p) => p.created.map((t) => ({ op: p.op, key: this.keys.taskPath(t.id), value: JSON.stringify(t.pathIds) })));
    const holders = await Promise.all(claims.map((c) => this.redis.call('SET', c.key, c.value, 'PX', CLAIM_TTL_MS, 'NX', 'GET')));
    return claims.find((c, i) => holders[i] !== null && holders[i] !== c.value)?.op;
  }

  private relocate(op: TreeOp): void {
    op.attempts++;
    if (op.attempts >= ATTEMPTS_MAX) {
      op.reject(new EnvelopeError('conflict', `task id ${op.need.existing} is being created in another task tree; choose another id`));
    } else {
      setTimeout(() => this.submit(op), Math.random() * BACKOFF_CAP_MS);
    }
  }

  /** Caches the committed ops' new paths, moves finished reservations between indexes, answers the callers. */
  private afterCommit(lane: Lane, done: PlannedOp[]): void {
    for (const p of done) {
      for (const t of p.created) this.lookups.taskPaths.set(t.id, t.pathIds);
      if (p.held) this.lookups.reservationPaths.set(p.held.id, p.held.pathIds);
      const r = p.finished;
      if (r) {
        // Not awaited: later commands on this connection run after these, and the sweeper repairs the index if
        // this process dies first.
        const batch = this.nextIndexBatch();
        batch.finishes.push(r);
        batch.issued.then(({ answered }) => answered).catch(() => undefined);
        this.lookups.reservationPaths.delete(r.id);
        lane.rows.delete(`r:${r.id}`);
      }
      if (p.decision.error) p.op.reject(p.decision.error);
      else p.op.resolve(p.decision.result);
    }
  }

  private async load(lane: Lane, refs: RowRef[]): Promise<void> {
    const hashes = await Promise.all(refs.map((ref) => this.redis.hgetall(this.keys.row(lane.root, ref))));
    refs.forEach((ref, i) => {
      const row = rowFromHash(hashes[i], ref);
      lane.rows.set(ref, row);
      if (row && ref.startsWith('t:')) this.lookups.taskPaths.set((row as TaskRow).id, (row as TaskRow).pathIds);
    });
  }

  /** Resolves once every lane has run dry. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.lanes.values()].map((lane) => lane.running));
  }
}
