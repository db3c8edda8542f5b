// The Redis store's outboxes: events, run records and new tasks that a commit left in its tree's outbox stream,
// published to the shared `{~}` slot exactly once and in order — by the writer, or, if it died, by any replica's
// recovery pass (see redis-keys.ts and PUBLISH_LUA).
import type { RedisClient } from './redis-scripts.js';
import { isEnvelopeId } from '../budget/tenants.js';
import type { EventDraft, RunRecord } from '../budget/types.js';
import type { RedisKeys } from './redis-keys.js';
import type { OutboxEntry } from './redis-plan.js';

const PUBLISH_ENTRIES_MAX = 256;

export class RedisOutbox {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  /** Publishes a tree's outbox to the shared keys and deletes what was published. */
  async publish(root: string, registeredAt?: number): Promise<void> {
    for (;;) {
      const entries = await this.redis.xrange(this.keys.outbox(root), '-', '+', 'COUNT', PUBLISH_ENTRIES_MAX);
      const last = entries.length < PUBLISH_ENTRIES_MAX;
      const keys = [this.keys.outboxCursor(), this.keys.eventSeq(), this.keys.outboxes()];
      const index = new Map<string, number>();
      const at = (key: string): number => {
        let i = index.get(key);
        if (i === undefined) (i = keys.push(key)), index.set(key, i);
        return i;
      };
      const args: (string | number)[] = [root, last && registeredAt !== undefined ? registeredAt : '', entries.length];
      const lookups: Array<[string, string]> = [];
      for (const [id, fields] of entries) {
        const entry = JSON.parse(fields[1]!) as OutboxEntry;
        const ops = this.publishOps(entry, at);
        args.push(id, ops.length, ...ops.flat());
        for (const t of entry.created) lookups.push([this.keys.taskPath(t.id), JSON.stringify(t.pathIds)]);
      }
      // Published first, then deleted: the shared keys, the lookups and the outbox are on different slots (a
      // cluster's different nodes), and a writer that dies in between leaves entries the cursor skips next time.
      await this.redis.envelopePublish(keys.length, ...keys, ...args);
      await Promise.all([
        // The claim becomes the task's permanent lookup.
        ...lookups.map(([key, value]) => this.redis.set(key, value)),
        entries.length ? this.redis.xdel(this.keys.outbox(root), ...entries.map(([id]) => id)) : undefined,
      ]);
      if (last) return;
    }
  }

  private publishOps(entry: OutboxEntry, at: (key: string) => number): (string | number)[][] {
    const k = this.keys;
    const ops: (string | number)[][] = entry.events.map((e: EventDraft) => [
      'E',
      at(k.events()),
      at(k.taskEvents(e.taskId)),
      at(k.tenantEvents(e.tenant)),
      JSON.stringify(e),
    ]);
    const run: RunRecord | undefined = entry.run;
    if (run) {
      ops.push(['H', at(k.runRecords()), run.task, JSON.stringify(run)]);
      for (const key of [k.runs(), k.runsByLabel(run.label), k.runsByTenant(run.tenant)]) {
        ops.push(['Z', at(key), run.closedAtMs, run.task]);
      }
      // A run record is written when its task closes.
      ops.push(['R', at(k.openTasks()), 0, run.task]);
    }
    for (const tenant of entry.tenants ?? []) ops.push(['Z', at(k.tenants()), 0, tenant]);
    for (const t of entry.created) {
      // A tenant envelope is the operator's: listed with the tenants, never among the tasks.
      if (isEnvelopeId(t.id)) {
        ops.push(['Z', at(k.tenants()), 0, t.tenant]);
        continue;
      }
      ops.push(['Z', at(k.tasks()), t.createdAtMs, t.id], ['Z', at(k.tasksByTenant(t.tenant)), t.createdAtMs, t.id]);
      if (t.parentId === null) ops.push(['Z', at(k.roots()), t.createdAtMs, t.id]);
      ops.push(['Z', at(k.openTasks()), t.createdAtMs, t.id]);
    }
    return ops;
  }

  /** Publishes the outboxes registered before `beforeMs` (their writers died before publishing). */
  async recover(beforeMs: number): Promise<void> {
    const found = await this.redis.zrangebyscore(this.keys.outboxes(), '-inf', beforeMs === Infinity ? '+inf' : beforeMs, 'WITHSCORES', 'LIMIT', 0, 100);
    for (let i = 0; i < found.length; i += 2) await this.publish(found[i]!, Number(found[i + 1]));
  }
}
