// Every reservation row of one task tree, read straight from a store (the admin API does not list reservations):
// the ledger's own record of what was held and settled, as a second view beside the task rows.
import { Redis } from 'ioredis';
import pg from 'pg';
import type { ReservationRow } from '../../src/budget/types.js';
import { RedisKeys } from '../../src/store/redis-keys.js';
import { openSqlite } from '../../src/store/sqlite-driver.js';
import { rowFromHash } from '../../src/store/redis-rows.js';
import { POSTGRES_URL, REDIS_URL } from './stores.js';

export async function reservationRows(storeUrl: string, root: string): Promise<ReservationRow[]> {
  if (storeUrl.startsWith('sqlite:')) {
    const db = openSqlite(storeUrl.slice('sqlite:'.length));
    try {
      return db.prepare<{ data: string }>('SELECT data FROM reservations').all().map((r) => JSON.parse(r.data) as ReservationRow).filter((r) => r.pathIds[0] === root);
    } finally {
      db.close();
    }
  }
  if (storeUrl.startsWith('redis://')) {
    const keys = new RedisKeys(new URL(storeUrl).searchParams.get('prefix')!);
    const redis = new Redis(REDIS_URL);
    try {
      const rows: ReservationRow[] = [];
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', keys.row(root, 'r:*'), 'COUNT', 1_000);
        for (const key of found) rows.push(rowFromHash(await redis.hgetall(key), 'r:') as ReservationRow);
        cursor = next;
      } while (cursor !== '0');
      return rows;
    } finally {
      await redis.quit();
    }
  }
  const schema = new URL(storeUrl).searchParams.get('schema')!;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ data: ReservationRow }>(`SELECT data FROM ${pg.escapeIdentifier(schema)}.reservations`);
    return rows.map((r) => r.data).filter((r) => r.pathIds[0] === root);
  } finally {
    await client.end();
  }
}
