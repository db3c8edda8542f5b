// The live task feed behind the dashboard: while anyone watches, one shared scan of the store finds the tasks
// that changed (by version) and sends each watcher the changed tasks of its scope. A scan reads only open
// tasks (closed is final), so its cost follows the work in progress, not the history. Woken by this process's
// ledger changes, and polling for changes made by other replicas. It also keeps each task's recent figures,
// which the burn-down chart reads.
import type { TaskRow, TaskState } from '../budget/types.js';
import type { TaskView } from '../budget/view.js';
import { shownRow, type Ledger, type Scope } from '../ledger/ledger.js';
import type { BurnSample } from './history.js';

export interface TaskFeedOptions {
  /** Shortest time between two scans woken by local changes. */
  throttleMs: number;
  /** Scan this often anyway, for changes made by other processes. */
  pollMs: number;
  /** Closed tasks in a watcher's first snapshot: the most recent ones. */
  closedMax: number;
  /** Samples kept per task, and tasks kept, for the burn-down chart. */
  samplesPerTask: number;
  sampledTasksMax: number;
}

export const DEFAULT_TASK_FEED_OPTIONS: TaskFeedOptions = {
  throttleMs: 100,
  pollMs: 1_000,
  closedMax: 5_000,
  samplesPerTask: 1_000,
  sampledTasksMax: 5_000,
};

/** `snapshot`: every task of the watcher's scope (first delivery); `tasks`: only those changed since. */
export type FeedDelivery = { kind: 'snapshot' | 'tasks'; tasks: TaskView[] };

interface Watcher {
  tenant: string | undefined;
  /** Version of each task last sent; empty until the snapshot. */
  sent: Map<string, number>;
  first: boolean;
  deliver: (d: FeedDelivery) => void;
}

const PAGE = 1_000;
const OPEN_STATES: TaskState[] = ['active', 'scoping', 'wrapping_up', 'exhausted', 'paused'];

export class TaskFeed {
  private readonly options: TaskFeedOptions;
  private readonly watchers = new Set<Watcher>();
  private readonly samples = new Map<string, BurnSample[]>();
  private readonly sampledVersion = new Map<string, number>();
  private stopLedger: (() => void) | null = null;
  private poll: NodeJS.Timeout | null = null;
  private wake: NodeJS.Timeout | null = null;
  private scanning = false;
  private again = false;
  /** Ids of the tasks the last scan found open. */
  private openIds = new Set<string>();

  constructor(
    private readonly ledger: Ledger,
    options: Partial<TaskFeedOptions> = {},
  ) {
    this.options = { ...DEFAULT_TASK_FEED_OPTIONS, ...options };
  }

  /** Starts delivering to `deliver`: first a snapshot of the scope, then changes. Returns the unsubscribe. */
  watch(scope: Scope, deliver: (d: FeedDelivery) => void): () => void {
    const w: Watcher = { tenant: scope.tenant, sent: new Map(), first: true, deliver };
    this.watchers.add(w);
    if (this.watchers.size === 1) this.start();
    void this.scan();
    return () => {
      this.watchers.delete(w);
      if (this.watchers.size === 0) this.stop();
    };
  }

  /** The figures seen for a task while the feed ran, oldest first. */
  samplesOf(taskId: string): readonly BurnSample[] {
    return this.samples.get(taskId) ?? [];
  }

  private start(): void {
    this.stopLedger = this.ledger.onChange(() => {
      this.wake ??= setTimeout(() => {
        this.wake = null;
        void this.scan();
      }, this.options.throttleMs);
    });
    this.poll = setInterval(() => void this.scan(), this.options.pollMs);
  }

  private stop(): void {
    this.stopLedger?.();
    this.stopLedger = null;
    if (this.poll) clearInterval(this.poll);
    if (this.wake) clearTimeout(this.wake);
    this.poll = this.wake = null;
  }

  /** One read of every task; scans never overlap, and a wake during a scan runs one more. */
  private async scan(): Promise<void> {
    if (this.scanning) {
      this.again = true;
      return;
    }
    this.scanning = true;
    try {
      do {
        this.again = false;
        const rows = await this.readOpen();
        this.record(rows);
        await this.fanOut(rows);
      } while (this.again && this.watchers.size > 0);
    } catch (e) {
      process.emitWarning(`envelope dashboard: task scan failed: ${(e as Error).message}`);
    } finally {
      this.scanning = false;
    }
  }

  /** Every open task, and those that were open at the last scan and have closed since. */
  private async readOpen(): Promise<TaskRow[]> {
    const byId = new Map<string, TaskRow>();
    const keep = (r: TaskRow): void => {
      const had = byId.get(r.id);
      // A task that changed state between two of the queries may come twice: the newer wins.
      if (!had || had.version < r.version) byId.set(r.id, r);
    };
    for (const state of OPEN_STATES) for (const r of await this.readAll({ state }, {})) keep(r);
    const open = new Set(byId.keys());
    for (const id of this.openIds) {
      if (open.has(id)) continue;
      const row = await this.ledger.findTask(id);
      if (row) keep(row);
    }
    this.openIds = open;
    return [...byId.values()];
  }

  private async readAll(q: { state: TaskState }, scope: Scope, keepLast = Number.POSITIVE_INFINITY): Promise<TaskRow[]> {
    let rows: TaskRow[] = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.ledger.listTasks({ ...q, limit: PAGE, offset }, scope);
      rows.push(...page);
      if (rows.length > keepLast) rows = rows.slice(-keepLast);
      if (page.length < PAGE) return rows;
    }
  }

  private record(rows: TaskRow[]): void {
    for (const r of rows) {
      if (this.sampledVersion.get(r.id) === r.version) continue;
      this.sampledVersion.set(r.id, r.version);
      let list = this.samples.get(r.id);
      if (!list) {
        if (this.samples.size >= this.options.sampledTasksMax) {
          // Forget the task sampled first (Map keeps insertion order).
          const oldest = this.samples.keys().next().value as string;
          this.samples.delete(oldest);
          this.sampledVersion.delete(oldest);
        }
        list = [];
        this.samples.set(r.id, list);
      }
      list.push({ atMs: r.updatedAtMs, used: r.used, reserved: r.reserved, total: r.total });
      if (list.length > this.options.samplesPerTask) list.splice(0, list.length - this.options.samplesPerTask);
    }
  }

  private async fanOut(rows: TaskRow[]): Promise<void> {
    const views = new Map<string, TaskView>();
    const viewOf = (r: TaskRow): TaskView => {
      // By tenant too: a tenant's own id may be another's store id.
      const key = `${r.tenant}\n${r.id}`;
      let v = views.get(key);
      if (!v) views.set(key, (v = this.ledger.view(r)));
      return v;
    };
    for (const w of this.watchers) {
      const scope: Scope = { tenant: w.tenant };
      const scoped = rows.filter((r) => w.tenant === undefined || r.tenant === w.tenant).map((r) => shownRow(scope, r));
      if (w.first) {
        // The first snapshot also carries the watcher's recent closed tasks, read once.
        const closed = await this.readAll({ state: 'closed' }, scope, this.options.closedMax);
        if (!this.watchers.has(w)) continue; // it left while the store answered
        const open = new Set(scoped.map((r) => r.id));
        scoped.unshift(...closed.filter((r) => !open.has(r.id)));
      }
      const changed: TaskView[] = [];
      for (const r of scoped) {
        if (w.sent.get(r.id) === r.version) continue;
        w.sent.set(r.id, r.version);
        changed.push(viewOf(r));
      }
      if (w.first) {
        w.first = false;
        w.deliver({ kind: 'snapshot', tasks: changed });
      } else if (changed.length > 0) {
        w.deliver({ kind: 'tasks', tasks: changed });
      }
    }
  }
}
