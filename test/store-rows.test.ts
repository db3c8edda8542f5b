// Rows as the rules copy them and as the stores encode and decode them (budget/states.ts copyTask, store/codec.ts,
// store/decoded-rows.ts): the shortcuts that keep a model call's ledger work small must give exactly what the plain
// spread, JSON.stringify and JSON.parse give, and a SQLite row another connection wrote must be read as it wrote it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { copyTask, touched } from '../src/budget/states.js';
import type { TaskRow } from '../src/budget/types.js';
import { Ledger } from '../src/ledger/ledger.js';
import { decodeTask, encodeTask } from '../src/store/codec.js';
import { DecodedRows } from '../src/store/decoded-rows.js';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDbPath } from './helpers/gateway.js';

const USAGE = { inputTokens: 1_200, outputTokens: 300, cacheWriteTokens: 0, cacheReadTokens: 0 };

/** A leaf with three conversations' baselines under a parent, as the ledger leaves them. */
async function taskWithConversations(label: string): Promise<TaskRow> {
  const ledger = new Ledger(new MemoryStore());
  await ledger.createTask({ id: 'parent', total: 1_000_000, policy: 'hard' });
  await ledger.createTask({ id: 'leaf', total: 500_000, policy: 'hard', parent: 'parent', label });
  for (const [i, conversation] of ['c-1', 'c-2', 'c-1', 'c-3'].entries()) {
    const g = await ledger.reserve({ taskId: 'leaf', model: null, bodyBytes: 4_000 + i, conversation, outputTokensMax: 1_000 });
    await ledger.settle(g.reservation.id, USAGE, `resp_${i}`);
  }
  return ledger.task('leaf');
}

const envelopeRow = (row: TaskRow): TaskRow => ({
  ...row,
  id: '~acme',
  tenant: 'acme',
  rate: { tpm: 1_000, rpm: null, window: [[7, 40, 2]], limitedAtMs: null },
  period: 'day',
  periodStartMs: 1_700_000_000_000,
  burn: { minute: [5, 40], hours: [[1, 40, 40]] },
});

describe('task rows copied, encoded and decoded', () => {
  it('copyTask copies every field, the optional ones only where the row has them', async () => {
    const row = await taskWithConversations('plain');
    assert.deepEqual(copyTask(row), row);
    assert.deepEqual(Object.keys(copyTask(row)), Object.keys(row));
    const envelope = envelopeRow(row);
    assert.deepEqual(copyTask(envelope), envelope);
    const next = touched(row, { reserved: 77, callsReserved: 1 }, 1_800_000_000_000);
    assert.deepEqual(next, { ...row, reserved: 77, callsReserved: 1, version: row.version + 1, updatedAtMs: 1_800_000_000_000 });
    assert.equal(row.reserved, 0, 'the row copied is left as it was');
  });

  it('encodeTask writes what JSON.stringify writes, a label naming the conversations key included', async () => {
    for (const label of ['plain', '"conversations":[]', 'ends with \\', '\\"conversations\\":[]']) {
      const row = await taskWithConversations(label);
      assert.equal(row.conversations.length, 3);
      assert.equal(encodeTask(row), JSON.stringify(row));
      // Again, from the baselines' texts encoded the first time; and with one baseline new, as a settlement leaves it.
      assert.equal(encodeTask(row), JSON.stringify(row));
      const settled = { ...row, conversations: [...row.conversations.slice(1), { ...row.conversations[0]!, outputTokens: 9 }] };
      assert.equal(encodeTask(settled), JSON.stringify(settled));
      assert.deepEqual(decodeTask(encodeTask(row)), row);
    }
    const bare = { ...(await taskWithConversations('bare')), conversations: [] };
    assert.equal(encodeTask(bare), JSON.stringify(bare));
    const envelope = envelopeRow(await taskWithConversations('envelope'));
    assert.deepEqual(decodeTask(encodeTask(envelope)), envelope);
  });

  it('DecodedRows decodes a text once, and any other text afresh', () => {
    let decoded = 0;
    const rows = new DecodedRows((text) => ({ decoded: ++decoded, text }), 2);
    const first = rows.row('a', '{"v":1}');
    assert.equal(rows.row('a', '{"v":1}'), first);
    assert.deepEqual(rows.row('a', '{"v":2}'), { decoded: 2, text: '{"v":2}' });
    const written = { decoded: 0, text: '{"v":3}' };
    rows.wrote('a', '{"v":3}', written);
    assert.equal(rows.row('a', '{"v":3}'), written);
    // A write that did not last (rolled back, or overwritten elsewhere) is read as the text that is there.
    assert.deepEqual(rows.row('a', '{"v":2}'), { decoded: 3, text: '{"v":2}' });
    // Bounded: the oldest key goes first.
    rows.row('b', 'b');
    rows.row('c', 'c');
    assert.equal(decoded, 5);
    rows.row('a', '{"v":2}');
    assert.equal(decoded, 6);
  });

  it('a SQLite row another connection changed is read as it is now', async () => {
    const path = tempDbPath();
    const here = new Ledger(new SqliteStore(path));
    const there = new Ledger(new SqliteStore(path));
    await here.createTask({ id: 'shared', total: 100_000, policy: 'hard', meter: 'billed' });
    const a = await here.reserve({ taskId: 'shared', model: null, inputTokens: 1_000, outputTokensMax: 1_000 });
    assert.equal(a.path[0]!.reserved, 2_000);
    const b = await there.reserve({ taskId: 'shared', model: null, inputTokens: 1_000, outputTokensMax: 2_000 });
    assert.equal(b.path[0]!.reserved, 5_000);
    await there.settle(a.reservation.id, USAGE);
    const c = await here.reserve({ taskId: 'shared', model: null, inputTokens: 500, outputTokensMax: 500 });
    assert.deepEqual([c.path[0]!.used, c.path[0]!.reserved, c.path[0]!.calls, c.path[0]!.callsReserved], [1_500, 4_000, 1, 2]);
    const settled = await here.settle(b.reservation.id, USAGE);
    assert.equal(settled.charged, true);
    assert.equal(settled.reservation.status, 'settled');
    assert.deepEqual([settled.path[0]!.used, settled.path[0]!.reserved], [3_000, 1_000]);
    assert.equal((await there.settle(b.reservation.id, USAGE)).charged, false, 'settled once, whichever connection asks');
    await here.shutdown();
    await there.shutdown();
  });
});
