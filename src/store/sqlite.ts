// `sqlite:PATH` — the embedded default. One file in WAL mode: many processes may share it; every change is one
// IMMEDIATE transaction, so a writer holds the file's write lock from its first read to its commit.
// synchronous=NORMAL in WAL survives a killed process (kill -9) with every committed transaction intact.
// Operations that become ready in the same event-loop turn share one transaction (group commit), each in its
// own savepoint: a commit costs the same for one operation or fifty, and a failing one rolls back alone.
// While another process holds the write lock, operations wait on a timer, never in SQLite's busy handler: that one
// sleeps inside the call and would stall every request and stream of this process (see `retryLater`).
// The binding is node:sqlite or better-sqlite3 (./sqlite-driver.ts), whichever this Node has.
import { EnvelopeError } from '../budget/errors.js';
import type { Decision, Snapshot } from '../budget/rules.js';
import type { EventType, Mutation, RateRow, ReservationRow, RunRecord, StoredEvent, TaskRow } from '../budget/types.js';
import { reservationIdFloor } from '../ledger/ids.js';
import { sleep } from './failures.js';
import { decodeReservation, decodeRun, decodeTask, encodeRow, encodeTask } from './codec.js';
import { DecodedRows } from './decoded-rows.js';
import { decided, snapshotFor } from './snapshot.js';
import { ENVELOPES_ONLY, eventFilter, runFilter, sqliteArgs, taskFilter, TASKS_ONLY } from './sql-filters.js';
import { isBusy, openSqlite, Transactions, type SqliteDb, type SqliteDriverName } from './sqlite-driver.js';
import { outcomeOf, type EventQuery, type LedgerStore, type Need, type RunQuery, type TaskQuery, type TenantRows } from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  parent_id TEXT,
  label TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_tenant ON tasks (tenant, created_at_ms);
CREATE INDEX IF NOT EXISTS tasks_by_parent ON tasks (parent_id);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (created_at_ms) WHERE state != 'closed';
CREATE TABLE IF NOT EXISTS reservations (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  data TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_pending ON reservations (expires_at_ms) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant TEXT NOT NULL,
  task_id TEXT NOT NULL,
  type TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task_id, seq);
CREATE TABLE IF NOT EXISTS runs (
  task TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  label TEXT NOT NULL,
  closed_at_ms INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_label ON runs (tenant, label, closed_at_ms);
CREATE TABLE IF NOT EXISTS rates (
  tenant TEXT PRIMARY KEY,
  data TEXT NOT NULL
) WITHOUT ROWID;
`;

interface PendingOp {
  /** When the file was first found locked for this operation (Date.now() ms). */
  lockedSinceMs?: number;
  need: Need;
  decide: (snap: Snapshot) => Decision<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

interface EventRow {
  seq: number;
  tenant: string;
  task_id: string;
  type: string;
  at_ms: number;
  data: string;
}

export class SqliteStore implements LedgerStore {
  readonly kind = 'sqlite' as const;
  readonly path: string;
  private readonly db: SqliteDb;
  private readonly stmt;
  private readonly runBatch: (batch: PendingOp[]) => Array<{ decision?: Decision<unknown>; thrown?: unknown }>;
  private queue: PendingOp[] = [];
  /** Set while the queue waits for another process's write lock to go. */
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 0;
  private readonly lockWaitMs: number;
  /** The rows transactions read, decoded once per text (a model call reads and writes its path's rows twice). */
  private readonly decodedTasks = new DecodedRows(decodeTask, DECODED_ROWS_MAX);
  private readonly decodedReservations = new DecodedRows(decodeReservation, DECODED_ROWS_MAX);

  /**
   * `lockWaitMs`: how long an operation waits for another process's write lock before failing (store_unavailable);
   * `driver`: the SQLite binding (default: node:sqlite where this Node has it, else better-sqlite3).
   */
  constructor(path: string, options: { lockWaitMs?: number; driver?: SqliteDriverName } = {}) {
    this.path = path;
    this.lockWaitMs = options.lockWaitMs ?? 10_000;
    this.db = openSqlite(path, options.driver);
    // Opening may wait (a blocking wait is fine here, once); afterwards a locked file answers SQLITE_BUSY at once.
    this.db.exec(`PRAGMA busy_timeout = ${this.lockWaitMs}`);
    this.db.exec('PRAGMA journal_mode = WAL');
    this.db.exec('PRAGMA synchronous = NORMAL');
    // Checkpoints copy the WAL into the file and fsync it; fewer, larger ones cost much less per transaction.
    this.db.exec('PRAGMA wal_autocheckpoint = 10000');
    this.db.exec(SCHEMA);
    this.db.exec('PRAGMA busy_timeout = 0');
    const db = this.db;
    this.stmt = {
      // The row's text itself, not an object around it (these run twice in every model call).
      task: db.text('SELECT data FROM tasks WHERE id = ?'),
      reservation: db.text('SELECT data FROM reservations WHERE id = ?'),
      rate: db.text('SELECT data FROM rates WHERE tenant = ?'),
      putRate: db.prepare('INSERT INTO rates (tenant, data) VALUES (?, ?) ON CONFLICT (tenant) DO UPDATE SET data = excluded.data'),
      putTask: db.prepare(
        `INSERT INTO tasks (id, tenant, parent_id, label, state, created_at_ms, data) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, data = excluded.data`,
      ),
      putReservation: db.prepare(
        `INSERT INTO reservations (id, status, expires_at_ms, created_at_ms, data) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, expires_at_ms = excluded.expires_at_ms, data = excluded.data`,
      ),
      // Rows the transaction has just read are updated in place: cheaper than an upsert's insert attempt.
      updateTask: db.prepare('UPDATE tasks SET state = ?, data = ? WHERE id = ?'),
      // Without the state column when it did not change: a column in SET makes SQLite rewrite the row's entry in the
      // open-tasks index (state is in its WHERE), two more pages in the WAL for every reserve+settle pair.
      updateTaskData: db.prepare('UPDATE tasks SET data = ? WHERE id = ?'),
      updateReservation: db.prepare('UPDATE reservations SET status = ?, expires_at_ms = ?, data = ? WHERE id = ?'),
      putEvent: db.prepare('INSERT INTO events (tenant, task_id, type, at_ms, data) VALUES (?, ?, ?, ?, ?)'),
      putRun: db.prepare('INSERT OR REPLACE INTO runs (task, tenant, label, closed_at_ms, data) VALUES (?, ?, ?, ?, ?)'),
      expired: db.prepare<{ id: string }>(
        `SELECT id FROM reservations WHERE status = 'pending' AND expires_at_ms <= ? ORDER BY expires_at_ms LIMIT ?`,
      ),
      // Open tasks only (a partial index): the closed ones, nearly all of them in time, are never read.
      idle: db.prepare<{ id: string }>(
        `SELECT id FROM tasks WHERE ${TASKS_ONLY} AND state != 'closed' AND state != 'paused'
           AND json_extract(data, '$.calls') > 0 AND json_extract(data, '$.reserved') = 0
           AND json_extract(data, '$.callsReserved') = 0 AND json_extract(data, '$.updatedAtMs') <= ?
         ORDER BY created_at_ms LIMIT ?`,
      ),
      // A key range (ids sort by creation time), so a sweep reads only the old rows, never the whole table;
      // bounded, so a large backlog is cleared over several sweeps without a long stall.
      prune: db.prepare(
        `DELETE FROM reservations WHERE id IN
           (SELECT id FROM reservations WHERE id < ? AND created_at_ms < ? AND status != 'pending' LIMIT 10000)`,
      ),
    };
    const get = (id: string): TaskRow | undefined => {
      const text = this.stmt.task(id);
      return text === undefined ? undefined : this.decodedTasks.row(id, text);
    };
    const reservation = (id: string): ReservationRow | undefined => {
      const text = this.stmt.reservation(id);
      return text === undefined ? undefined : this.decodedReservations.row(id, text);
    };
    const rate = (tenant: string): RateRow | undefined => {
      const text = this.stmt.rate(tenant);
      return text === undefined ? undefined : (JSON.parse(text) as RateRow);
    };
    const step = (need: Need, decide: (snap: Snapshot) => Decision<unknown>): Decision<unknown> => {
      const snap = snapshotFor(need, { task: get, reservation, rate });
      const decision = decided(decide, snap);
      if (decision.mutation) this.apply(decision.mutation, snap);
      return decision;
    };
    const tx = new Transactions(db);
    // A lone operation (the usual case under light load) needs no savepoint: its failure rolls back the transaction.
    // In a batch each runs in its own savepoint, and one that throws rolls back alone.
    this.runBatch = (ops) =>
      ops.length === 1
        ? tx.immediate(() => [{ decision: step(ops[0]!.need, ops[0]!.decide) }])
        : tx.each(ops, (op) => step(op.need, op.decide)).map((r) => ('thrown' in r ? { thrown: r.thrown } : { decision: r.value! }));
  }

  private flush(): void {
    this.retryTimer = null;
    const ops = this.queue;
    this.queue = [];
    let results: ReturnType<typeof this.runBatch>;
    try {
      results = this.runBatch(ops);
    } catch (e) {
      // The transaction could not start, or failed as a whole (or a lone operation threw): nothing was written.
      if (isBusy(e)) this.retryLater(ops);
      else for (const op of ops) op.reject(e);
      return;
    }
    this.retryDelayMs = 0;
    results.forEach((r, i) => {
      const op = ops[i]!;
      if (r.thrown !== undefined) op.reject(r.thrown);
      else {
        try {
          op.resolve(outcomeOf(r.decision!));
        } catch (e) {
          op.reject(e);
        }
      }
    });
  }

  /**
   * Another process holds the write lock: the batch goes back to the head of the queue and is tried again after a
   * short, growing delay (operations arriving meanwhile join it), while this process keeps serving everything else.
   */
  private retryLater(ops: PendingOp[]): void {
    const now = Date.now();
    const waiting = ops.filter((op) => {
      op.lockedSinceMs ??= now;
      if (now - op.lockedSinceMs <= this.lockWaitMs) return true;
      op.reject(lockedTooLong(this.path, this.lockWaitMs));
      return false;
    });
    this.queue = [...waiting, ...this.queue];
    if (!this.queue.length) return;
    this.retryDelayMs = Math.min(Math.max(1, this.retryDelayMs * 2), 20);
    this.retryTimer = setTimeout(() => this.flush(), this.retryDelayMs);
  }

  /**
   * A statement outside the batches (a read, or the prune), retried on a timer while the file is locked. Readers in
   * WAL mode meet a lock only in rare moments (another process recovering the WAL); the prune meets any writer.
   */
  private async whenUnlocked<T>(run: () => T): Promise<T> {
    const started = Date.now();
    for (let delayMs = 1; ; delayMs = Math.min(delayMs * 2, 20)) {
      try {
        return run();
      } catch (e) {
        if (!isBusy(e)) throw e;
        if (Date.now() - started > this.lockWaitMs) throw lockedTooLong(this.path, this.lockWaitMs);
      }
      await sleep(delayMs);
    }
  }

  /** Writes a decision's mutation; `read` is what the transaction read before deciding (those rows exist). */
  private apply(m: Mutation, read: Snapshot): void {
    for (const t of m.tasks) {
      const was = read.path.find((p) => p.id === t.id);
      const text = encodeTask(t);
      if (was && was.state === t.state) this.stmt.updateTaskData.run(text, t.id);
      else if (was) this.stmt.updateTask.run(t.state, text, t.id);
      else this.stmt.putTask.run(t.id, t.tenant, t.parentId, t.label, t.state, t.createdAtMs, text);
      this.decodedTasks.wrote(t.id, text, t);
    }
    const r = m.reservation;
    if (r) {
      const text = encodeRow(r);
      if (read.reservation?.id === r.id) this.stmt.updateReservation.run(r.status, r.expiresAtMs, text, r.id);
      else this.stmt.putReservation.run(r.id, r.status, r.expiresAtMs, r.createdAtMs, text);
      this.decodedReservations.wrote(r.id, text, r);
    }
    if (m.rate) this.stmt.putRate.run(m.rate.tenant, JSON.stringify(m.rate));
    for (const e of m.events) this.stmt.putEvent.run(e.tenant, e.taskId, e.type, e.atMs, JSON.stringify(e.data));
    const run = m.run;
    if (run) this.stmt.putRun.run(run.task, run.tenant, run.label, run.closedAtMs, encodeRow(run));
  }

  atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ need, decide, resolve: resolve as (v: unknown) => void, reject });
      if (this.queue.length === 1 && !this.retryTimer) setImmediate(() => this.flush());
    });
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const text = await this.whenUnlocked(() => this.stmt.task(id));
    return text === undefined ? undefined : decodeTask(text);
  }

  async listTasks(q: TaskQuery): Promise<TaskRow[]> {
    const { args, arg } = sqliteArgs();
    const sql = `SELECT data FROM tasks ${taskFilter(q, arg)} ORDER BY created_at_ms, id LIMIT ${arg(q.limit)} OFFSET ${arg(q.offset)}`;
    const rows = await this.whenUnlocked(() => this.db.prepare<{ data: string }>(sql).all(...args));
    return rows.map((r) => decodeTask(r.data));
  }

  async tenantRows(): Promise<TenantRows> {
    const [envelopes, rates] = await this.whenUnlocked(() => [
      this.db.prepare<{ data: string }>(`SELECT data FROM tasks WHERE ${ENVELOPES_ONLY} ORDER BY id`).all(),
      this.db.prepare<{ data: string }>('SELECT data FROM rates ORDER BY tenant').all(),
    ]);
    return { envelopes: envelopes.map((r) => decodeTask(r.data)), rates: rates.map((r) => JSON.parse(r.data) as RateRow) };
  }

  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    const { args, arg } = sqliteArgs();
    const sql = `SELECT * FROM events ${eventFilter(q, arg)} ORDER BY seq LIMIT ${arg(q.limit)}`;
    const rows = await this.whenUnlocked(() => this.db.prepare<EventRow>(sql).all(...args));
    return rows.map((e) => ({
      seq: e.seq,
      tenant: e.tenant,
      taskId: e.task_id,
      type: e.type as EventType,
      atMs: e.at_ms,
      data: JSON.parse(e.data) as Record<string, unknown>,
    }));
  }

  async readRuns(q: RunQuery): Promise<RunRecord[]> {
    const { args, arg } = sqliteArgs();
    const sql = `SELECT data FROM (SELECT data, closed_at_ms FROM runs ${runFilter(q, arg)}
                 ORDER BY closed_at_ms DESC LIMIT ${arg(q.limit)}) ORDER BY closed_at_ms`;
    const rows = await this.whenUnlocked(() => this.db.prepare<{ data: string }>(sql).all(...args));
    return rows.map((r) => decodeRun(r.data));
  }

  async expiredReservations(nowMs: number, limit: number): Promise<string[]> {
    return (await this.whenUnlocked(() => this.stmt.expired.all(nowMs, limit))).map((r) => r.id);
  }

  async idleTasks(cutoffMs: number, limit: number): Promise<string[]> {
    return (await this.whenUnlocked(() => this.stmt.idle.all(cutoffMs, limit))).map((r) => r.id);
  }

  async pruneReservations(beforeMs: number): Promise<number> {
    return Number((await this.whenUnlocked(() => this.stmt.prune.run(reservationIdFloor(beforeMs), beforeMs))).changes);
  }

  async close(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.queue.length) this.flush();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const op of this.queue.splice(0)) op.reject(new EnvelopeError('store_unavailable', `sqlite ${this.path}: closed while waiting for a write lock`));
    if (this.db.open) this.db.close();
  }
}

/** Rows of each kind kept decoded: the paths of the calls in flight, and the reservations they settle seconds later. */
const DECODED_ROWS_MAX = 4_096;

const lockedTooLong = (path: string, ms: number): EnvelopeError =>
  new EnvelopeError('store_unavailable', `sqlite ${path}: another process held the write lock for over ${ms} ms; try again`);
