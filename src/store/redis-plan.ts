// Turns a batch of operations on one task tree into one call of the commit script. Each operation is decided by
// its own pure rule on the rows as the operations before it in the batch left them. The script checks that every
// row the batch read still has the version (or status) it had before the batch, then writes each changed row once,
// in its final state: the batch commits whole, or not at all and is decided again.
import type { Decision, Snapshot } from '../budget/rules.js';
import type { EventDraft, RateRow, ReservationRow, RunRecord, TaskRow } from '../budget/types.js';
import type { RedisKeys, RowRef } from './redis-keys.js';
import { changedFields, tokenField, tokenOf, type Row } from './redis-rows.js';
import { decided, snapshotFor } from './snapshot.js';
import type { Need } from './store.js';

/** The lookups an operation was located by: task paths, root first. */
export interface Located {
  root: string;
  path?: string[];
  reservation?: string[];
  /** The `existing` task when it lives in another tree: read once, never written by this op. */
  foreignExisting?: TaskRow;
}

export interface TreeOp extends Located {
  need: Need;
  decide: (snap: Snapshot) => Decision<unknown>;
  /** The rows it reads in its tree (refsOf, computed once it is located). */
  refs: RowRef[];
  /** Conflicts so far, and when the op was first queued (Date.now() ms). */
  attempts: number;
  queuedAtMs: number;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** What a task creation leaves for the shared indexes and the task's lookup key. */
export interface CreatedTask {
  id: string;
  tenant: string;
  parentId: string | null;
  createdAtMs: number;
  pathIds: string[];
}

/** One outbox entry: what a committed op adds to the shared keys. */
export interface OutboxEntry {
  events: EventDraft[];
  run?: RunRecord;
  created: CreatedTask[];
  /** Tenants that got their first rate row (for the tenants index); absent in entries written before it. */
  tenants?: string[];
}

export interface PlannedOp {
  op: TreeOp;
  decision: Decision<unknown>;
  created: CreatedTask[];
  tenants: string[];
  /** A reservation this op puts on hold (indexed by expiry before the commit). */
  held?: ReservationRow;
  /** A reservation this op finishes (moved from the expiry index to the prune index after the commit). */
  finished?: ReservationRow;
  hasOutbox: boolean;
}

/** The rows an op reads in its tree. */
export function refsOf(op: TreeOp): RowRef[] {
  const refs = new Set<RowRef>();
  const { need } = op;
  if (need.reservation !== undefined) {
    refs.add(`r:${need.reservation}`);
    for (const id of op.reservation ?? []) refs.add(`t:${id}`);
  }
  if (need.path) for (const id of op.path ?? []) refs.add(`t:${id}`);
  if (need.existing !== undefined && !op.foreignExisting) refs.add(`t:${need.existing}`);
  if (need.rate !== undefined) refs.add(`q:${need.rate}`);
  return [...refs];
}

export class CommitPlan {
  readonly keys: string[] = [];
  readonly planned: PlannedOp[] = [];
  readonly failed: Array<{ op: TreeOp; error: unknown }> = [];
  /** Rows as the planned ops leave them, over `rows`. */
  readonly changes = new Map<RowRef, Row>();
  private readonly keyIndex = new Map<string, number>();
  /** Every row the batch read or wrote, with its version (or status) before the batch. */
  private readonly checks: (string | number)[] = [];
  /** The rows checked, in the order of the checks (a conflict returns them in this order). */
  readonly checked: RowRef[] = [];
  private readonly checkedSet = new Set<RowRef>();
  /** Children index entries and outbox entries, in op order. */
  private readonly appends: (string | number)[] = [];

  constructor(
    private readonly redisKeys: RedisKeys,
    private readonly root: string,
    private readonly rows: ReadonlyMap<RowRef, Row | null>,
  ) {
    this.index(redisKeys.turn(root));
    this.index(redisKeys.nextTurn(root));
  }

  private get(ref: RowRef): Row | null | undefined {
    return this.changes.get(ref) ?? this.rows.get(ref);
  }

  private index(key: string): number {
    let i = this.keyIndex.get(key);
    if (i === undefined) {
      i = this.keys.push(key);
      this.keyIndex.set(key, i);
    }
    return i;
  }

  private check(ref: RowRef): void {
    if (this.checkedSet.has(ref)) return;
    this.checkedSet.add(ref);
    this.checked.push(ref);
    this.checks.push(this.index(this.redisKeys.row(this.root, ref)), tokenField(ref), tokenOf(this.rows.get(ref)));
  }

  private snapshotOf(op: TreeOp): Snapshot {
    return snapshotFor(op.need, {
      task: (id) => (this.get(`t:${id}`) as TaskRow | null | undefined) ?? undefined,
      reservation: (id) => (this.get(`r:${id}`) as ReservationRow | null | undefined) ?? undefined,
      existing: (id) => op.foreignExisting ?? ((this.get(`t:${id}`) as TaskRow | null | undefined) ?? undefined),
      rate: (tenant) => (this.get(`q:${tenant}`) as RateRow | null | undefined) ?? undefined,
    });
  }

  add(op: TreeOp): void {
    let decision: Decision<unknown>;
    try {
      decision = decided(op.decide, this.snapshotOf(op));
      const outside = decision.mutation?.tasks.find((t) => t.pathIds[0] !== this.root);
      if (outside) throw new Error(`redis store: task ${outside.id} is not in tree ${this.root}`);
    } catch (error) {
      this.failed.push({ op, error });
      return;
    }
    for (const ref of op.refs) this.check(ref);
    const planned: PlannedOp = { op, decision, created: [], tenants: [], hasOutbox: false };
    const m = decision.mutation;
    if (m) {
      for (const t of m.tasks) {
        const ref: RowRef = `t:${t.id}`;
        this.check(ref);
        if (!this.get(ref)) {
          planned.created.push({ id: t.id, tenant: t.tenant, parentId: t.parentId, createdAtMs: t.createdAtMs, pathIds: t.pathIds });
          if (t.parentId !== null) this.appends.push('Z', this.index(this.redisKeys.children(this.root, t.parentId)), t.createdAtMs, t.id);
        }
        this.changes.set(ref, t);
      }
      if (m.rate) {
        const ref: RowRef = `q:${m.rate.tenant}`;
        this.check(ref);
        if (!this.get(ref)) planned.tenants.push(m.rate.tenant);
        this.changes.set(ref, m.rate);
      }
      const r = m.reservation;
      if (r) {
        // A reservation the op did not read is written as it is (a new hold), as every other store does.
        this.changes.set(`r:${r.id}`, r);
        if (r.status === 'pending') planned.held = r;
        else planned.finished = r;
      }
      if (m.events.length || m.run || planned.created.length || planned.tenants.length) {
        const entry: OutboxEntry = { events: m.events, run: m.run, created: planned.created, tenants: planned.tenants };
        this.appends.push('X', this.index(this.redisKeys.outbox(this.root)), JSON.stringify(entry));
        planned.hasOutbox = true;
      }
    }
    this.planned.push(planned);
  }

  /** The commit script's arguments: who writes, the checks, then every changed row once, then the appends. */
  args(writerId: string, turnMs: number): (string | number)[] {
    const writes: (string | number)[] = [];
    for (const [ref, row] of this.changes) {
      const fields = changedFields(this.rows.get(ref), row);
      if (fields.length) writes.push('H', this.index(this.redisKeys.row(this.root, ref)), fields.length / 2, ...fields);
    }
    return [writerId, turnMs, this.checks.length / 3, ...this.checks, ...writes, ...this.appends];
  }
}
