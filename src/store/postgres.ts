// `postgres://USER@HOST:PORT/DB?schema=NAME` — several replicas, durable history, SQL reporting.
//
// Every change is a short transaction in two round trips: (1) BEGIN and `SELECT … FOR UPDATE` of the reservations,
// then of the task path rows, each sorted by id — every transaction locks in that one order, so two never wait on
// each other in a cycle; (2) the TypeScript rules decide, then the writes and COMMIT go as one statement batch.
// Operations that arrive while this process's transactions are busy share the next one (group commit): each is
// decided on the rows as the one before it left them, and they commit together. With one caller, that is one
// transaction per operation; under load it is what keeps a hot budget from waiting on one row lock per call.
// A lost race to create the same id (unique violation), a deadlock or a serialization failure retries the group.
//
// Events get their `seq` from a bigserial while holding a transaction-level advisory lock (taken last, only by
// transactions that write events): event writers commit one at a time, in seq order, so a reader that resumes after
// seq N can never later see an event below N appear. Event-free transactions (most reservations) never take it.
import pg from 'pg';
import { EnvelopeError } from '../budget/errors.js';
import type { Decision, Snapshot } from '../budget/rules.js';
import type { EventType, RateRow, RunRecord, StoredEvent, TaskRow } from '../budget/types.js';
import { StoreClock } from './clock.js';
import { upgradeTask } from './codec.js';
import { backoffMs, sleep, unavailable as failed } from './failures.js';
import { ENVELOPES_ONLY, eventFilter, postgresArgs, runFilter, taskFilter, TASKS_ONLY } from './sql-filters.js';
import { redactUrl } from './open.js';
import { PostgresBatch, type Tables } from './postgres-batch.js';
import { EVENTS_LOCK, migrate } from './postgres-schema.js';
import { decided } from './snapshot.js';
import { type EventQuery, type LedgerStore, type Need, type RunQuery, type TaskQuery, type TenantRows } from './store.js';

const DEFAULT_SCHEMA = 'envelope';
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const POOL_MAX = 10;
/** Transactions this process runs at once (the rest of the pool serves reads), and operations per transaction. */
const TRANSACTIONS_MAX = 4;
const GROUP_OPS_MAX = 64;
const ATTEMPTS_MAX = 20;
const BACKOFF_CAP_MS = 20;
/** serialization_failure, deadlock_detected, unique_violation (two creators of one id: the loser sees the winner's). */
const RETRYABLE = new Set(['40001', '40P01', '23505']);

interface PendingOp {
  need: Need;
  decide: (snap: Snapshot) => Decision<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

interface EventRow {
  seq: string;
  tenant: string;
  task_id: string;
  type: string;
  at_ms: string;
  data: Record<string, unknown>;
}

export class PostgresStore implements LedgerStore {
  readonly kind = 'postgres' as const;
  readonly schema: string;
  private readonly pool: pg.Pool;
  private readonly t: Tables;
  private readonly queue: PendingOp[] = [];
  private readonly running = new Set<Promise<void>>();
  private scheduled = false;
  private closed = false;
  private readonly clock: StoreClock;

  /** Connects and brings the schema up to date (creating it on first start). */
  static async connect(url: string): Promise<PostgresStore> {
    const { connectionString, schema } = parsePostgresUrl(url);
    const pool = new pg.Pool({ connectionString, max: POOL_MAX });
    // An idle client's connection error surfaces on the next query; without a listener it would end the process.
    pool.on('error', () => undefined);
    const store = new PostgresStore(pool, schema);
    try {
      await migrate(pool, schema, pg.escapeIdentifier(schema));
      await store.clock.start();
    } catch (e) {
      await pool.end().catch(() => undefined);
      if (e instanceof EnvelopeError) throw e;
      throw new EnvelopeError('store_unavailable', `cannot open PostgreSQL at ${redactUrl(url)}: ${(e as Error).message}`);
    }
    return store;
  }

  private constructor(pool: pg.Pool, schema: string) {
    this.pool = pool;
    this.schema = schema;
    const s = pg.escapeIdentifier(schema);
    this.clock = new StoreClock(async () => {
      const { rows } = await pool.query<{ ms: number }>('SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS ms');
      return rows[0]!.ms;
    });
    this.t = { tasks: `${s}.tasks`, reservations: `${s}.reservations`, events: `${s}.events`, runs: `${s}.runs`, rates: `${s}.rates` };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Changes

  now(): number {
    return this.clock.now();
  }

  atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ need, decide, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Starts transactions for the queued operations, once the promise jobs already queued have run (so that callers
   *  answered together are grouped together). */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(() => {
      this.scheduled = false;
      while (this.running.size < TRANSACTIONS_MAX && this.queue.length) {
        const run = this.runGroup(this.queue.splice(0, GROUP_OPS_MAX)).finally(() => {
          this.running.delete(run);
          if (this.queue.length) this.schedule();
        });
        this.running.add(run);
      }
    });
  }

  private async runGroup(group: PendingOp[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let decisions: Array<Decision<unknown> | RuleFailure>;
      try {
        decisions = await this.transaction(group);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code !== undefined && RETRYABLE.has(code) && attempt < ATTEMPTS_MAX) {
          await sleep(backoffMs(attempt, BACKOFF_CAP_MS));
          continue;
        }
        for (const op of group) op.reject(unavailable(e));
        return;
      }
      group.forEach((op, i) => {
        const d = decisions[i]!;
        if (d instanceof RuleFailure) op.reject(d.cause);
        else if (d.error) op.reject(d.error);
        else op.resolve(d.result);
      });
      return;
    }
  }

  private async transaction(group: PendingOp[]): Promise<Array<Decision<unknown> | RuleFailure>> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      const batch = new PostgresBatch(this.t, this.schema + EVENTS_LOCK);
      batch.load((await client.query(batch.lockSql(group.map((op) => op.need)))) as unknown as pg.QueryResult[]);
      const decisions = group.map((op) => {
        try {
          const d = decided(op.decide, batch.snapshot(op.need));
          if (d.mutation) batch.apply(d.mutation);
          return d;
        } catch (e) {
          return new RuleFailure(e);
        }
      });
      const writes = batch.writeSql();
      await client.query(writes ? `${writes};COMMIT` : 'COMMIT');
      return decisions;
    } catch (e) {
      // A failed statement leaves the transaction aborted; a connection that cannot even roll back is dropped.
      await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
      throw e;
    } finally {
      client.release(broken);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Reads

  private async query<R extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, args)).rows;
    } catch (e) {
      throw unavailable(e);
    }
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const rows = await this.query<{ data: TaskRow }>(`SELECT data FROM ${this.t.tasks} WHERE id = $1`, [id]);
    return rows[0] && upgradeTask(rows[0].data);
  }

  async listTasks(q: TaskQuery): Promise<TaskRow[]> {
    const { args, arg } = postgresArgs();
    const sql = `SELECT data FROM ${this.t.tasks} ${taskFilter(q, arg)} ORDER BY created_at_ms, id LIMIT ${arg(q.limit)} OFFSET ${arg(q.offset)}`;
    return (await this.query<{ data: TaskRow }>(sql, args)).map((r) => upgradeTask(r.data));
  }

  async idleTasks(cutoffMs: number, limit: number): Promise<string[]> {
    const sql = `SELECT id FROM ${this.t.tasks} WHERE ${TASKS_ONLY} AND state <> 'closed' AND state <> 'paused'
                   AND (data->>'calls')::bigint > 0 AND (data->>'reserved')::bigint = 0
                   AND (data->>'callsReserved')::bigint = 0 AND (data->>'updatedAtMs')::bigint <= $1
                 ORDER BY created_at_ms, id LIMIT $2`;
    return (await this.query<{ id: string }>(sql, [cutoffMs, limit])).map((r) => r.id);
  }

  async tenantRows(): Promise<TenantRows> {
    const [envelopes, rates] = await Promise.all([
      this.query<{ data: TaskRow }>(`SELECT data FROM ${this.t.tasks} WHERE ${ENVELOPES_ONLY} ORDER BY id`),
      this.query<{ data: RateRow }>(`SELECT data FROM ${this.t.rates} ORDER BY tenant`),
    ]);
    return { envelopes: envelopes.map((r) => upgradeTask(r.data)), rates: rates.map((r) => r.data) };
  }

  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    const { args, arg } = postgresArgs();
    const sql = `SELECT seq, tenant, task_id, type, at_ms, data FROM ${this.t.events} ${eventFilter(q, arg)} ORDER BY seq LIMIT ${arg(q.limit)}`;
    return (await this.query<EventRow>(sql, args)).map((e) => ({
      seq: Number(e.seq),
      tenant: e.tenant,
      taskId: e.task_id,
      type: e.type as EventType,
      atMs: Number(e.at_ms),
      data: e.data,
    }));
  }

  async readRuns(q: RunQuery): Promise<RunRecord[]> {
    const { args, arg } = postgresArgs();
    const sql = `SELECT data FROM (SELECT data, closed_at_ms FROM ${this.t.runs} ${runFilter(q, arg)}
                 ORDER BY closed_at_ms DESC LIMIT ${arg(q.limit)}) AS latest ORDER BY closed_at_ms`;
    return (await this.query<{ data: RunRecord }>(sql, args)).map((r) => r.data);
  }

  async expiredReservations(nowMs: number, limit: number): Promise<string[]> {
    const sql = `SELECT id FROM ${this.t.reservations} WHERE status = 'pending' AND expires_at_ms <= $1
                 ORDER BY expires_at_ms LIMIT $2`;
    return (await this.query<{ id: string }>(sql, [nowMs, limit])).map((r) => r.id);
  }

  async pruneReservations(beforeMs: number): Promise<number> {
    try {
      const result = await this.pool.query(`DELETE FROM ${this.t.reservations} WHERE status <> 'pending' AND created_at_ms < $1`, [beforeMs]);
      return result.rowCount ?? 0;
    } catch (e) {
      throw unavailable(e);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clock.stop();
    while (this.running.size) await Promise.allSettled([...this.running]);
    await this.pool.end();
  }
}

/** Splits the store's own `schema` parameter from the connection string node-postgres reads. */
export function parsePostgresUrl(url: string): { connectionString: string; schema: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new EnvelopeError('invalid_request', `bad PostgreSQL URL ${redactUrl(url)}; use postgres://USER@HOST:PORT/DB?schema=NAME`);
  }
  const schema = parsed.searchParams.get('schema') ?? DEFAULT_SCHEMA;
  if (!SCHEMA_PATTERN.test(schema)) {
    throw new EnvelopeError('invalid_request', `postgres schema "${schema}" must be lower-case letters, digits and _, starting with a letter or _`);
  }
  parsed.searchParams.delete('schema');
  return { connectionString: parsed.toString(), schema };
}

/** An exception from a rule (a bug): passed to its caller as it is, never retried or relabelled. */
class RuleFailure {
  constructor(readonly cause: unknown) {}
}

const unavailable = (e: unknown): unknown => failed('postgres', e);
