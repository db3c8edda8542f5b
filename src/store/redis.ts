// `redis://HOST:PORT/DB?prefix=NAME` — several gateway replicas share budgets through one Redis.
//
// Optimistic concurrency: an operation reads its rows (each carries a version), the TypeScript rules decide, and
// one Lua script writes the decided change only if every row read is unchanged; otherwise the operation is decided
// again on fresh rows (bounded retries with jitter). The rules never run in Lua.
//
// Within one process, operations on the same task tree queue in a lane and are committed in batches: each is decided
// on the rows as the ones before it left them, and one script call checks and writes them in order. A hot budget
// therefore costs one round trip per batch, not per call, and the process's own callers never conflict.
//
// A task tree's rows live in one hash slot (Cluster-safe). Events, run records and the shared indexes are written to
// the tree's outbox stream inside the same script, then published to the shared `{~}` slot (exactly once, in order,
// by the writer or, if it died, by any replica's recovery pass); see redis-keys.ts.
import { randomUUID } from 'node:crypto';
import { Redis, type Result } from 'ioredis';
import { EnvelopeError } from '../budget/errors.js';
import { isIdle } from '../budget/idle.js';
import type { Decision, Snapshot } from '../budget/rules.js';
import type { EventDraft, ReservationRow, RunRecord, StoredEvent, TaskRow } from '../budget/types.js';
import { BoundedMap } from './bounded-map.js';
import { decodeRun } from './codec.js';
import { redactUrl } from './open.js';
import { RedisKeys, type RowRef } from './redis-keys.js';
import { CommitPlan, refsOf, type Located, type OutboxEntry, type PlannedOp, type TreeOp } from './redis-plan.js';
import { rowFromHash, type Row } from './redis-rows.js';
import { COMMIT_LUA, PUBLISH_LUA, TAKE_TURN_LUA } from './redis-scripts.js';
import { outcomeOf, type EventQuery, type LedgerStore, type Need, type RunQuery, type TaskQuery } from './store.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    envelopeCommit(numKeys: number, ...keysAndArgs: (string | number)[]): Result<[number, ...(string[] | number)[]], Context>;
    envelopePublish(numKeys: number, ...keysAndArgs: (string | number)[]): Result<number, Context>;
    envelopeTakeTurn(numKeys: number, ...keysAndArgs: (string | number)[]): Result<[number, ...(string[] | number)[]], Context>;
  }
}

const DEFAULT_PREFIX = 'envelope';
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
/** An outbox registered this long ago without being emptied belongs to a writer that died. */
const OUTBOX_STALE_MS = 5_000;
const RECOVERY_INTERVAL_MS = 5_000;
/** A pending-index entry whose reservation never appeared (its reserve was refused on retry) is dropped after this. */
const PENDING_ORPHAN_MS = 60_000;
const PUBLISH_ENTRIES_MAX = 256;
const SCAN_CHUNK = 256;
const LANES_MAX = 4_096;
const LOOKUPS_MAX = 100_000;

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

export class RedisStore implements LedgerStore {
  readonly kind = 'redis' as const;
  readonly keys: RedisKeys;
  private readonly redis: Redis;
  private readonly lanes = new Map<string, Lane>();
  private readonly taskPaths = new BoundedMap<string, string[]>(LOOKUPS_MAX);
  private readonly reservationPaths = new BoundedMap<string, string[]>(LOOKUPS_MAX);
  private indexBatch: IndexBatch | null = null;
  /** Commit script calls, those that lost a race or found another writer's turn, and the ops they carried. */
  readonly stats = { commits: 0, conflicts: 0, waits: 0, ops: 0 };
  /** Names this process's writes for the turn-taking on busy trees. */
  private readonly writerId = randomUUID();
  private readonly recovery: NodeJS.Timeout;
  private closed = false;

  /** Connects, and publishes whatever a writer that died left in an outbox. */
  static async connect(url: string): Promise<RedisStore> {
    const { clientUrl, prefix } = parseRedisUrl(url);
    const keys = new RedisKeys(prefix);
    const redis = new Redis(clientUrl, { lazyConnect: true, enableAutoPipelining: true, maxRetriesPerRequest: 2 });
    try {
      await redis.connect();
    } catch (e) {
      redis.disconnect();
      throw new EnvelopeError('store_unavailable', `cannot reach Redis at ${redactUrl(url)}: ${(e as Error).message}`);
    }
    const store = new RedisStore(redis, keys);
    await store.recoverOutboxes(Number.POSITIVE_INFINITY);
    return store;
  }

  private constructor(redis: Redis, keys: RedisKeys) {
    this.redis = redis;
    this.keys = keys;
    redis.defineCommand('envelopeCommit', { lua: COMMIT_LUA });
    redis.defineCommand('envelopePublish', { lua: PUBLISH_LUA });
    redis.defineCommand('envelopeTakeTurn', { lua: TAKE_TURN_LUA });
    // Without a listener ioredis prints connection errors; callers get them as store_unavailable instead.
    redis.on('error', () => undefined);
    this.recovery = setInterval(() => {
      this.recoverOutboxes(Date.now() - OUTBOX_STALE_MS).catch(() => undefined);
    }, RECOVERY_INTERVAL_MS);
    this.recovery.unref();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Changes

  atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.submit({
        need,
        decide,
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
    this.locate(op.need).then(
      (located) => {
        if (located) {
          Object.assign(op, located);
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
      },
      (e: unknown) => op.reject(unavailable(e)),
    );
  }

  private async locate(need: Need): Promise<Located | undefined> {
    const [path, existing, reservation] = await Promise.all([
      need.path ? this.taskPath(need.path) : undefined,
      need.existing !== undefined ? this.taskPath(need.existing) : undefined,
      need.reservation !== undefined ? this.reservationPath(need.reservation) : undefined,
    ]);
    const root =
      need.reservation !== undefined
        ? reservation?.[0]
        : ((need.path ? path?.[0] : undefined) ?? (need.existing !== undefined ? (existing?.[0] ?? need.existing) : undefined));
    if (root === undefined) return undefined;
    const located: Located = { root, path, reservation };
    if (existing && existing[0] !== root) located.foreignExisting = await this.readTask(existing[0]!, need.existing!);
    return located;
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
        for (const op of batch) op.reject(unavailable(e));
      }
      const now = Date.now();
      const kept = retry.filter((op) => {
        if (op.attempts < ATTEMPTS_MAX && now - op.queuedAtMs < WAIT_MAX_MS) return true;
        op.reject(new EnvelopeError('store_unavailable', `redis: task tree ${lane.root} stayed too busy; try again`));
        return false;
      });
      lane.queue.unshift(...kept);
      if (kept.length && lane.conflicts > RETRIES_AT_ONCE) {
        await sleep(Math.random() * Math.min(BACKOFF_CAP_MS, 2 ** (lane.conflicts - RETRIES_AT_ONCE)));
      }
    }
    lane.running = null;
  }

  /** Waits for, and takes, the tree's turn, with the rows the batch reads as they are now; false while busy. */
  private async takeTurn(lane: Lane, batch: TreeOp[]): Promise<boolean> {
    const refs = [...new Set(batch.flatMap(refsOf))];
    const keys = [this.keys.turn(lane.root), this.keys.nextTurn(lane.root), ...refs.map((ref) => this.keys.row(lane.root, ref))];
    const reply = await this.redis.envelopeTakeTurn(keys.length, ...keys, this.writerId, TURN_MS);
    if (reply[0] === 2) {
      this.stats.waits++;
      lane.waitUntilMs = Date.now() + Number(reply[1]) + Math.random();
      return false;
    }
    refs.forEach((ref, i) => lane.rows.set(ref, rowFromHash(reply[i + 1] as string[])));
    lane.takeTurn = false;
    return true;
  }

  /** Decides and commits one batch; returns the ops to try again (all of them after a conflict). */
  private async commit(lane: Lane, batch: TreeOp[]): Promise<TreeOp[]> {
    const { root } = lane;
    const missing = new Set<RowRef>();
    for (const op of batch) for (const ref of refsOf(op)) if (!lane.rows.has(ref)) missing.add(ref);
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
    await Promise.all([indexed, registered]);
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
      plan.checked.forEach((ref, i) => lane.rows.set(ref, rowFromHash(reply[i + 1] as string[])));
      return [...plan.planned.map((p) => p.op), ...later];
    }
    lane.conflicts = 0;
    for (const [ref, row] of plan.changes) lane.rows.set(ref, row);
    await this.afterCommit(lane, plan.planned, registeredAt);
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

  /** Publishes the committed ops' outbox entries, moves finished reservations between indexes, answers the callers. */
  private async afterCommit(lane: Lane, done: PlannedOp[], registeredAt: number | undefined): Promise<void> {
    if (registeredAt !== undefined) await this.publish(lane.root, registeredAt);
    for (const p of done) {
      for (const t of p.created) this.taskPaths.set(t.id, t.pathIds);
      if (p.held) this.reservationPaths.set(p.held.id, p.held.pathIds);
      const r = p.finished;
      if (r) {
        // Not awaited: later commands on this connection run after these, and the sweeper repairs the index if
        // this process dies first.
        const batch = this.nextIndexBatch();
        batch.finishes.push(r);
        batch.issued.then(({ answered }) => answered).catch(() => undefined);
        this.reservationPaths.delete(r.id);
        lane.rows.delete(`r:${r.id}`);
      }
      if (p.decision.error) p.op.reject(p.decision.error);
      else p.op.resolve(p.decision.result);
    }
  }

  private async load(lane: Lane, refs: RowRef[]): Promise<void> {
    const hashes = await Promise.all(refs.map((ref) => this.redis.hgetall(this.keys.row(lane.root, ref))));
    refs.forEach((ref, i) => {
      const row = rowFromHash(hashes[i]);
      lane.rows.set(ref, row);
      if (row && 'version' in row) this.taskPaths.set(row.id, row.pathIds);
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Outboxes

  /** Publishes a tree's outbox to the shared keys and deletes what was published. */
  private async publish(root: string, registeredAt?: number): Promise<void> {
    for (;;) {
      const entries = await this.redis.xrange(this.keys.outbox(root), '-', '+', 'COUNT', PUBLISH_ENTRIES_MAX);
      const last = entries.length < PUBLISH_ENTRIES_MAX;
      const keys = [this.keys.outboxCursor(), this.keys.eventSeq(), this.keys.outboxes()];
      const index = new Map<string, number>();
      const at = (key: string): number => {
        let i = index.get(key);
        if (i === undefined) (i = keys.push(key)), index.set(key, i);
        return i;
      };
      const args: (string | number)[] = [root, last && registeredAt !== undefined ? registeredAt : '', entries.length];
      const pipeline = this.redis.pipeline();
      const lookups: Array<[string, string]> = [];
      for (const [id, fields] of entries) {
        const entry = JSON.parse(fields[1]!) as OutboxEntry;
        const ops = this.publishOps(entry, at);
        args.push(id, ops.length, ...ops.flat());
        for (const t of entry.created) lookups.push([this.keys.taskPath(t.id), JSON.stringify(t.pathIds)]);
      }
      pipeline.envelopePublish(keys.length, ...keys, ...args);
      // The claim becomes the task's permanent lookup.
      for (const [key, value] of lookups) pipeline.set(key, value);
      if (entries.length) pipeline.xdel(this.keys.outbox(root), ...entries.map(([id]) => id));
      const results = await pipeline.exec();
      const failure = results?.find(([err]) => err);
      if (failure) throw failure[0];
      if (last) return;
    }
  }

  private publishOps(entry: OutboxEntry, at: (key: string) => number): (string | number)[][] {
    const k = this.keys;
    const ops: (string | number)[][] = entry.events.map((e: EventDraft) => [
      'E',
      at(k.events()),
      at(k.taskEvents(e.taskId)),
      at(k.tenantEvents(e.tenant)),
      JSON.stringify(e),
    ]);
    const run: RunRecord | undefined = entry.run;
    if (run) {
      ops.push(['H', at(k.runRecords()), run.task, JSON.stringify(run)]);
      for (const key of [k.runs(), k.runsByLabel(run.label), k.runsByTenant(run.tenant)]) {
        ops.push(['Z', at(key), run.closedAtMs, run.task]);
      }
      // A run record is written when its task closes.
      ops.push(['R', at(k.openTasks()), 0, run.task]);
    }
    for (const t of entry.created) {
      ops.push(['Z', at(k.tasks()), t.createdAtMs, t.id], ['Z', at(k.tasksByTenant(t.tenant)), t.createdAtMs, t.id]);
      if (t.parentId === null) ops.push(['Z', at(k.roots()), t.createdAtMs, t.id]);
      ops.push(['Z', at(k.openTasks()), t.createdAtMs, t.id]);
    }
    return ops;
  }

  /** Publishes the outboxes registered before `beforeMs` (their writers died before publishing). */
  private async recoverOutboxes(beforeMs: number): Promise<void> {
    const found = await this.redis.zrangebyscore(this.keys.outboxes(), '-inf', beforeMs === Infinity ? '+inf' : beforeMs, 'WITHSCORES', 'LIMIT', 0, 100);
    for (let i = 0; i < found.length; i += 2) await this.publish(found[i]!, Number(found[i + 1]));
  }

  // ---------------------------------------------------------------------------------------------------------
  // Lookups and reads

  private async taskPath(id: string): Promise<string[] | undefined> {
    const cached = this.taskPaths.get(id);
    if (cached) return cached;
    const text = await this.redis.get(this.keys.taskPath(id));
    return text ? (JSON.parse(text) as string[]) : undefined;
  }

  private async reservationPath(id: string): Promise<string[] | undefined> {
    const cached = this.reservationPaths.get(id);
    if (cached) return cached;
    const text = await this.redis.hget(this.keys.reservationPaths(), id);
    return text ? (JSON.parse(text) as string[]) : undefined;
  }

  private async readTask(root: string, id: string): Promise<TaskRow | undefined> {
    const row = rowFromHash(await this.redis.hgetall(this.keys.row(root, `t:${id}`))) as TaskRow | null;
    if (!row) return undefined;
    this.taskPaths.set(id, row.pathIds);
    return row;
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const path = await this.taskPath(id);
    return path ? this.readTask(path[0]!, id) : undefined;
  }

  private async getTasks(ids: string[]): Promise<TaskRow[]> {
    const rows = await Promise.all(ids.map((id) => this.getTask(id)));
    return rows.filter((t): t is TaskRow => t !== undefined);
  }

  async listTasks(q: TaskQuery): Promise<TaskRow[]> {
    let key: string;
    if (typeof q.parentId === 'string') {
      const path = await this.taskPath(q.parentId);
      if (!path) return [];
      key = this.keys.children(path[0]!, q.parentId);
    } else if (q.parentId === null) key = this.keys.roots();
    else if (q.tenant !== undefined) key = this.keys.tasksByTenant(q.tenant);
    else key = this.keys.tasks();
    const matches = (t: TaskRow): boolean =>
      (q.tenant === undefined || t.tenant === q.tenant) &&
      (q.parentId === undefined || t.parentId === q.parentId) &&
      (q.state === undefined || t.state === q.state) &&
      (q.label === undefined || t.label === q.label);
    // Index order is (created, id), the order every store lists in.
    const out: TaskRow[] = [];
    let skip = q.offset;
    for (let start = 0; out.length < q.limit; start += SCAN_CHUNK) {
      const ids = await this.redis.zrange(key, start, start + SCAN_CHUNK - 1);
      for (const t of await this.getTasks(ids)) {
        if (!matches(t)) continue;
        if (skip > 0) skip--;
        else if (out.length < q.limit) out.push(t);
      }
      if (ids.length < SCAN_CHUNK) break;
    }
    return out;
  }

  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    const key =
      q.taskId !== undefined ? this.keys.taskEvents(q.taskId) : q.tenant !== undefined ? this.keys.tenantEvents(q.tenant) : this.keys.events();
    const out: StoredEvent[] = [];
    let after = Math.max(0, Math.floor(q.afterSeq));
    while (out.length < q.limit) {
      const count = Math.max(q.limit - out.length, SCAN_CHUNK);
      const page = await this.redis.xrange(key, `(0-${after}`, '+', 'COUNT', count);
      for (const [id, fields] of page) {
        after = Number(id.slice(2));
        const e = JSON.parse(fields[1]!) as EventDraft;
        if (q.tenant !== undefined && e.tenant !== q.tenant) continue;
        if (out.length < q.limit) out.push({ seq: after, ...e });
      }
      if (page.length < count) break;
    }
    return out;
  }

  async readRuns(q: RunQuery): Promise<RunRecord[]> {
    const key =
      q.label !== undefined ? this.keys.runsByLabel(q.label) : q.tenant !== undefined ? this.keys.runsByTenant(q.tenant) : this.keys.runs();
    const out: RunRecord[] = [];
    for (let start = 0; out.length < q.limit; start += SCAN_CHUNK) {
      const ids = await this.redis.zrevrange(key, start, start + SCAN_CHUNK - 1);
      if (!ids.length) break;
      const texts = await this.redis.hmget(this.keys.runRecords(), ...ids);
      for (const text of texts) {
        if (!text) continue;
        const run = decodeRun(text);
        if ((q.tenant === undefined || run.tenant === q.tenant) && out.length < q.limit) out.push(run);
      }
      if (ids.length < SCAN_CHUNK) break;
    }
    return out.reverse();
  }

  async idleTasks(cutoffMs: number, limit: number): Promise<string[]> {
    const out: string[] = [];
    for (let start = 0; out.length < limit; start += SCAN_CHUNK) {
      const ids = await this.redis.zrange(this.keys.openTasks(), start, start + SCAN_CHUNK - 1);
      for (const t of await this.getTasks(ids)) if (isIdle(t, cutoffMs) && out.length < limit) out.push(t.id);
      if (ids.length < SCAN_CHUNK) break;
    }
    return out;
  }

  async expiredReservations(nowMs: number, limit: number): Promise<string[]> {
    const found = await this.redis.zrangebyscore(this.keys.pending(), '-inf', nowMs, 'WITHSCORES', 'LIMIT', 0, limit);
    const out: string[] = [];
    for (let i = 0; i < found.length; i += 2) {
      const id = found[i]!;
      const path = await this.reservationPath(id);
      const stored = path ? await this.redis.hget(this.keys.row(path[0]!, `r:${id}`), 'status') : null;
      const status = stored === null ? null : (JSON.parse(stored) as string);
      if (status === 'pending') out.push(id);
      // The index is repaired here: an entry left by a writer that died after finishing the reservation, or whose
      // reservation was never written (its reserve was refused on retry).
      else if (status !== null || Number(found[i + 1]) < nowMs - PENDING_ORPHAN_MS) await this.redis.zrem(this.keys.pending(), id);
    }
    return out;
  }

  async pruneReservations(beforeMs: number): Promise<number> {
    let pruned = 0;
    for (;;) {
      const ids = await this.redis.zrangebyscore(this.keys.finished(), '-inf', `(${beforeMs}`, 'LIMIT', 0, SCAN_CHUNK);
      if (!ids.length) return pruned;
      const paths = await Promise.all(ids.map((id) => this.reservationPath(id)));
      const pipeline = this.redis.pipeline();
      ids.forEach((id, i) => {
        const path = paths[i];
        if (path) pipeline.del(this.keys.row(path[0]!, `r:${id}`));
        pipeline.hdel(this.keys.reservationPaths(), id);
        pipeline.zrem(this.keys.finished(), id);
        this.reservationPaths.delete(id);
      });
      await pipeline.exec();
      pruned += ids.length;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.recovery);
    await Promise.allSettled([...this.lanes.values()].map((lane) => lane.running));
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** Splits the store's own `prefix` parameter from what ioredis reads in the URL. */
export function parseRedisUrl(url: string): { clientUrl: string; prefix: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new EnvelopeError('invalid_request', `bad Redis URL ${redactUrl(url)}; use redis://HOST:PORT/DB?prefix=NAME`);
  }
  const prefix = parsed.searchParams.get('prefix') ?? DEFAULT_PREFIX;
  parsed.searchParams.delete('prefix');
  return { clientUrl: parsed.toString(), prefix };
}

function unavailable(e: unknown): unknown {
  if (e instanceof EnvelopeError) return e;
  return new EnvelopeError('store_unavailable', `redis: ${(e as Error)?.message ?? String(e)}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
