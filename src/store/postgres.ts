// `postgres://USER@HOST:PORT/DB?schema=NAME` — several replicas, durable history, SQL reporting.
//
// One short transaction per operation, in two round trips: (1) BEGIN and `SELECT … FOR UPDATE` of the reservation
// (if any), then of the task path rows sorted by id — every transaction locks in that one order, so two never wait on
// each other in a cycle; (2) the TypeScript rules decide, then the writes and COMMIT go as one statement batch.
// A lost race to create the same id (unique violation), a deadlock or a serialization failure retries the operation.
//
// Events get their `seq` from a bigserial while holding a transaction-level advisory lock (taken last, only by
// transactions that write events): event writers commit one at a time, in seq order, so a reader that resumes after
// seq N can never later see an event below N appear. Event-free operations (most reservations) never take it.
import pg from 'pg';
import { EnvelopeError } from '../budget/errors.js';
import type { Decision, Snapshot } from '../budget/rules.js';
import type { EventType, Mutation, ReservationRow, RunRecord, StoredEvent, TaskRow } from '../budget/types.js';
import { redactUrl } from './open.js';
import { EVENTS_LOCK, LOCK_CLASS, migrate } from './postgres-schema.js';
import { outcomeOf, pathFrom, type EventQuery, type LedgerStore, type Need, type RunQuery, type TaskQuery } from './store.js';

const DEFAULT_SCHEMA = 'envelope';
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const POOL_MAX = 10;
const ATTEMPTS_MAX = 20;
const BACKOFF_CAP_MS = 20;
/** serialization_failure, deadlock_detected, unique_violation (two creators of one id: the loser sees the winner's). */
const RETRYABLE = new Set(['40001', '40P01', '23505']);

const lit = (value: string): string => pg.escapeLiteral(value);
const int = (value: number): string => {
  if (!Number.isSafeInteger(value)) throw new Error(`postgres store: ${value} is not a whole number`);
  return String(value);
};

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
  /** Quoted table names. */
  private readonly t: { tasks: string; reservations: string; events: string; runs: string };
  private closed = false;

  /** Connects and brings the schema up to date (creating it on first start). */
  static async connect(url: string): Promise<PostgresStore> {
    const { connectionString, schema } = parsePostgresUrl(url);
    const pool = new pg.Pool({ connectionString, max: POOL_MAX });
    // An idle client's connection error surfaces on the next query; without a listener it would end the process.
    pool.on('error', () => undefined);
    const store = new PostgresStore(pool, schema);
    try {
      await migrate(pool, schema, pg.escapeIdentifier(schema));
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
    this.t = { tasks: `${s}.tasks`, reservations: `${s}.reservations`, events: `${s}.events`, runs: `${s}.runs` };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Changes

  async atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let decision: Decision<T>;
      try {
        decision = await this.transaction(need, decide);
      } catch (e) {
        if (e instanceof RuleFailure) throw e.cause;
        const code = (e as { code?: string }).code;
        if (code !== undefined && RETRYABLE.has(code) && attempt < ATTEMPTS_MAX) {
          await sleep(Math.random() * Math.min(BACKOFF_CAP_MS, 2 ** attempt));
          continue;
        }
        throw unavailable(e);
      }
      return outcomeOf(decision);
    }
  }

  private async transaction<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<Decision<T>> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      const snap = await this.lock(client, need);
      let decision: Decision<T>;
      try {
        decision = decide(snap);
      } catch (e) {
        throw new RuleFailure(e);
      }
      const m = decision.mutation;
      await client.query(m ? `${this.writes(m, snap)};COMMIT` : 'COMMIT');
      return decision;
    } catch (e) {
      // A failed statement leaves the transaction aborted; a connection that cannot even roll back is dropped.
      await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
      throw e;
    } finally {
      client.release(broken);
    }
  }

  /** BEGIN, then lock and read what the rules need, in the one lock order: reservation first, tasks by id. */
  private async lock(client: pg.PoolClient, need: Need): Promise<Snapshot> {
    const { tasks, reservations } = this.t;
    const statements = ['BEGIN'];
    const ids: string[] = [];
    if (need.reservation !== undefined) {
      statements.push(`SELECT data FROM ${reservations} WHERE id = ${lit(need.reservation)} FOR UPDATE`);
      ids.push(`ARRAY(SELECT jsonb_array_elements_text(data->'pathIds') FROM ${reservations} WHERE id = ${lit(need.reservation)})`);
    }
    if (need.path) {
      ids.push(`ARRAY(SELECT jsonb_array_elements_text(data->'pathIds') FROM ${tasks} WHERE id = ${lit(need.path)})`);
    }
    if (need.existing !== undefined) ids.push(`ARRAY[${lit(need.existing)}]`);
    if (ids.length) {
      statements.push(`SELECT data FROM ${tasks} WHERE id = ANY(${ids.join(' || ')}) ORDER BY id FOR UPDATE`);
    }
    const results = (await client.query(statements.join(';'))) as unknown as pg.QueryResult[] | pg.QueryResult;
    if (!Array.isArray(results)) return { path: [] };
    const taskRows = new Map<string, TaskRow>();
    let reservation: ReservationRow | undefined;
    if (need.reservation !== undefined) reservation = results[1]!.rows[0]?.data as ReservationRow | undefined;
    if (ids.length) for (const r of results.at(-1)!.rows) taskRows.set((r.data as TaskRow).id, r.data as TaskRow);
    const get = (id: string): TaskRow | undefined => taskRows.get(id);
    const snap: Snapshot = { path: [] };
    if (reservation) {
      snap.reservation = reservation;
      snap.path = pathFrom(get(reservation.taskId), get);
    }
    if (need.path) snap.path = pathFrom(get(need.path), get);
    if (need.existing !== undefined) snap.existing = get(need.existing);
    return snap;
  }

  /** The statements that write a mutation (before COMMIT). Rows the snapshot held are updated; others inserted. */
  private writes(m: Mutation, snap: Snapshot): string {
    const { tasks, reservations, events, runs } = this.t;
    const held = new Set([...snap.path.map((t) => t.id), ...(snap.existing ? [snap.existing.id] : [])]);
    const statements: string[] = [];
    const updated = m.tasks.filter((t) => held.has(t.id));
    const created = m.tasks.filter((t) => !held.has(t.id));
    if (updated.length) {
      const values = updated.map((t) => `(${lit(t.id)}, ${lit(t.state)}, ${lit(JSON.stringify(t))}::jsonb)`).join(',');
      statements.push(
        `UPDATE ${tasks} AS t SET state = v.state, data = v.data FROM (VALUES ${values}) AS v(id, state, data) WHERE t.id = v.id`,
      );
    }
    if (created.length) {
      const values = created
        .map(
          (t) =>
            `(${lit(t.id)}, ${lit(t.tenant)}, ${t.parentId === null ? 'NULL' : lit(t.parentId)}, ${lit(t.label)}, ${lit(t.state)}, ${int(t.createdAtMs)}, ${lit(JSON.stringify(t))})`,
        )
        .join(',');
      statements.push(`INSERT INTO ${tasks} (id, tenant, parent_id, label, state, created_at_ms, data) VALUES ${values}`);
    }
    const r = m.reservation;
    if (r) {
      statements.push(
        `INSERT INTO ${reservations} (id, status, expires_at_ms, created_at_ms, data)
         VALUES (${lit(r.id)}, ${lit(r.status)}, ${int(r.expiresAtMs)}, ${int(r.createdAtMs)}, ${lit(JSON.stringify(r))})
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, data = EXCLUDED.data`,
      );
    }
    if (m.events.length) {
      statements.push(`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${lit(this.schema + EVENTS_LOCK)}))`);
      const values = m.events
        .map((e) => `(${lit(e.tenant)}, ${lit(e.taskId)}, ${lit(e.type)}, ${int(e.atMs)}, ${lit(JSON.stringify(e.data))})`)
        .join(',');
      statements.push(`INSERT INTO ${events} (tenant, task_id, type, at_ms, data) VALUES ${values}`);
    }
    const run = m.run;
    if (run) {
      statements.push(
        `INSERT INTO ${runs} (task, tenant, label, closed_at_ms, data)
         VALUES (${lit(run.task)}, ${lit(run.tenant)}, ${lit(run.label)}, ${int(run.closedAtMs)}, ${lit(JSON.stringify(run))})
         ON CONFLICT (task) DO UPDATE SET tenant = EXCLUDED.tenant, label = EXCLUDED.label,
           closed_at_ms = EXCLUDED.closed_at_ms, data = EXCLUDED.data`,
      );
    }
    return statements.join(';');
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
    return rows[0]?.data;
  }

  async listTasks(q: TaskQuery): Promise<TaskRow[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (v: unknown): string => `$${args.push(v)}`;
    if (q.tenant !== undefined) where.push(`tenant = ${arg(q.tenant)}`);
    if (q.parentId === null) where.push('parent_id IS NULL');
    else if (q.parentId !== undefined) where.push(`parent_id = ${arg(q.parentId)}`);
    if (q.state !== undefined) where.push(`state = ${arg(q.state)}`);
    if (q.label !== undefined) where.push(`label = ${arg(q.label)}`);
    const sql = `SELECT data FROM ${this.t.tasks} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY created_at_ms, id LIMIT ${arg(q.limit)} OFFSET ${arg(q.offset)}`;
    return (await this.query<{ data: TaskRow }>(sql, args)).map((r) => r.data);
  }

  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    const args: unknown[] = [q.afterSeq];
    const where = ['seq > $1'];
    if (q.tenant !== undefined) where.push(`tenant = $${args.push(q.tenant)}`);
    if (q.taskId !== undefined) where.push(`task_id = $${args.push(q.taskId)}`);
    const sql = `SELECT seq, tenant, task_id, type, at_ms, data FROM ${this.t.events}
                 WHERE ${where.join(' AND ')} ORDER BY seq LIMIT $${args.push(q.limit)}`;
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
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.tenant !== undefined) where.push(`tenant = $${args.push(q.tenant)}`);
    if (q.label !== undefined) where.push(`label = $${args.push(q.label)}`);
    const sql = `SELECT data FROM (SELECT data, closed_at_ms FROM ${this.t.runs} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY closed_at_ms DESC LIMIT $${args.push(q.limit)}) AS latest ORDER BY closed_at_ms`;
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

/** An exception from a rule (a bug): passed to the caller as it is, never retried or relabelled. */
class RuleFailure {
  constructor(readonly cause: unknown) {}
}

function unavailable(e: unknown): unknown {
  if (e instanceof EnvelopeError) return e;
  return new EnvelopeError('store_unavailable', `postgres: ${(e as Error)?.message ?? String(e)}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
