// What every ledger store provides. A store never decides anything: it loads what the rules need, runs the
// rules' decision function, and writes the resulting mutation in one atomic step.
import type { Decision, Snapshot } from '../budget/rules.js';
import type { RateRow, RunRecord, StoredEvent, TaskRow, TaskState } from '../budget/types.js';

export interface Need {
  /** Load this task and its ancestors into `path` (root first). */
  path?: string | null;
  /** Load this reservation, and its task path into `path`. */
  reservation?: string;
  /** Load this task, if it exists, into `existing` (for idempotent creation). */
  existing?: string;
  /** Load this tenant's rate row, if it has one, into `rate` (admission). */
  rate?: string;
}

/** What the operator set for the tenants: their envelopes (task rows `~tenant`) and their rate rows. Few rows. */
export interface TenantRows {
  envelopes: TaskRow[];
  rates: RateRow[];
}

export interface TaskQuery {
  tenant?: string;
  /** `null` lists root tasks only. */
  parentId?: string | null;
  state?: TaskState;
  label?: string;
  limit: number;
  offset: number;
}

export interface EventQuery {
  afterSeq: number;
  limit: number;
  tenant?: string;
  taskId?: string;
}

export interface RunQuery {
  tenant?: string;
  label?: string;
  limit: number;
}

export type StoreKind = 'memory' | 'sqlite' | 'redis' | 'postgres';

export interface LedgerStore {
  readonly kind: StoreKind;
  /**
   * Loads `need`, calls `decide` on it, writes `decision.mutation` atomically, then throws `decision.error`
   * or returns `decision.result`. No concurrent writer can change what was loaded before the write lands.
   * `decide` is pure and may be called more than once (optimistic stores retry on conflict).
   */
  atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T>;
  getTask(id: string): Promise<TaskRow | undefined>;
  listTasks(q: TaskQuery): Promise<TaskRow[]>;
  readEvents(q: EventQuery): Promise<StoredEvent[]>;
  readRuns(q: RunQuery): Promise<RunRecord[]>;
  /** Ids of pending reservations whose time-to-live has passed, oldest first. */
  expiredReservations(nowMs: number, limit: number): Promise<string[]>;
  /** Ids of tasks idle since `cutoffMs` (budget/idle.ts `isIdle`), oldest first; the ledger re-checks each. */
  idleTasks(cutoffMs: number, limit: number): Promise<string[]>;
  /** Every tenant envelope and rate row. Listings of tasks never include the envelopes. */
  tenantRows(): Promise<TenantRows>;
  /**
   * The store's clock (ms since the epoch), which every replica of a shared store reads alike: the local clock
   * corrected by the offset to the server's, measured at connect and now and then since. Absent: the local clock.
   */
  now?(): number;
  /** Forgets finished reservations older than `beforeMs` (after that, a late settle is refused). */
  pruneReservations(beforeMs: number): Promise<number>;
  close(): Promise<void>;
}

/** The value of a decision once its mutation is written. */
export function outcomeOf<T>(d: Decision<T>): T {
  if (d.error) throw d.error;
  return d.result as T;
}
