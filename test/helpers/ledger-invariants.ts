// The ledger's invariants once no call is in flight, checked from the store itself: nothing held (no reserved amount,
// no call reserved, no pending reservation), no negative figure, and no hard or approval task past its total.
import assert from 'node:assert/strict';
import type { TaskRow } from '../../src/budget/types.js';
import type { Ledger } from '../../src/ledger/ledger.js';

export interface LedgerFigures {
  tasks: number;
  /** Sum of `used` over the hard and approval tasks, and the largest used ÷ total among them. */
  hardUsed: number;
  hardUtilisationMax: number;
}

/** Every task of the store, children included. */
export async function allTasks(ledger: Ledger): Promise<TaskRow[]> {
  return ledger.store.listTasks({ limit: 1_000_000, offset: 0 });
}

export async function assertLedgerInvariants(ledger: Ledger, why = ''): Promise<LedgerFigures> {
  const tasks = await allTasks(ledger);
  let hardUsed = 0;
  let hardUtilisationMax = 0;
  for (const t of tasks) {
    const where = `${why} task ${t.id}: ${JSON.stringify({ used: t.used, reserved: t.reserved, callsReserved: t.callsReserved, total: t.total, policy: t.policy })}`;
    assert.equal(t.reserved, 0, `nothing held once every call is over: ${where}`);
    assert.equal(t.callsReserved, 0, `no call reserved once every call is over: ${where}`);
    for (const k of ['used', 'tokensUsed', 'costMicros', 'calls', 'total'] as const) assert.ok(Number.isSafeInteger(t[k]) && t[k] >= 0, `${k} is a whole number ≥ 0: ${where}`);
    if (t.policy === 'hard' || t.policy === 'approval') {
      assert.ok(t.used <= t.total, `a ${t.policy} task never spends past its total: ${where}`);
      hardUsed += t.used;
      hardUtilisationMax = Math.max(hardUtilisationMax, t.used / t.total);
    }
  }
  // Every reservation is settled, released or expired: none is pending, whatever its expiry.
  assert.deepEqual(await ledger.store.expiredReservations(Number.MAX_SAFE_INTEGER, 10), [], `${why} no reservation left pending`);
  return { tasks: tasks.length, hardUsed, hardUtilisationMax };
}
