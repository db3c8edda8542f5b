// One PostgreSQL transaction over a group of operations: the SQL that locks what they read (reservations, then task
// rows, each sorted by id: one lock order for every transaction, so none wait on each other in a cycle), the rows as
// each decision leaves them for the next, and the SQL that writes the final state of every changed row.
import pg from 'pg';
import type { Snapshot } from '../budget/rules.js';
import type { EventDraft, Mutation, RateRow, ReservationRow, RunRecord, TaskRow } from '../budget/types.js';
import { encodeTask, upgradeReservation, upgradeTask } from './codec.js';
import { LOCK_CLASS } from './postgres-schema.js';
import { snapshotFor } from './snapshot.js';
import type { Need } from './store.js';

/** Quoted table names of one schema. */
export interface Tables {
  tasks: string;
  reservations: string;
  events: string;
  runs: string;
  rates: string;
}

const lit = (value: string): string => pg.escapeLiteral(value);
const int = (value: number): string => {
  if (!Number.isSafeInteger(value)) throw new Error(`postgres store: ${value} is not a whole number`);
  return String(value);
};
const array = (values: Iterable<string>): string => `ARRAY[${[...values].map(lit).join(',')}]::text[]`;

export class PostgresBatch {
  private readonly tasks = new Map<string, TaskRow>();
  private readonly reservations = new Map<string, ReservationRow>();
  private readonly rates = new Map<string, RateRow>();
  private readonly lockedRates = new Set<string>();
  private readonly changedRates = new Set<string>();
  /** Task rows that existed when locked: updated, where the others are inserted. */
  private readonly lockedTasks = new Set<string>();
  private readonly changedTasks = new Set<string>();
  private readonly changedReservations = new Set<string>();
  private readonly events: EventDraft[] = [];
  private readonly runs = new Map<string, RunRecord>();

  constructor(
    private readonly t: Tables,
    /** Second key of the advisory lock that orders event writers (see PostgresStore). */
    private readonly eventsLockName: string,
  ) {}

  /** BEGIN, then the locking reads for `needs`; the result sets to pass to `load`, in the same order. */
  lockSql(needs: Need[]): string {
    const { tasks, reservations } = this.t;
    const reservationIds = new Set<string>();
    const leafIds = new Set<string>();
    const taskIds = new Set<string>();
    const tenants = new Set<string>();
    for (const need of needs) {
      if (need.rate !== undefined) tenants.add(need.rate);
      if (need.reservation !== undefined) reservationIds.add(need.reservation);
      if (need.path) leafIds.add(need.path);
      if (need.existing !== undefined) taskIds.add(need.existing);
    }
    const sources = [array(taskIds)];
    if (leafIds.size) {
      sources.push(`ARRAY(SELECT jsonb_array_elements_text(data->'pathIds') FROM ${tasks} WHERE id = ANY(${array(leafIds)}))`);
    }
    if (reservationIds.size) {
      sources.push(`ARRAY(SELECT jsonb_array_elements_text(data->'pathIds') FROM ${reservations} WHERE id = ANY(${array(reservationIds)}))`);
    }
    return [
      'BEGIN',
      `SELECT data FROM ${reservations} WHERE id = ANY(${array(reservationIds)}) ORDER BY id FOR UPDATE`,
      `SELECT data FROM ${tasks} WHERE id = ANY(${sources.join(' || ')}) ORDER BY id FOR UPDATE`,
      // Last in the lock order: rate rows (admission), in tenant order.
      `SELECT data FROM ${this.t.rates} WHERE tenant = ANY(${array(tenants)}) ORDER BY tenant FOR UPDATE`,
    ].join(';');
  }

  load(results: pg.QueryResult[]): void {
    for (const r of results[1]!.rows) this.reservations.set((r.data as ReservationRow).id, upgradeReservation(r.data as ReservationRow));
    for (const r of results[2]!.rows) {
      const row = upgradeTask(r.data as TaskRow);
      this.tasks.set(row.id, row);
      this.lockedTasks.add(row.id);
    }
    for (const r of results[3]!.rows) {
      const row = r.data as RateRow;
      this.rates.set(row.tenant, row);
      this.lockedRates.add(row.tenant);
    }
  }

  /** What a rule reads, as the decisions before it in this transaction left it. */
  snapshot(need: Need): Snapshot {
    return snapshotFor(need, { task: (id) => this.tasks.get(id), reservation: (id) => this.reservations.get(id), rate: (tenant) => this.rates.get(tenant) });
  }

  apply(m: Mutation): void {
    for (const t of m.tasks) {
      this.tasks.set(t.id, t);
      this.changedTasks.add(t.id);
    }
    if (m.reservation) {
      this.reservations.set(m.reservation.id, m.reservation);
      this.changedReservations.add(m.reservation.id);
    }
    if (m.rate) {
      this.rates.set(m.rate.tenant, m.rate);
      this.changedRates.add(m.rate.tenant);
    }
    this.events.push(...m.events);
    if (m.run) this.runs.set(m.run.task, m.run);
  }

  /** The statements that write every changed row once, in its final state, and the events in order (no COMMIT). */
  writeSql(): string {
    const { tasks, reservations, events, runs } = this.t;
    const statements: string[] = [];
    const changed = [...this.changedTasks].map((id) => this.tasks.get(id)!);
    const updated = changed.filter((t) => this.lockedTasks.has(t.id));
    const created = changed.filter((t) => !this.lockedTasks.has(t.id));
    if (updated.length) {
      const values = updated.map((t) => `(${lit(t.id)}, ${lit(t.state)}, ${lit(encodeTask(t))}::jsonb)`).join(',');
      statements.push(
        `UPDATE ${tasks} AS t SET state = v.state, data = v.data FROM (VALUES ${values}) AS v(id, state, data) WHERE t.id = v.id`,
      );
    }
    if (created.length) {
      const values = created
        .map(
          (t) =>
            `(${lit(t.id)}, ${lit(t.tenant)}, ${t.parentId === null ? 'NULL' : lit(t.parentId)}, ${lit(t.label)}, ${lit(t.state)}, ${int(t.createdAtMs)}, ${lit(encodeTask(t))})`,
        )
        .join(',');
      // A concurrent creator of the same id makes this fail (unique violation): the transaction is tried again.
      statements.push(`INSERT INTO ${tasks} (id, tenant, parent_id, label, state, created_at_ms, data) VALUES ${values}`);
    }
    if (this.changedReservations.size) {
      const values = [...this.changedReservations]
        .map((id) => this.reservations.get(id)!)
        .map((r) => `(${lit(r.id)}, ${lit(r.status)}, ${int(r.expiresAtMs)}, ${int(r.createdAtMs)}, ${lit(JSON.stringify(r))})`)
        .join(',');
      statements.push(
        `INSERT INTO ${reservations} (id, status, expires_at_ms, created_at_ms, data) VALUES ${values}
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, expires_at_ms = EXCLUDED.expires_at_ms, data = EXCLUDED.data`,
      );
    }
    if (this.changedRates.size) {
      const values = [...this.changedRates].map((tenant) => `(${lit(tenant)}, ${lit(JSON.stringify(this.rates.get(tenant)))}::jsonb)`).join(',');
      // A new tenant's row may be inserted by two transactions at once: the loser's unique violation retries it.
      statements.push(`INSERT INTO ${this.t.rates} (tenant, data) VALUES ${values} ON CONFLICT (tenant) DO UPDATE SET data = EXCLUDED.data`);
    }
    if (this.events.length) {
      statements.push(`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${lit(this.eventsLockName)}))`);
      const values = this.events
        .map((e) => `(${lit(e.tenant)}, ${lit(e.taskId)}, ${lit(e.type)}, ${int(e.atMs)}, ${lit(JSON.stringify(e.data))})`)
        .join(',');
      statements.push(`INSERT INTO ${events} (tenant, task_id, type, at_ms, data) VALUES ${values}`);
    }
    if (this.runs.size) {
      const values = [...this.runs.values()]
        .map((r) => `(${lit(r.task)}, ${lit(r.tenant)}, ${lit(r.label)}, ${int(r.closedAtMs)}, ${lit(JSON.stringify(r))})`)
        .join(',');
      statements.push(
        `INSERT INTO ${runs} (task, tenant, label, closed_at_ms, data) VALUES ${values}
         ON CONFLICT (task) DO UPDATE SET tenant = EXCLUDED.tenant, label = EXCLUDED.label,
           closed_at_ms = EXCLUDED.closed_at_ms, data = EXCLUDED.data`,
      );
    }
    return statements.join(';');
  }
}
