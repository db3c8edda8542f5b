// The embedded store's SQLite binding: Node's built-in `node:sqlite` where this Node ships it (22.13 and later: no
// native build, no install script), else better-sqlite3 (Node 20), which npm builds from source or a prebuilt binary.
// ENVELOPE_SQLITE_DRIVER=better-sqlite3 or node:sqlite picks one. Both are synchronous, with the same few calls the
// store needs; transactions are plain SQL, so both run the same BEGIN IMMEDIATE / SAVEPOINT sequence.
import { createRequire } from 'node:module';
import { EnvelopeError } from '../budget/errors.js';

export type SqliteDriverName = 'node:sqlite' | 'better-sqlite3';

export interface SqliteStatement<Row> {
  get(...args: unknown[]): Row | undefined;
  all(...args: unknown[]): Row[];
  run(...args: unknown[]): { changes: number | bigint };
}

export interface SqliteDb {
  readonly driver: SqliteDriverName;
  readonly open: boolean;
  exec(sql: string): void;
  prepare<Row = Record<string, unknown>>(sql: string): SqliteStatement<Row>;
  /** A query's first column of its first row, as text (better-sqlite3 plucks it without building a row object). */
  text(sql: string): (...args: unknown[]) => string | undefined;
  close(): void;
}

/** What this module uses of `node:sqlite` (its types ship with @types/node 22, not the 20 this project builds on). */
interface NodeSqlite {
  DatabaseSync: new (path: string) => {
    exec(sql: string): void;
    prepare(sql: string): SqliteStatement<Record<string, unknown>>;
    close(): void;
  };
}

interface BetterSqlite {
  new (path: string): {
    readonly open: boolean;
    exec(sql: string): void;
    prepare(sql: string): SqliteStatement<Record<string, unknown>> & { pluck(): SqliteStatement<string> };
    close(): void;
  };
}

/** `node:sqlite` if this Node has it without a flag; undefined on Node 20 (and on 22 before 22.13). */
function builtIn(): NodeSqlite | undefined {
  return process.getBuiltinModule?.('node:sqlite') as NodeSqlite | undefined;
}

export function defaultDriver(): SqliteDriverName {
  const asked = process.env.ENVELOPE_SQLITE_DRIVER;
  if (asked === 'node:sqlite' || asked === 'better-sqlite3') return asked;
  if (asked) throw new EnvelopeError('invalid_request', `ENVELOPE_SQLITE_DRIVER is node:sqlite or better-sqlite3, not "${asked}"`);
  return builtIn() ? 'node:sqlite' : 'better-sqlite3';
}

export function openSqlite(path: string, driver: SqliteDriverName = defaultDriver()): SqliteDb {
  return driver === 'node:sqlite' ? openBuiltIn(path) : openBetter(path);
}

function openBuiltIn(path: string): SqliteDb {
  const mod = builtIn();
  if (!mod) throw new EnvelopeError('store_unavailable', `node:sqlite is not in Node ${process.version} (it is from 22.13 on); leave ENVELOPE_SQLITE_DRIVER unset to use better-sqlite3`);
  const db = new mod.DatabaseSync(path);
  let open = true;
  return {
    driver: 'node:sqlite',
    get open() {
      return open;
    },
    exec: (sql) => db.exec(sql),
    prepare: <Row>(sql: string) => db.prepare(sql) as SqliteStatement<Row>,
    text(sql) {
      const stmt = db.prepare(sql);
      return (...args) => {
        const row = stmt.get(...args);
        return row === undefined ? undefined : (Object.values(row)[0] as string);
      };
    },
    close() {
      open = false;
      db.close();
    },
  };
}

function openBetter(path: string): SqliteDb {
  let db: InstanceType<BetterSqlite>;
  try {
    const Database = createRequire(import.meta.url)('better-sqlite3') as BetterSqlite;
    // The native part loads here, on first open: without its build (an install script npm skipped) this throws.
    db = new Database(path);
  } catch (e) {
    // Only a binding that is missing or built for another Node gets this advice; a file SQLite cannot open is
    // the caller's to read as it is.
    if (!isMissingBinding(e)) throw e;
    throw new EnvelopeError(
      'store_unavailable',
      `the SQLite store needs better-sqlite3 on Node ${process.version}, and it did not load (${(e as Error).message.split('\n')[0]}). ` +
        'Approve its install script (npm 12 skips unapproved ones: npm install-scripts approve better-sqlite3) and reinstall, or run Node 22.13 or later (node:sqlite is built in)',
    );
  }
  return {
    driver: 'better-sqlite3',
    get open() {
      return db.open;
    },
    exec: (sql) => db.exec(sql),
    prepare: <Row>(sql: string) => db.prepare(sql) as unknown as SqliteStatement<Row>,
    text(sql) {
      const stmt = db.prepare(sql).pluck();
      return (...args) => stmt.get(...args);
    },
    close: () => db.close(),
  };
}

/** better-sqlite3 present as JavaScript only (its install script skipped), absent, or built for another Node. */
function isMissingBinding(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown };
  return (
    err?.code === 'MODULE_NOT_FOUND' ||
    err?.code === 'ERR_DLOPEN_FAILED' ||
    /Could not locate the bindings file|NODE_MODULE_VERSION|better_sqlite3\.node/.test(String(err?.message ?? ''))
  );
}

/** SQLITE_BUSY and its extended codes (SQLITE_BUSY_RECOVERY while another process recovers the WAL, …), from either driver. */
export function isBusy(e: unknown): boolean {
  const err = e as { code?: unknown; errcode?: unknown } | null;
  if (typeof err?.errcode === 'number') return (err.errcode & 0xff) === 5;
  return String(err?.code ?? '').startsWith('SQLITE_BUSY');
}

/**
 * Runs `work` in one BEGIN IMMEDIATE transaction; with `each`, every item in its own savepoint, so that one that
 * throws rolls back alone (its error is returned in its place) while the others commit together.
 */
export class Transactions {
  private readonly begin;
  private readonly commit;
  private readonly rollback;
  private readonly savepoint;
  private readonly release;
  private readonly rollbackTo;

  constructor(db: SqliteDb) {
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
    this.savepoint = db.prepare('SAVEPOINT op');
    this.release = db.prepare('RELEASE op');
    this.rollbackTo = db.prepare('ROLLBACK TO op');
  }

  /** Throws what `work` throws, or what BEGIN or COMMIT throw (SQLITE_BUSY: nothing was written). */
  immediate<T>(work: () => T): T {
    this.begin.run();
    let result: T;
    try {
      result = work();
      this.commit.run();
    } catch (e) {
      // After a failed COMMIT (or a throw in `work`) the transaction is still open: undo it.
      try {
        this.rollback.run();
      } catch {
        // No transaction left to roll back (SQLite ended it itself).
      }
      throw e;
    }
    return result;
  }

  /** Each item's value or what it threw, in order; all in one transaction. */
  each<I, T>(items: I[], work: (item: I) => T): Array<{ value?: T; thrown?: unknown }> {
    return this.immediate(() =>
      items.map((item) => {
        this.savepoint.run();
        try {
          const value = work(item);
          this.release.run();
          return { value };
        } catch (thrown) {
          this.rollbackTo.run();
          this.release.run();
          return { thrown };
        }
      }),
    );
  }
}
