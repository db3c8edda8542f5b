// The PostgreSQL store's tables, as numbered migrations that apply themselves on first start. Every replica may start
// at once: the migrations run in one transaction under an advisory lock, and each version is recorded once.
//
// Index plan: a task row is updated by every reservation and settlement on its path, so nothing that changes there
// is indexed (used, reserved and the state live in `data` or in an unindexed column) and the table keeps free room
// on each page (fillfactor): those updates stay heap-only (HOT), touch no index, and a hot budget stays one row.
// Ids use the "C" collation: byte order, as the other stores list tasks, and cheaper comparisons.
import type pg from 'pg';
import { EnvelopeError } from '../budget/errors.js';

interface Migration {
  version: number;
  name: string;
  /** `s` is the quoted schema name. */
  sql: (s: string) => string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'tasks, reservations, events, runs',
    sql: (s) => `
      CREATE TABLE ${s}.tasks (
        id text COLLATE "C" PRIMARY KEY,
        tenant text NOT NULL,
        parent_id text COLLATE "C",
        label text NOT NULL,
        state text NOT NULL,
        created_at_ms bigint NOT NULL,
        data jsonb NOT NULL
      ) WITH (fillfactor = 70);
      CREATE INDEX tasks_by_created ON ${s}.tasks (created_at_ms, id);
      CREATE INDEX tasks_by_tenant ON ${s}.tasks (tenant, created_at_ms, id);
      CREATE INDEX tasks_by_parent ON ${s}.tasks (parent_id, created_at_ms, id);

      CREATE TABLE ${s}.reservations (
        id text COLLATE "C" PRIMARY KEY,
        status text NOT NULL,
        expires_at_ms bigint NOT NULL,
        created_at_ms bigint NOT NULL,
        data jsonb NOT NULL
      ) WITH (fillfactor = 80);
      CREATE INDEX reservations_pending ON ${s}.reservations (expires_at_ms) WHERE status = 'pending';
      CREATE INDEX reservations_finished ON ${s}.reservations (created_at_ms) WHERE status <> 'pending';

      CREATE TABLE ${s}.events (
        seq bigserial PRIMARY KEY,
        tenant text NOT NULL,
        task_id text COLLATE "C" NOT NULL,
        type text NOT NULL,
        at_ms bigint NOT NULL,
        data jsonb NOT NULL
      );
      CREATE INDEX events_by_task ON ${s}.events (task_id, seq);
      CREATE INDEX events_by_tenant ON ${s}.events (tenant, seq);

      CREATE TABLE ${s}.runs (
        task text COLLATE "C" PRIMARY KEY,
        tenant text NOT NULL,
        label text NOT NULL,
        closed_at_ms bigint NOT NULL,
        data jsonb NOT NULL
      );
      CREATE INDEX runs_by_closed ON ${s}.runs (closed_at_ms);
      CREATE INDEX runs_by_label ON ${s}.runs (label, closed_at_ms);
      CREATE INDEX runs_by_tenant ON ${s}.runs (tenant, closed_at_ms);
    `,
  },
  {
    version: 2,
    name: 'open tasks, for idle close',
    // Partial: a row leaves it when its task closes, so settlements (which never change the state) stay HOT.
    sql: (s) => `CREATE INDEX tasks_open ON ${s}.tasks (created_at_ms, id) WHERE state <> 'closed';`,
  },
  {
    version: 3,
    name: 'tenant rate rows',
    // Tenant envelopes are task rows (id `~tenant`); only the rate windows, checked at admission, need a table.
    sql: (s) => `CREATE TABLE ${s}.rates (tenant text COLLATE "C" PRIMARY KEY, data jsonb NOT NULL) WITH (fillfactor = 70);`,
  },
];

/** The store's advisory locks: (this class, hashtext(schema || suffix)), one per schema and purpose. */
export const LOCK_CLASS = 0x454e56; // "ENV"
export const MIGRATION_LOCK = ':migrations';
export const EVENTS_LOCK = ':events';

/** Creates the schema and applies the migrations it lacks; safe to run from several replicas at once. */
export async function migrate(pool: pg.Pool, schema: string, quoted: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_CLASS, schema + MIGRATION_LOCK]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${quoted}.schema_migrations (
         version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${quoted}.schema_migrations`);
    const applied = new Set(rows.map((r) => r.version));
    const known = MIGRATIONS.at(-1)!.version;
    const newer = [...applied].find((v) => v > known);
    if (newer !== undefined) {
      throw new EnvelopeError(
        'store_unavailable',
        `postgres schema ${schema} is at version ${newer}, newer than this build knows (${known}); upgrade envelope`,
      );
    }
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql(quoted));
      await client.query(`INSERT INTO ${quoted}.schema_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}
