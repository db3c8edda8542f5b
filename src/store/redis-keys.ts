// Where the Redis store keeps everything. One task tree (a root task and all its descendants) lives under the hash
// tag of its root id, so the script that changes a tree touches one slot and runs on Redis Cluster. Everything shared
// by all trees (event streams, run records, indexes) lives under the tag `{~}`: no store id is `~` alone (a task id has
// no `~`; a tenant's task is `tenant~id`, an envelope `~tenant`), so no tree ever shares that tag. A task's lookup (task → path) is a single key in its own slot.
import { EnvelopeError } from '../budget/errors.js';

/** No colon, so `<prefix>:*` matches this store's keys and no other prefix's. */
export const PREFIX_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** A row key inside a tree's cache and scripts: `t:<task id>`, `r:<reservation id>` or `q:<tenant>` (a rate row). */
export type RowRef = `t:${string}` | `r:${string}` | `q:${string}`;

const ROW_KIND = { t: 'task', r: 'res', q: 'rate' } as const;

export class RedisKeys {
  readonly prefix: string;
  private readonly shared: string;

  constructor(prefix: string) {
    if (!PREFIX_PATTERN.test(prefix)) {
      throw new EnvelopeError('invalid_request', `redis key prefix "${prefix}" must be 1-64 of letters, digits and . _ -`);
    }
    this.prefix = prefix;
    this.shared = `${prefix}:{~}`;
  }

  // One tree (same slot).
  tree = (root: string): string => `${this.prefix}:{${root}}`;
  row = (root: string, ref: RowRef): string => `${this.tree(root)}:${ROW_KIND[ref[0] as 't' | 'r' | 'q']}:${ref.slice(2)}`;
  /**
   * The tree a tenant's rate row lives in: a slot of its own (SPEC §4a), apart from its envelope and task trees. Its
   * id has two `~`, which no envelope id (`~` and a tenant name) and no task id can have.
   */
  rateTree = (tenant: string): string => `~rate~${tenant}`;
  children = (root: string, parentId: string): string => `${this.tree(root)}:children:${parentId}`;
  /** The writer whose turn it is on this tree (expires by itself), and the one waiting for the next turn. */
  turn = (root: string): string => `${this.tree(root)}:turn`;
  nextTurn = (root: string): string => `${this.tree(root)}:next-turn`;
  /** Events, run records and new tasks of committed changes, waiting to be published to the shared keys. */
  outbox = (root: string): string => `${this.tree(root)}:outbox`;

  /** A task's lookup: its path, root first (one key per task, in its own slot). */
  taskPath = (taskId: string): string => `${this.prefix}:task-path:${taskId}`;

  // Shared (the `{~}` slot).
  eventSeq = (): string => `${this.shared}:event-seq`;
  events = (): string => `${this.shared}:events`;
  taskEvents = (taskId: string): string => `${this.shared}:events:task:${taskId}`;
  tenantEvents = (tenant: string): string => `${this.shared}:events:tenant:${tenant}`;
  runs = (): string => `${this.shared}:runs`;
  runsByLabel = (label: string): string => `${this.shared}:runs:label:${label}`;
  runsByTenant = (tenant: string): string => `${this.shared}:runs:tenant:${tenant}`;
  runRecords = (): string => `${this.shared}:run-records`;
  tasks = (): string => `${this.shared}:tasks`;
  tasksByTenant = (tenant: string): string => `${this.shared}:tasks:tenant:${tenant}`;
  /** Tasks not closed yet (by creation time): what idle close reads. */
  openTasks = (): string => `${this.shared}:tasks:open`;
  roots = (): string => `${this.shared}:roots`;
  /** Tenants with an envelope or a rate row (the operator's), by when they got one. */
  tenants = (): string => `${this.shared}:tenants`;
  /** Trees whose outbox may hold entries, scored by when a writer last added one. */
  outboxes = (): string => `${this.shared}:outboxes`;
  /** Per tree: the id of the last outbox entry published, so an entry is published once. */
  outboxCursor = (): string => `${this.shared}:outbox-cursor`;
  /** Reservation id → its task path. One hash, so a tick's new reservations are indexed with one command. */
  reservationPaths = (): string => `${this.shared}:res-paths`;
  /** Pending reservations by expiry, and finished ones by creation (for pruning). Members are reservation ids. */
  pending = (): string => `${this.shared}:pending`;
  finished = (): string => `${this.shared}:finished`;

  /** Every key of this store, for tests and `flush`: all keys start with the prefix and a colon. */
  pattern = (): string => `${this.prefix}:*`;
}
