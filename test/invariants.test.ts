// The ledger's invariants asserted in the code (budget/invariants.ts, TigerBeetle style): the rules check what they
// decide, and every store checks each row before it writes it. A ledger that lost a write (a reservation pending on
// a task whose hold is gone) refuses to settle it instead of writing a negative hold, and nothing is written.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { checkGrant, checkRelease, checkTask, InvariantViolation } from '../src/budget/invariants.js';
import type { TaskRow } from '../src/budget/types.js';
import { Ledger } from '../src/ledger/ledger.js';
import { MemoryStore } from '../src/store/memory.js';
import { assertionsOn, decided } from '../src/store/snapshot.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDbPath } from './helpers/gateway.js';

const USAGE = { inputTokens: 100, outputTokens: 50, cacheReadTokens: 0, cacheWriteTokens: 0 };
const violation = (pattern: RegExp) => (e: unknown) => e instanceof InvariantViolation && pattern.test(e.message);

async function heldTask(ledger: Ledger): Promise<{ row: TaskRow; reservationId: string }> {
  await ledger.createTask({ id: 'inv', total: 20_000, policy: 'hard', meter: 'billed' });
  const g = await ledger.reserve({ taskId: 'inv', model: null, inputTokens: 1_000, outputTokensMax: 1_000 });
  return { row: await ledger.task('inv'), reservationId: g.reservation.id };
}

describe('invariants asserted in the rules and where stores write', () => {
  it('are on unless ENVELOPE_ASSERTIONS=off', () => {
    const before = process.env.ENVELOPE_ASSERTIONS;
    try {
      delete process.env.ENVELOPE_ASSERTIONS;
      assert.equal(assertionsOn(), true);
      process.env.ENVELOPE_ASSERTIONS = 'off';
      assert.equal(assertionsOn(), false);
    } finally {
      if (before === undefined) delete process.env.ENVELOPE_ASSERTIONS;
      else process.env.ENVELOPE_ASSERTIONS = before;
    }
    assert.equal(new Ledger(new MemoryStore()).config.assertions, true);
  });

  it('refuse rows no rule may write: a negative or fractional figure, a total past the maximum, a path not ending at its task', async () => {
    const ledger = new Ledger(new MemoryStore());
    const { row } = await heldTask(ledger);
    assert.throws(() => checkTask({ ...row, reserved: -1 }), violation(/task inv: reserved is -1/));
    assert.throws(() => checkTask({ ...row, used: 0.5 }), violation(/used is 0.5/));
    assert.throws(() => checkTask({ ...row, callsReserved: -1 }), violation(/callsReserved is -1/));
    assert.throws(() => checkTask({ ...row, total: 2e12 }), violation(/total is 2000000000000/));
    assert.throws(() => checkTask({ ...row, pathIds: ['other'] }), violation(/does not end at it/));
    // What a store is handed to write is checked before it writes it.
    assert.throws(() => decided(() => ({ result: true, mutation: { tasks: [{ ...row, reserved: -5 }], events: [] } }), { path: [row] }), violation(/reserved is -5/));
  });

  it('check every grant against the total and every settle against what was held', async () => {
    const ledger = new Ledger(new MemoryStore());
    const { row } = await heldTask(ledger);
    const r = (await ledger.reserve({ taskId: 'inv', model: null, inputTokens: 10, outputTokensMax: 10 })).reservation;
    // A hard task holding past its total after a grant, or a settle that gives back other than what was held.
    assert.throws(() => checkGrant([{ ...row, used: 19_000, reserved: 2_000 }], r), violation(/would have used 19000 and hold 2000 of 20000/));
    assert.throws(() => checkRelease([row], [{ ...row, reserved: row.reserved - 1, callsReserved: row.callsReserved - 1 }], r, [0]), violation(/reservation .* held 20/));
    assert.throws(() => checkRelease([row], [{ ...row, reserved: row.reserved - 20, callsReserved: row.callsReserved - 1, used: row.used + 7 }], r, [5]), violation(/used 0 → 7, charged 5/));
  });

  it('memory: a reservation pending on a task that lost its hold is not settled into a negative hold; nothing is written', async () => {
    const store = new MemoryStore();
    const ledger = new Ledger(store);
    const { reservationId } = await heldTask(ledger);
    (store as unknown as { tasks: Map<string, TaskRow> }).tasks.get('inv')!.reserved = 0;
    await assert.rejects(ledger.settle(reservationId, USAGE), violation(/task inv: reserved is -2000/));
    const row = await ledger.task('inv');
    assert.deepEqual([row.used, row.reserved, row.calls], [0, 0, 0]);
  });

  it('sqlite: the same, on a file a write went missing from; the sweep still releases every other expired hold', async () => {
    const path = tempDbPath();
    let nowMs = Date.now();
    const ledger = new Ledger(new SqliteStore(path), { clock: () => nowMs });
    const { reservationId } = await heldTask(ledger);
    await ledger.createTask({ id: 'inv-other', total: 20_000, policy: 'hard' });
    await ledger.reserve({ taskId: 'inv-other', model: null, inputTokens: 500, outputTokensMax: 500 });
    const raw = new Database(path);
    raw.prepare(`UPDATE tasks SET data = json_set(data, '$.reserved', 0) WHERE id = 'inv'`).run();
    raw.close();
    await assert.rejects(ledger.settle(reservationId, USAGE), violation(/task inv: reserved is -2000/));
    const row = await ledger.task('inv');
    assert.deepEqual([row.used, row.reserved, row.calls], [0, 0, 0]);
    // The reservation stays pending (its release would be refused alike); the sweep still gives back every other
    // expired hold, and then says what it could not.
    nowMs += ledger.config.reservationTtlMs + 1;
    await assert.rejects(ledger.sweep(), violation(/task inv: reserved is -2000/));
    assert.deepEqual([(await ledger.task('inv-other')).reserved, (await ledger.task('inv-other')).callsReserved], [0, 0]);
    assert.deepEqual(await ledger.store.expiredReservations(Number.MAX_SAFE_INTEGER, 10), [reservationId]);
    await ledger.shutdown();
  });
});
