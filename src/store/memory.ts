// `memory:` — everything in maps; atomic because each operation runs to the end without yielding.
import type { Decision, Snapshot } from '../budget/rules.js';
import { isEnvelope } from '../budget/tenants.js';
import type { Mutation, RateRow, ReservationRow, RunRecord, StoredEvent, TaskRow } from '../budget/types.js';
import { outcomeOf, type EventQuery, type LedgerStore, type Need, type RunQuery, type TaskQuery, type TenantRows } from './store.js';
import { filterTasks } from './query.js';
import { decided, snapshotFor } from './snapshot.js';
import { isIdle } from '../budget/idle.js';

export class MemoryStore implements LedgerStore {
  readonly kind = 'memory' as const;
  private readonly tasks = new Map<string, TaskRow>();
  private readonly reservations = new Map<string, ReservationRow>();
  private readonly rates = new Map<string, RateRow>();
  private readonly events: StoredEvent[] = [];
  private readonly runs: RunRecord[] = [];

  async atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T> {
    const decision = decided(
      decide,
      snapshotFor(need, { task: (id) => this.tasks.get(id), reservation: (id) => this.reservations.get(id), rate: (tenant) => this.rates.get(tenant) }),
    );
    if (decision.mutation) this.apply(decision.mutation);
    return outcomeOf(decision);
  }

  private apply(m: Mutation): void {
    for (const t of m.tasks) this.tasks.set(t.id, t);
    if (m.reservation) this.reservations.set(m.reservation.id, m.reservation);
    if (m.rate) this.rates.set(m.rate.tenant, m.rate);
    for (const e of m.events) this.events.push({ ...e, seq: this.events.length + 1 });
    if (m.run) this.runs.push(m.run);
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    return this.tasks.get(id);
  }

  async listTasks(q: TaskQuery): Promise<TaskRow[]> {
    return filterTasks([...this.tasks.values()], q);
  }

  async tenantRows(): Promise<TenantRows> {
    return { envelopes: [...this.tasks.values()].filter(isEnvelope), rates: [...this.rates.values()] };
  }

  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    for (let i = q.afterSeq; i < this.events.length && out.length < q.limit; i++) {
      const e = this.events[i]!;
      if ((q.tenant === undefined || e.tenant === q.tenant) && (q.taskId === undefined || e.taskId === q.taskId)) {
        out.push(e);
      }
    }
    return out;
  }

  async readRuns(q: RunQuery): Promise<RunRecord[]> {
    return this.runs
      .filter((r) => (q.tenant === undefined || r.tenant === q.tenant) && (q.label === undefined || r.label === q.label))
      .slice(-q.limit);
  }

  async expiredReservations(nowMs: number, limit: number): Promise<string[]> {
    const out: string[] = [];
    for (const r of this.reservations.values()) {
      if (r.status === 'pending' && r.expiresAtMs <= nowMs) out.push(r.id);
      if (out.length >= limit) break;
    }
    return out;
  }

  async idleTasks(cutoffMs: number, limit: number): Promise<string[]> {
    return filterTasks([...this.tasks.values()].filter((t) => isIdle(t, cutoffMs)), { limit, offset: 0 }).map((t) => t.id);
  }

  async pruneReservations(beforeMs: number): Promise<number> {
    let n = 0;
    for (const [id, r] of this.reservations) {
      if (r.status !== 'pending' && r.createdAtMs < beforeMs) {
        this.reservations.delete(id);
        n++;
      }
    }
    return n;
  }

  async close(): Promise<void> {}
}
