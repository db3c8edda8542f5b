// The Redis store's reads: listings from the shared indexes (in the order every store lists in), event streams,
// run records, and the sweeper's scans of pending and finished reservations (repairing the indexes as it goes).
import type { RedisClient } from './redis-scripts.js';
import { isIdle } from '../budget/idle.js';
import { envelopeIdOf } from '../budget/tenants.js';
import type { EventDraft, RateRow, RunRecord, StoredEvent, TaskRow } from '../budget/types.js';
import { decodeRun } from './codec.js';
import type { RedisKeys } from './redis-keys.js';
import type { RedisLookups } from './redis-lookups.js';
import { rowFromHash } from './redis-rows.js';
import type { EventQuery, RunQuery, TaskQuery, TenantRows } from './store.js';

const SCAN_CHUNK = 256;
/** A pending-index entry whose reservation never appeared (its reserve was refused on retry) is dropped after this. */
const PENDING_ORPHAN_MS = 60_000;

export class RedisReads {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly lookups: RedisLookups,
  ) {}

  async listTasks(q: TaskQuery): Promise<TaskRow[]> {
    let key: string;
    if (typeof q.parentId === 'string') {
      const path = await this.lookups.taskPath(q.parentId);
      if (!path) return [];
      key = this.keys.children(path[0]!, q.parentId);
    } else if (q.parentId === null) key = this.keys.roots();
    else if (q.tenant !== undefined) key = this.keys.tasksByTenant(q.tenant);
    else key = this.keys.tasks();
    const matches = (t: TaskRow): boolean =>
      (q.tenant === undefined || t.tenant === q.tenant) &&
      (q.parentId === undefined || t.parentId === q.parentId) &&
      (q.state === undefined || t.state === q.state) &&
      (q.label === undefined || t.label === q.label);
    // Index order is (created, id), the order every store lists in.
    const out: TaskRow[] = [];
    let skip = q.offset;
    for (let start = 0; out.length < q.limit; start += SCAN_CHUNK) {
      const ids = await this.redis.zrange(key, start, start + SCAN_CHUNK - 1);
      for (const t of await this.lookups.getTasks(ids)) {
        if (!matches(t)) continue;
        if (skip > 0) skip--;
        else if (out.length < q.limit) out.push(t);
      }
      if (ids.length < SCAN_CHUNK) break;
    }
    return out;
  }

  async tenantRows(): Promise<TenantRows> {
    const tenants = await this.redis.zrange(this.keys.tenants(), 0, -1);
    const [envelopes, rates] = await Promise.all([
      Promise.all(tenants.map((t) => this.lookups.readTask(envelopeIdOf(t), envelopeIdOf(t)))),
      Promise.all(tenants.map(async (t) => rowFromHash(await this.redis.hgetall(this.keys.row(this.keys.rateTree(t), `q:${t}`)), `q:${t}`) as RateRow | null)),
    ]);
    return { envelopes: envelopes.filter((e): e is TaskRow => e !== undefined), rates: rates.filter((r): r is RateRow => r !== null) };
  }

  async readEvents(q: EventQuery): Promise<StoredEvent[]> {
    const key =
      q.taskId !== undefined ? this.keys.taskEvents(q.taskId) : q.tenant !== undefined ? this.keys.tenantEvents(q.tenant) : this.keys.events();
    const out: StoredEvent[] = [];
    let after = Math.max(0, Math.floor(q.afterSeq));
    while (out.length < q.limit) {
      const count = Math.max(q.limit - out.length, SCAN_CHUNK);
      const page = await this.redis.xrange(key, `(0-${after}`, '+', 'COUNT', count);
      for (const [id, fields] of page) {
        after = Number(id.slice(2));
        const e = JSON.parse(fields[1]!) as EventDraft;
        if (q.tenant !== undefined && e.tenant !== q.tenant) continue;
        if (out.length < q.limit) out.push({ seq: after, ...e });
      }
      if (page.length < count) break;
    }
    return out;
  }

  async readRuns(q: RunQuery): Promise<RunRecord[]> {
    const key =
      q.label !== undefined ? this.keys.runsByLabel(q.label) : q.tenant !== undefined ? this.keys.runsByTenant(q.tenant) : this.keys.runs();
    const out: RunRecord[] = [];
    for (let start = 0; out.length < q.limit; start += SCAN_CHUNK) {
      const ids = await this.redis.zrevrange(key, start, start + SCAN_CHUNK - 1);
      if (!ids.length) break;
      const texts = await this.redis.hmget(this.keys.runRecords(), ...ids);
      for (const text of texts) {
        if (!text) continue;
        const run = decodeRun(text);
        if ((q.tenant === undefined || run.tenant === q.tenant) && out.length < q.limit) out.push(run);
      }
      if (ids.length < SCAN_CHUNK) break;
    }
    return out.reverse();
  }

  async idleTasks(cutoffMs: number, limit: number): Promise<string[]> {
    const out: string[] = [];
    for (let start = 0; out.length < limit; start += SCAN_CHUNK) {
      const ids = await this.redis.zrange(this.keys.openTasks(), start, start + SCAN_CHUNK - 1);
      for (const t of await this.lookups.getTasks(ids)) if (isIdle(t, cutoffMs) && out.length < limit) out.push(t.id);
      if (ids.length < SCAN_CHUNK) break;
    }
    return out;
  }

  async expiredReservations(nowMs: number, limit: number): Promise<string[]> {
    const found = await this.redis.zrangebyscore(this.keys.pending(), '-inf', nowMs, 'WITHSCORES', 'LIMIT', 0, limit);
    const out: string[] = [];
    for (let i = 0; i < found.length; i += 2) {
      const id = found[i]!;
      const path = await this.lookups.reservationPath(id);
      const stored = path ? await this.redis.hget(this.keys.row(path[0]!, `r:${id}`), 'status') : null;
      const status = stored === null ? null : (JSON.parse(stored) as string);
      if (status === 'pending') out.push(id);
      // The index is repaired here: an entry left by a writer that died after finishing the reservation, or whose
      // reservation was never written (its reserve was refused on retry).
      else if (status !== null || Number(found[i + 1]) < nowMs - PENDING_ORPHAN_MS) await this.redis.zrem(this.keys.pending(), id);
    }
    return out;
  }

  async pruneReservations(beforeMs: number): Promise<number> {
    let pruned = 0;
    for (;;) {
      const ids = await this.redis.zrangebyscore(this.keys.finished(), '-inf', `(${beforeMs}`, 'LIMIT', 0, SCAN_CHUNK);
      if (!ids.length) return pruned;
      const paths = await Promise.all(ids.map((id) => this.lookups.reservationPath(id)));
      // One command each (auto-pipelined): a row and the shared indexes are on different slots.
      await Promise.all([
        ...ids.flatMap((id, i) => (paths[i] ? [this.redis.del(this.keys.row(paths[i]![0]!, `r:${id}`))] : [])),
        this.redis.hdel(this.keys.reservationPaths(), ...ids),
        this.redis.zrem(this.keys.finished(), ...ids),
      ]);
      for (const id of ids) this.lookups.reservationPaths.delete(id);
      pruned += ids.length;
    }
  }
}
