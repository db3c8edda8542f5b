// `redis://HOST:PORT/DB?prefix=NAME` — several gateway replicas share budgets through one Redis;
// `redis+cluster://HOST:PORT[,HOST:PORT…]?prefix=NAME` through a Redis Cluster (ioredis's cluster client).
//
// A task tree's rows live in one hash slot (Cluster-safe): the rules decide in TypeScript and one Lua script per batch
// checks the rows read and writes the decided change (redis-writer.ts). Events, run records and the shared indexes
// go to the tree's outbox stream inside the same script and are then published to the shared `{~}` slot
// (redis-outbox.ts); listings read those indexes (redis-reads.ts). Key names are in redis-keys.ts.
import { Cluster, Redis, type ClusterOptions } from 'ioredis';
import { EnvelopeError } from '../budget/errors.js';
import type { Decision, Snapshot } from '../budget/rules.js';
import type { RunRecord, StoredEvent, TaskRow } from '../budget/types.js';
import { StoreClock } from './clock.js';
import { redactUrl } from './open.js';
import { RedisKeys } from './redis-keys.js';
import { RedisLookups } from './redis-lookups.js';
import { RedisOutbox } from './redis-outbox.js';
import { RedisReads } from './redis-reads.js';
import { defineScripts, SCRIPT_COMMANDS, type RedisClient } from './redis-scripts.js';
import { RedisWriter } from './redis-writer.js';
import type { EventQuery, LedgerStore, Need, RunQuery, TaskQuery, TenantRows } from './store.js';

const DEFAULT_PREFIX = 'envelope';
/** An outbox registered this long ago without being emptied belongs to a writer that died. */
const OUTBOX_STALE_MS = 5_000;
const RECOVERY_INTERVAL_MS = 5_000;

export class RedisStore implements LedgerStore {
  readonly kind = 'redis' as const;
  readonly keys: RedisKeys;
  private readonly redis: RedisClient;
  private readonly lookups: RedisLookups;
  private readonly outbox: RedisOutbox;
  private readonly writer: RedisWriter;
  private readonly reads: RedisReads;
  private readonly recovery: NodeJS.Timeout;
  private readonly clock: StoreClock;
  private closed = false;

  /** Connects, and publishes whatever a writer that died left in an outbox. */
  static async connect(url: string): Promise<RedisStore> {
    const target = parseRedisUrl(url);
    const keys = new RedisKeys(target.prefix);
    const redis = target.cluster
      ? new Cluster(target.cluster.nodes, {
          ...target.cluster.options,
          lazyConnect: true,
          enableAutoPipelining: true,
          // ioredis groups a cluster's auto-pipelines by a command's first key, which it cannot find in a script's
          // arguments (the first is the number of keys): scripts go alone, to their keys' master.
          autoPipeliningIgnoredCommands: [...SCRIPT_COMMANDS],
        })
      : new Redis(target.clientUrl, { lazyConnect: true, enableAutoPipelining: true, maxRetriesPerRequest: 2 });
    try {
      // Without a listener ioredis prints connection errors; callers get them as store_unavailable instead.
      redis.on('error', () => undefined);
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

  private constructor(redis: RedisClient, keys: RedisKeys) {
    this.redis = redis;
    this.keys = keys;
    defineScripts(redis);
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

export interface RedisTarget {
  prefix: string;
  /** A single Redis: the URL ioredis reads (without the store's own parameters). */
  clientUrl: string;
  /** A Redis Cluster: its seed nodes and the options every node connection takes. */
  cluster?: { nodes: Array<{ host: string; port: number }>; options: ClusterOptions };
}

const CLUSTER_SCHEMES = /^(rediss?)\+cluster:\/\//;

/** Splits the store's own `prefix` parameter from what ioredis reads in the URL; a `+cluster` URL lists seed nodes. */
export function parseRedisUrl(url: string): RedisTarget {
  const scheme = CLUSTER_SCHEMES.exec(url);
  if (scheme) return parseClusterUrl(url, scheme[1]!);
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

/**
 * `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…][?prefix=NAME]` (`rediss+cluster` for TLS): the other masters
 * are found from any seed. A cluster has one database, so no /DB.
 */
function parseClusterUrl(url: string, base: string): RedisTarget {
  const bad = (why: string) =>
    new EnvelopeError('invalid_request', `bad Redis Cluster URL ${redactUrl(url)}: ${why}; use redis+cluster://HOST:PORT,HOST:PORT?prefix=NAME`);
  const rest = url.slice(`${base}+cluster://`.length);
  const [authority = '', query = ''] = rest.split('?', 2);
  const at = authority.lastIndexOf('@');
  const hostList = authority.slice(at + 1).replace(/\/$/, '');
  if (hostList.includes('/')) throw bad('a cluster has no database number');
  // Each seed parsed as a URL of its own, so credentials, IPv6 brackets and ports read as they do in redis://.
  const auth = at >= 0 ? `${authority.slice(0, at)}@` : '';
  const seeds = hostList.split(',').map((host) => {
    let seed: URL;
    try {
      seed = new URL(`${base}://${auth}${host}`);
    } catch {
      throw bad(`cannot read the node "${host}"`);
    }
    if (!seed.hostname) throw bad('a node has no host');
    return seed;
  });
  const first = seeds[0]!;
  const prefix = new URLSearchParams(query).get('prefix') ?? DEFAULT_PREFIX;
  const redisOptions: ClusterOptions['redisOptions'] = { maxRetriesPerRequest: 2 };
  if (first.username) redisOptions.username = decodeURIComponent(first.username);
  if (first.password) redisOptions.password = decodeURIComponent(first.password);
  if (base === 'rediss') redisOptions.tls = {};
  const nodes = seeds.map((seed) => ({ host: seed.hostname.replace(/^\[|\]$/g, ''), port: Number(seed.port || 6379) }));
  return { prefix, clientUrl: '', cluster: { nodes, options: { redisOptions } } };
}
