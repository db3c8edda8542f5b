// What a store shared by several replicas must show: separate processes never overspend, concurrent sweepers release
// each expired reservation exactly once, and a replica killed mid-run loses nothing it committed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { Ledger } from '../../src/ledger/ledger.js';
import { openStore } from '../../src/store/open.js';
import { parseTenantSpec } from '../../src/budget/tenants.js';
import { runTenantWorker, runWorker, WORKER } from '../helpers/worker.js';

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

export interface ReplicaOptions {
  /** A URL of a fresh, empty store each call; the caller removes what it stored. */
  makeUrl: () => string | Promise<string>;
}

export function replicaContract(name: string, opts: ReplicaOptions): void {
  describe(`replicas: ${name}`, () => {
    it('3 processes × 16 callers never admit more than a tenant’s RPM, nor spend past its hard envelope', async () => {
      const url = await opts.makeUrl();
      const setup = new Ledger(await openStore(url));
      await setup.governance.set(parseTenantSpec('rep-rpm', { rpm: 100 }));
      await setup.governance.set(parseTenantSpec('rep-cap', { total: 60_000 }));
      // 3 × 16 × 8 = 384 attempts, all within a minute: exactly 100 admitted (the window never admits more).
      const limited = await Promise.all([0, 1, 2].map((p) => runTenantWorker([url, 'rep-rpm', `rpm-${p}a,rpm-${p}b`, '16', '8'])));
      assert.equal(sum(limited.map((r) => r.settled)), 100_000);
      assert.equal(sum(limited.map((r) => r.limited)), 384 - 100);
      const capped = await Promise.all([0, 1, 2].map((p) => runTenantWorker([url, 'rep-cap', `cap-${p}a,cap-${p}b`, '16', '0'])));
      const views = await setup.governance.list();
      const rpm = views.find((t) => t.tenant === 'rep-rpm')!;
      const cap = views.find((t) => t.tenant === 'rep-cap')!;
      assert.deepEqual(rpm.limits?.window.requests, 100);
      // Every call is exactly 1,000 tokens, so a hard envelope of 60,000 ends exactly full, and each task's share adds up.
      assert.deepEqual([cap.envelope?.used, cap.envelope?.reserved, cap.spend?.calls], [60_000, 0, 60]);
      assert.equal(sum(capped.map((r) => r.settled)), 60_000);
      const tasks = await setup.listTasks({ limit: 1_000 }, { tenant: 'rep-cap' });
      assert.equal(sum(tasks.map((t) => t.used)), 60_000);
      assert.ok(tasks.every((t) => t.pathIds[0] === '~rep-cap'));
      await setup.shutdown();
    });

    it('a period roll-over under load from 3 processes loses nothing: one period_reset, both periods add up', async () => {
      const url = await opts.makeUrl();
      const setup = new Ledger(await openStore(url), { clock: () => Date.UTC(2029, 11, 31, 23, 58) });
      await setup.governance.set(parseTenantSpec('rep-day', { total: 1e9, period: 'day' }));
      // Each process crosses midnight after its 40th call, while the others may still be before it.
      const seen = await Promise.all([0, 1, 2].map((p) => runTenantWorker([url, 'rep-day', `day-${p}`, '8', '10', '40'])));
      assert.equal(sum(seen.map((r) => r.settled)), 240_000);
      const after = new Ledger(await openStore(url), { clock: () => Date.UTC(2030, 0, 1, 0, 30) });
      const resets = (await after.events({ taskId: '~rep-day', limit: 100 })).filter((e) => e.type === 'period_reset');
      assert.equal(resets.length, 1);
      const previous = resets[0]!.data.previous as { used: number; calls: number };
      const [day] = (await after.governance.list()).filter((t) => t.tenant === 'rep-day');
      assert.equal(previous.used + day!.envelope!.used, 240_000);
      assert.equal(previous.calls + day!.spend!.calls, 240);
      assert.deepEqual([day!.envelope!.reserved, day!.spend!.startMs], [0, Date.UTC(2030, 0, 1)]);
      assert.ok(previous.used > 0 && day!.envelope!.used > 0, `${previous.used} settled before midnight, ${day!.envelope!.used} after`);
      await after.shutdown();
      await setup.shutdown();
    });

    it('64 callers from 4 processes never overspend a hard child and its parent', async () => {
      const url = await opts.makeUrl();
      const ledger = new Ledger(await openStore(url));
      await ledger.createTask({ id: 'mp-parent', total: 60_000, policy: 'hard' });
      await ledger.createTask({ id: 'mp-child', total: 50_000, policy: 'hard', parent: 'mp-parent' });
      await ledger.createTask({ id: 'mp-sibling', total: 40_000, policy: 'hard', parent: 'mp-parent' });
      const sums = await Promise.all([
        runWorker([url, 'mp-child', '16']),
        runWorker([url, 'mp-child', '16']),
        runWorker([url, 'mp-sibling', '16']),
        runWorker([url, 'mp-sibling', '16']),
      ]);
      const [child, sibling, parent] = [await ledger.task('mp-child'), await ledger.task('mp-sibling'), await ledger.task('mp-parent')];
      assert.equal(child.used, sums[0]! + sums[1]!);
      assert.equal(sibling.used, sums[2]! + sums[3]!);
      assert.equal(parent.used, child.used + sibling.used);
      // Every call is exactly 1,000 tokens, so a hard parent of 60,000 ends exactly full.
      assert.equal(parent.used, 60_000);
      assert.ok(child.used <= 50_000 && sibling.used <= 40_000);
      assert.deepEqual([parent.reserved, child.reserved, sibling.reserved], [0, 0, 0]);
      assert.deepEqual([parent.calls, child.calls + sibling.calls], [60, 60]);
      await ledger.shutdown();
    });

    it('releases each expired reservation exactly once when 4 replicas sweep at the same time', async () => {
      const url = await opts.makeUrl();
      const setup = new Ledger(await openStore(url));
      await setup.createTask({ id: 'sw-parent', total: 1_000_000, policy: 'hard' });
      await setup.createTask({ id: 'sw-a', total: 200_000, policy: 'hard', parent: 'sw-parent' });
      await setup.createTask({ id: 'sw-b', total: 200_000, policy: 'hard', parent: 'sw-parent' });
      await setup.createTask({ id: 'sw-other', total: 200_000, policy: 'hard' });
      for (let i = 0; i < 60; i++) {
        const taskId = ['sw-a', 'sw-b', 'sw-other'][i % 3]!;
        await setup.reserve({ taskId, model: null, inputTokens: 100, outputTokensMax: 900, ttlMs: 1_000 });
      }
      const later = Date.now() + 60_000;
      const sweepers = await Promise.all(Array.from({ length: 4 }, async () => new Ledger(await openStore(url), { clock: () => later })));
      const released = await Promise.all(sweepers.map((s) => s.sweep(7)));
      // Sweep again until nothing is left: the limit of 7 per call makes the replicas race over several rounds.
      for (let round = 0; round < 20; round++) {
        const more = await Promise.all(sweepers.map((s) => s.sweep(7)));
        released.push(...more);
        if (more.every((n) => n === 0)) break;
      }
      assert.equal(released.reduce((a, b) => a + b, 0), 60);
      const expired = (await setup.events({ limit: 10_000 })).filter((e) => e.type === 'reservation_expired');
      assert.equal(expired.length, 60);
      assert.equal(new Set(expired.map((e) => e.data.reservation)).size, 60);
      for (const id of ['sw-parent', 'sw-a', 'sw-b', 'sw-other']) {
        const t = await setup.task(id);
        assert.deepEqual([t.reserved, t.callsReserved, t.used], [0, 0, 0], id);
      }
      for (const s of sweepers) await s.shutdown();
      await setup.shutdown();
    });

    it('keeps every settlement of a replica killed mid-run, and releases its open reservations after their TTL', async () => {
      const url = await opts.makeUrl();
      const setup = new Ledger(await openStore(url));
      await setup.createTask({ id: 'crash', total: 10_000_000, policy: 'hard' });
      const child = spawn(process.execPath, [WORKER, url, 'crash', '8', 'burst'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let reported = 0;
      let buffer = '';
      await new Promise<void>((resolve) => {
        child.stdout.on('data', (d: Buffer) => {
          buffer += d.toString();
          const lines = buffer.split('\n');
          buffer = lines.pop()!;
          reported += lines.filter((l) => l === 'settled 1000').length * 1_000;
          if (reported >= 100_000 && child.exitCode === null) child.kill('SIGKILL');
        });
        child.on('exit', () => resolve());
      });
      assert.equal(child.signalCode, 'SIGKILL');
      const atCrash = await setup.task('crash');
      assert.ok(atCrash.used >= reported, `used ${atCrash.used} < reported ${reported}`);
      assert.equal(atCrash.used % 1_000, 0);
      assert.equal(atCrash.calls, atCrash.used / 1_000);
      assert.ok(atCrash.callsReserved > 0, 'the burst left reservations open');
      const open = atCrash.callsReserved;
      assert.equal(atCrash.reserved, open * 1_000);
      const later = Date.now() + 2_001;
      const sweeper = new Ledger(await openStore(url), { clock: () => later });
      let released = 0;
      for (let n = await sweeper.sweep(); n > 0; n = await sweeper.sweep()) released += n;
      assert.equal(released, open);
      const after = await setup.task('crash');
      assert.deepEqual([after.used, after.reserved, after.callsReserved], [atCrash.used, 0, 0]);
      const expired = (await setup.events({ taskId: 'crash', limit: 100_000 })).filter((e) => e.type === 'reservation_expired');
      assert.equal(expired.length, open);
      await sweeper.shutdown();
      await setup.shutdown();
    });
  });
}
