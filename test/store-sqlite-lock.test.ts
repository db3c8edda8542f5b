// SQLite shared by several processes: while another connection holds the write lock, operations wait on a timer
// (this process keeps serving), run once the lock goes, and fail with store_unavailable (nothing written) after
// the configured wait. The other connection here is a plain one (the same binding) holding BEGIN IMMEDIATE.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EnvelopeError } from '../src/budget/errors.js';
import { Ledger } from '../src/ledger/ledger.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { openSqlite } from '../src/store/sqlite-driver.js';
import { tempDbPath } from './helpers/gateway.js';

const usage = { inputTokens: 100, outputTokens: 50, cacheWriteTokens: 0, cacheReadTokens: 0 };

/** Settles to 'pending' if `p` has not settled yet. */
const state = (p: Promise<unknown>): Promise<string> => Promise.race([p.then(() => 'resolved', () => 'rejected'), sleep(0).then(() => 'pending')]);

describe('sqlite: another process holding the write lock', () => {
  it('waits without blocking this process, then runs the operations once the lock goes', async () => {
    const path = tempDbPath();
    const ledger = new Ledger(new SqliteStore(path));
    await ledger.createTask({ id: 'lk-1', total: 50_000, policy: 'hard' });
    const other = openSqlite(path);
    other.exec('BEGIN IMMEDIATE');
    const reserve = ledger.reserve({ taskId: 'lk-1', model: null, inputTokens: 1_000, outputTokensMax: 2_000 });
    const second = ledger.reserve({ taskId: 'lk-1', model: null, inputTokens: 1_000, outputTokensMax: 2_000 });
    // This process goes on: timers fire and reads answer (WAL readers never wait for a writer).
    let ticks = 0;
    for (let i = 0; i < 10; i++) {
      await sleep(5);
      ticks++;
    }
    assert.equal(ticks, 10);
    assert.deepEqual([await state(reserve), await state(second)], ['pending', 'pending']);
    assert.equal((await ledger.task('lk-1')).reserved, 0);
    other.exec('COMMIT');
    const [a, b] = await Promise.all([reserve, second]);
    await ledger.settle(a.reservation.id, usage);
    const row = await ledger.task('lk-1');
    assert.deepEqual([row.used, row.reserved, row.callsReserved], [150, 3_000, 1]);
    await ledger.settle(b.reservation.id, usage);
    other.close();
    await ledger.shutdown();
  });

  it('fails with store_unavailable after the configured wait, having written nothing', async () => {
    const path = tempDbPath();
    const ledger = new Ledger(new SqliteStore(path, { lockWaitMs: 100 }));
    await ledger.createTask({ id: 'lk-2', total: 50_000, policy: 'hard' });
    const other = openSqlite(path);
    other.exec('BEGIN IMMEDIATE');
    await assert.rejects(
      ledger.reserve({ taskId: 'lk-2', model: null, inputTokens: 1_000, outputTokensMax: 2_000 }),
      (e: unknown) => e instanceof EnvelopeError && e.code === 'store_unavailable' && /write lock/.test(e.message),
    );
    other.exec('COMMIT');
    other.close();
    assert.deepEqual([(await ledger.task('lk-2')).reserved, (await ledger.task('lk-2')).callsReserved], [0, 0]);
    const g = await ledger.reserve({ taskId: 'lk-2', model: null, inputTokens: 1_000, outputTokensMax: 2_000 });
    assert.equal((await ledger.task('lk-2')).reserved, g.reservation.amounts.at(-1));
    await ledger.shutdown();
  });
});
