// 64 callers in 4 processes on one SQLite file, on a hard child and its hard parent: no overspend, and
// the ledger's `used` equals exactly the settlements the workers saw succeed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ledger } from '../src/ledger/ledger.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDbPath } from './helpers/gateway.js';
import { runWorker } from './helpers/worker.js';

describe('ledger across processes (SQLite)', () => {
  it('64 callers from 4 processes never overspend a hard child and its parent', async () => {
    const db = tempDbPath();
    const ledger = new Ledger(new SqliteStore(db));
    await ledger.createTask({ id: 'mp-parent', total: 60_000, policy: 'hard' });
    await ledger.createTask({ id: 'mp-child', total: 50_000, policy: 'hard', parent: 'mp-parent' });
    await ledger.createTask({ id: 'mp-sibling', total: 40_000, policy: 'hard', parent: 'mp-parent' });
    const sums = await Promise.all([
      runWorker([`sqlite:${db}`, 'mp-child', '16']),
      runWorker([`sqlite:${db}`, 'mp-child', '16']),
      runWorker([`sqlite:${db}`, 'mp-sibling', '16']),
      runWorker([`sqlite:${db}`, 'mp-sibling', '16']),
    ]);
    const [child, sibling, parent] = [await ledger.task('mp-child'), await ledger.task('mp-sibling'), await ledger.task('mp-parent')];
    assert.equal(child.used, sums[0]! + sums[1]!);
    assert.equal(sibling.used, sums[2]! + sums[3]!);
    assert.equal(parent.used, child.used + sibling.used);
    // Every call is exactly 1,000 tokens, so a hard parent of 60,000 ends exactly full.
    assert.equal(parent.used, 60_000);
    assert.ok(child.used <= 50_000 && sibling.used <= 40_000);
    assert.deepEqual([parent.reserved, child.reserved, sibling.reserved], [0, 0, 0]);
    assert.equal(parent.calls, 60);
    await ledger.shutdown();
  });
});
