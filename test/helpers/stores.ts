// Isolated stores on the local Redis and PostgreSQL for tests: a random key prefix or schema each, removed afterwards.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';

export const REDIS_URL = process.env.ENVELOPE_TEST_REDIS ?? 'redis://127.0.0.1:6379/0';
export const POSTGRES_URL = process.env.ENVELOPE_TEST_POSTGRES ?? 'postgres://root@127.0.0.1:5432/test';

const suffix = (): string => randomBytes(6).toString('hex');

/** Hands out store URLs and forgets everything they stored on `cleanup()`. */
export class TestStores {
  private readonly prefixes: string[] = [];
  private readonly schemas: string[] = [];

  redisUrl(): string {
    const prefix = `envtest-${suffix()}`;
    this.prefixes.push(prefix);
    return `${REDIS_URL}?prefix=${prefix}`;
  }

  postgresUrl(): string {
    const schema = `envtest_${suffix()}`;
    this.schemas.push(schema);
    return `${POSTGRES_URL}?schema=${schema}`;
  }

  async cleanup(): Promise<void> {
    if (this.prefixes.length) {
      const redis = new Redis(REDIS_URL);
      for (const prefix of this.prefixes.splice(0)) {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
          if (keys.length) await redis.unlink(...keys);
          cursor = next;
        } while (cursor !== '0');
      }
      await redis.quit();
    }
    if (this.schemas.length) {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      for (const schema of this.schemas.splice(0)) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  }
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
