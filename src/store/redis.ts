// `redis://HOST:PORT/DB?prefix=NAME` — several gateway replicas share budgets through one Redis (or Redis Cluster).
//
// A task tree's rows live in one hash slot (Cluster-safe): the rules decide in TypeScript and one Lua script per batch
// checks the rows read and writes the decided change (redis-writer.ts). Events, run records and the shared indexes
// go to the tree's outbox stream inside the same script and are then published to the shared `{~}` slot
// (redis-outbox.ts); listings read those indexes (redis-reads.ts). Key names are in redis-keys.ts.
import { Redis } from 'ioredis';
import { EnvelopeError } from '../budget/errors.js';
import type { Decision, Snapshot } from '../budget/rules.js';
import type { RunRecord, StoredEvent, TaskRow } from '../budget/types.js';
import { StoreClock } from './clock.js';
import { redactUrl } from './open.js';
import { RedisKeys } from './redis-keys.js';
import { RedisLookups } from './redis-lookups.js';
import { RedisOutbox } from './redis-outbox.js';
import { RedisReads } from './redis-reads.js';
import { defineScripts } from './redis-scripts.js';
import { RedisWriter } from './redis-writer.js';
import type { EventQuery, LedgerStore, Need, RunQuery, TaskQuery, TenantRows } from './store.js';

const DEFAULT_PREFIX = 'envelope';
/** An outbox registered this long ago without being emptied belongs to a writer that died. */
const OUTBOX_STALE_MS = 5_000;
const RECOVERY_INTERVAL_MS = 5_000;

export class RedisStore implements LedgerStore {
  readonly kind = 'redis' as const;
  readonly keys: RedisKeys;
  private readonly redis: Redis;
  private readonly lookups: RedisLookups;
  private readonly outbox: RedisOutbox;
  private readonly writer: RedisWriter;
  private readonly reads: RedisReads;
  private readonly recovery: NodeJS.Timeout;
  private readonly clock: StoreClock;
  private closed = false;

  /** Connects, and publishes whatever a writer that died left in an outbox. */
  static async connect(url: string): Promise<RedisStore> {
    const { clientUrl, prefix } = parseRedisUrl(url);
    const keys = new RedisKeys(prefix);
    const redis = new Redis(clientUrl, { lazyConnect: true, enableAutoPipelining: true, maxRetriesPerRequest: 2 });
    try {
      await redis.connect();
    } catch (e) {
      redis.disconnect();
      throw new EnvelopeError('store_unavailable', `cannot reach Redis at ${redactUrl(url)}: ${(e as Error).message}`);
    }
    const store = new RedisStore(redis, keys);
    await store.clock.start();
    await store.outbox.recover(Number.POSITIVE_INFINITY);
    return store;
  }

  private constructor(redis: Redis, keys: RedisKeys) {
    this.redis = redis;
    this.keys = keys;
    defineScripts(redis);
    // Without a listener ioredis prints connection errors; callers get them as store_unavailable instead.
    redis.on('error', () => undefined);
    this.lookups = new RedisLookups(redis, keys);
    this.outbox = new RedisOutbox(redis, keys);
    this.writer = new RedisWriter(redis, keys, this.lookups, this.outbox);
    this.reads = new RedisReads(redis, keys, this.lookups);
    this.clock = new StoreClock(async () => {
      const [seconds, micros] = await redis.time();
      return Number(seconds) * 1000 + Number(micros) / 1000;
    });
    this.recovery = setInterval(() => {
      this.outbox.recover(Date.now() - OUTBOX_STALE_MS).catch(() => undefined);
    }, RECOVERY_INTERVAL_MS);
    this.recovery.unref();
  }

  /** Commit script calls, those that lost a race or found another writer's turn, and the ops they carried. */
  get stats(): RedisWriter['stats'] {
    return this.writer.stats;
  }

  now(): number {
    return this.clock.now();
  }

  atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T> {
    return this.writer.atomically(need, decide);
  }

  getTask(id: string): Promise<TaskRow | undefined> {
    return this.lookups.getTask(id);
  }

  listTasks(q: TaskQuery): Promise<TaskRow[]> {
    return this.reads.listTasks(q);
  }

  readEvents(q: EventQuery): Promise<StoredEvent[]> {
    return this.reads.readEvents(q);
  }

  readRuns(q: RunQuery): Promise<RunRecord[]> {
    return this.reads.readRuns(q);
  }

  idleTasks(cutoffMs: number, limit: number): Promise<string[]> {
    return this.reads.idleTasks(cutoffMs, limit);
  }

  tenantRows(): Promise<TenantRows> {
    return this.reads.tenantRows();
  }

  expiredReservations(nowMs: number, limit: number): Promise<string[]> {
    return this.reads.expiredReservations(nowMs, limit);
  }

  pruneReservations(beforeMs: number): Promise<number> {
    return this.reads.pruneReservations(beforeMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.recovery);
    this.clock.stop();
    await this.writer.drain();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** Splits the store's own `prefix` parameter from what ioredis reads in the URL. */
export function parseRedisUrl(url: string): { clientUrl: string; prefix: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new EnvelopeError('invalid_request', `bad Redis URL ${redactUrl(url)}; use redis://HOST:PORT/DB?prefix=NAME`);
  }
  const prefix = parsed.searchParams.get('prefix') ?? DEFAULT_PREFIX;
  parsed.searchParams.delete('prefix');
  return { clientUrl: parsed.toString(), prefix };
}
