// Isolated stores on the local Redis and PostgreSQL for tests: a random key prefix or schema each, removed afterwards.
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import pg from 'pg';
import { redisClusterNodes } from './redis-cluster.js';

export const REDIS_URL = process.env.ENVELOPE_TEST_REDIS ?? 'redis://127.0.0.1:6379/0';
export const POSTGRES_URL = process.env.ENVELOPE_TEST_POSTGRES ?? 'postgres://root@127.0.0.1:5432/test';

const suffix = (): string => randomBytes(6).toString('hex');

/** Hands out store URLs and forgets everything they stored on `cleanup()`. */
export class TestStores {
  private readonly prefixes: string[] = [];
  private readonly clusterPrefixes: string[] = [];
  private readonly schemas: string[] = [];
  private clusterNodes = '';

  redisUrl(): string {
    const prefix = `envtest-${suffix()}`;
    this.prefixes.push(prefix);
    return `${REDIS_URL}?prefix=${prefix}`;
  }

  /** A store URL on the test Redis Cluster (three local masters, started if need be: redis-cluster.ts). */
  async redisClusterUrl(): Promise<string> {
    this.clusterNodes ||= await redisClusterNodes();
    const prefix = `envtest-${suffix()}`;
    this.clusterPrefixes.push(prefix);
    return `redis+cluster://${this.clusterNodes}?prefix=${prefix}`;
  }

  postgresUrl(): string {
    const schema = `envtest_${suffix()}`;
    this.schemas.push(schema);
    return `${POSTGRES_URL}?schema=${schema}`;
  }

  async cleanup(): Promise<void> {
    if (this.prefixes.length) {
      const redis = new Redis(REDIS_URL);
      for (const prefix of this.prefixes.splice(0)) await unlinkAll(redis, prefix);
      await redis.quit();
    }
    if (this.clusterPrefixes.length) {
      const cluster = new Cluster(this.clusterNodes.split(',').map((node) => ({ host: node.split(':')[0], port: Number(node.split(':')[1]) })));
      await new Promise((resolve) => cluster.once('ready', resolve));
      // Each master holds its own slots' keys; a key at a time, since one UNLINK takes keys of one slot only.
      for (const prefix of this.clusterPrefixes.splice(0)) for (const node of cluster.nodes('master')) await unlinkAll(node, prefix, true);
      await cluster.quit();
    }
    if (this.schemas.length) {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      for (const schema of this.schemas.splice(0)) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  }
}

async function unlinkAll(redis: Redis, prefix: string, oneByOne = false): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
    if (keys.length) await (oneByOne ? Promise.all(keys.map((key) => redis.unlink(key))) : redis.unlink(...keys));
    cursor = next;
  } while (cursor !== '0');
}

/** How many keys a prefix holds (to check that cleanup leaves nothing). */
export async function redisKeyCount(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL);
  let count = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
    count += keys.length;
    cursor = next;
  } while (cursor !== '0');
  await redis.quit();
  return count;
}
