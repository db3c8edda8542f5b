// A process killed with SIGKILL mid-burst loses no settlement it made, and its open reservations are released
// after their time-to-live.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { Ledger } from '../src/ledger/ledger.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDbPath } from './helpers/gateway.js';
import { WORKER } from './helpers/worker.js';

describe('ledger durability (SQLite, SIGKILL)', () => {
  it('keeps every settled figure and releases open reservations after their TTL', async () => {
    const db = tempDbPath();
    const setup = new Ledger(new SqliteStore(db));
    await setup.createTask({ id: 'crash', total: 10_000_000, policy: 'hard' });
    await setup.shutdown();

    const child = spawn(process.execPath, [WORKER, `sqlite:${db}`, 'crash', '8', 'burst'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let reported = 0;
    let buffer = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        buffer += d.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        reported += lines.filter((l) => l === 'settled 1000').length * 1_000;
        if (reported >= 200_000 && child.exitCode === null) child.kill('SIGKILL');
      });
      child.on('exit', () => resolve());
    });
    assert.equal(child.signalCode, 'SIGKILL');

    let now = Date.now();
    const ledger = new Ledger(new SqliteStore(db), { clock: () => now });
    const atCrash = await ledger.task('crash');
    // Settlements committed after the last line the parent read may also be there (the pipe lags the kill).
    assert.ok(atCrash.used >= reported, `used ${atCrash.used} < reported ${reported}`);
    assert.equal(atCrash.used % 1_000, 0);
    assert.equal(atCrash.calls, atCrash.used / 1_000);
    assert.ok(atCrash.callsReserved > 0, 'the burst left reservations open');
    const open = atCrash.callsReserved;
    assert.equal(atCrash.reserved, open * 1_000);

    now += 2_001;
    assert.equal(await ledger.sweep(), open);
    const after = await ledger.task('crash');
    assert.deepEqual([after.used, after.reserved, after.callsReserved], [atCrash.used, 0, 0]);
    const expired = (await ledger.events({ taskId: 'crash', limit: 100_000 })).filter((e) => e.type === 'reservation_expired');
    assert.equal(expired.length, open);
    await ledger.shutdown();
  });
});
