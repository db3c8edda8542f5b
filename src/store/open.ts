// A store from its URL: memory:, sqlite:PATH (or a bare path), redis://…, postgres://…
import { EnvelopeError } from '../budget/errors.js';
import { MemoryStore } from './memory.js';
import { SqliteStore } from './sqlite.js';
import type { LedgerStore } from './store.js';

export const DEFAULT_STORE_URL = 'sqlite:./envelope.db';

export async function openStore(url: string = DEFAULT_STORE_URL): Promise<LedgerStore> {
  if (url === 'memory:' || url === 'memory') return new MemoryStore();
  if (url.startsWith('sqlite:')) return new SqliteStore(url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '') || './envelope.db');
  if (/^rediss?(\+cluster)?:\/\//.test(url)) {
    const { RedisStore } = await import('./redis.js');
    return RedisStore.connect(url);
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { PostgresStore } = await import('./postgres.js');
    return PostgresStore.connect(url);
  }
  if (url.endsWith('.db') || url.endsWith('.sqlite')) return new SqliteStore(url);
  throw new EnvelopeError(
    'invalid_request',
    `unknown store "${url}"; use memory:, sqlite:PATH, redis://HOST:PORT, redis+cluster://HOST:PORT,… or postgres://USER@HOST/DB`,
  );
}

/** Hides credentials in a store URL before it is printed. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_m, auth: string) => (auth.includes(':') ? '//***:***@' : `//${auth}@`));
}
