// The contract every ledger store must pass. Each store's test file calls storeContract() with a factory.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ledger } from '../../src/ledger/ledger.js';
import type { LedgerStore } from '../../src/store/store.js';
import { EnvelopeError } from '../../src/budget/errors.js';
import { meterContract } from './meter-contract.js';
import { tenantContract } from './tenant-contract.js';

export interface ContractOptions {
  /** A fresh, empty store each call. */
  makeStore: () => Promise<LedgerStore>;
}

const usage = (input: number, output: number) => ({
  inputTokens: input,
  outputTokens: output,
  cacheWriteTokens: 0,
  cacheReadTokens: 0,
});

export function storeContract(name: string, opts: ContractOptions): void {
  describe(`store contract: ${name}`, () => {
    let store: LedgerStore;
    let ledger: Ledger;
    before(async () => {
      store = await opts.makeStore();
      ledger = new Ledger(store);
    });
    after(async () => {
      await store.close();
    });

    it('reserves, settles, and counts usage on the task and its parent', async () => {
      await ledger.createTask({ id: 'c-parent', total: 100_000, policy: 'hard' });
      await ledger.createTask({ id: 'c-child', total: 40_000, policy: 'hard', parent: 'c-parent' });
      const grant = await ledger.reserve({ taskId: 'c-child', model: null, inputTokens: 1_000, outputTokensMax: 4_000 });
      assert.equal(grant.outputTokens, 4_000);
      assert.deepEqual(grant.reservation.amounts, [5_000, 5_000]);
      const settled = await ledger.settle(grant.reservation.id, usage(900, 1_200));
      assert.equal(settled.charged, true);
      const again = await ledger.settle(grant.reservation.id, usage(900, 1_200));
      assert.equal(again.charged, false);
      const child = await ledger.task('c-child');
      const parent = await ledger.task('c-parent');
      assert.deepEqual([child.used, child.reserved, child.calls], [2_100, 0, 1]);
      assert.deepEqual([parent.used, parent.reserved, parent.calls], [2_100, 0, 1]);
    });

    it('never lets 64 concurrent callers overspend a hard child and its parent', async () => {
      await ledger.createTask({ id: 'h-parent', total: 30_000, policy: 'hard' });
      await ledger.createTask({ id: 'h-child', total: 25_000, policy: 'hard', parent: 'h-parent' });
      let settledTokens = 0;
      let refused = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          try {
            const g = await ledger.reserve({ taskId: 'h-child', model: null, inputTokens: 500, outputTokensMax: 1_500, outputTokensMin: 1_500 });
            await ledger.settle(g.reservation.id, usage(500, 1_500));
            settledTokens += 2_000;
          } catch (e) {
            assert.ok(e instanceof EnvelopeError && e.code === 'budget_exceeded', String(e));
            refused++;
          }
        }),
      );
      const child = await ledger.task('h-child');
      assert.equal(child.used, settledTokens);
      assert.equal(child.used, 24_000);
      assert.equal(refused, 52);
      assert.equal((await ledger.task('h-parent')).used, 24_000);
    });

    it('refuses bad input with a typed error and changes nothing', async () => {
      await ledger.createTask({ id: 'b-parent', total: 30_000, policy: 'hard' });
      await ledger.createTask({ id: 'b-existing', total: 25_000, label: 'docs' });
      const before = { tasks: (await ledger.listTasks({ limit: 10_000 })).length, events: (await ledger.events({})).length };
      const cases: Array<[unknown, string, RegExp]> = [
        [{ id: 'b-1', total: -1 }, 'invalid_request', /total/],
        [{ id: 'b-2', total: 20_000.5 }, 'invalid_request', /whole number/],
        [{ id: 'b-3', total: 20_000, unit: 'euros' }, 'invalid_request', /unit/],
        [{ id: 'b-4', total: 20_000, policy: 'strict' }, 'invalid_request', /policy/],
        [{ id: 'b-5', total: 19_999 }, 'invalid_request', /below the minimum of 20,000 tokens/],
        [{ id: 'b-6', total: 30_001, parent: 'b-parent' }, 'invalid_request', /parent b-parent has only 30,000 tokens remaining/],
        [{ id: 'b-7', total: 20_000, parent: 'nobody' }, 'not_found', /parent task nobody does not exist/],
        [{ id: 'b-existing', total: 25_000, label: 'tests' }, 'conflict', /already exists with different settings/],
        [{ id: '', total: 20_000 }, 'invalid_request', /id/],
        [{ id: 'b-8', total: 20_000, extra: true }, 'invalid_request', /extra|Unrecognized/i],
      ];
      for (const [input, code, message] of cases) {
        await assert.rejects(ledger.createTask(input), (e: unknown) => e instanceof EnvelopeError && e.code === code && message.test(e.message), JSON.stringify(input));
      }
      await assert.rejects(ledger.reserve({ taskId: 'b-parent', model: null, inputTokens: -1, outputTokensMax: 10 }), /inputTokens/);
      await assert.rejects(ledger.approve('b-parent', 0), /positive/);
      assert.deepEqual({ tasks: (await ledger.listTasks({ limit: 10_000 })).length, events: (await ledger.events({})).length }, before);
      const same = await ledger.createTask({ id: 'b-existing', total: 25_000, label: 'docs' });
      assert.equal(same.total, 25_000);
    });

    it('fails a reservation that does not fit an ancestor as a whole', async () => {
      await ledger.createTask({ id: 'w-root', total: 30_000, policy: 'hard' });
      await ledger.createTask({ id: 'w-a', total: 25_000, policy: 'advisory', parent: 'w-root' });
      await ledger.createTask({ id: 'w-b', total: 25_000, policy: 'advisory', parent: 'w-root' });
      const big = await ledger.reserve({ taskId: 'w-a', model: null, inputTokens: 20_000, outputTokensMax: 4_000 });
      await assert.rejects(
        ledger.reserve({ taskId: 'w-b', model: null, inputTokens: 5_000, outputTokensMax: 2_000 }),
        (e: unknown) => e instanceof EnvelopeError && e.code === 'budget_exceeded' && /task w-root has used 24,000 of 30,000 tokens/.test(e.message),
      );
      const [root, b] = [await ledger.task('w-root'), await ledger.task('w-b')];
      assert.deepEqual([root.reserved, b.reserved, b.callsReserved], [24_000, 0, 0]);
      // Degrade before refuse: max_tokens is lowered to what fits, down to the floor.
      const small = await ledger.reserve({ taskId: 'w-b', model: null, inputTokens: 4_000, outputTokensMax: 4_000 });
      assert.equal(small.outputTokens, 2_000);
      assert.deepEqual(small.reservation.amounts, [6_000, 6_000]);
      assert.equal(await ledger.release(small.reservation.id), true);
      assert.equal(await ledger.release(small.reservation.id), false);
      await ledger.settle(big.reservation.id, usage(19_000, 1_000));
      const after = await ledger.task('w-root');
      assert.deepEqual([after.used, after.reserved, after.calls, after.callsReserved], [20_000, 0, 1, 0]);
    });

    it('expires unsettled reservations with an event, and still charges a late settle', async () => {
      let now = 1_000_000;
      const timed = new Ledger(store, { clock: () => now });
      await timed.createTask({ id: 'x-task', total: 50_000, policy: 'hard' });
      const a = await timed.reserve({ taskId: 'x-task', model: null, inputTokens: 1_000, outputTokensMax: 2_000, ttlMs: 5_000 });
      const b = await timed.reserve({ taskId: 'x-task', model: null, inputTokens: 1_000, outputTokensMax: 2_000, ttlMs: 60_000 });
      now += 5_001;
      assert.equal(await timed.sweep(), 1);
      assert.equal(await timed.sweep(), 0);
      let row = await timed.task('x-task');
      assert.deepEqual([row.reserved, row.callsReserved], [3_000, 1]);
      const expired = (await timed.events({ taskId: 'x-task' })).filter((e) => e.type === 'reservation_expired');
      assert.deepEqual(expired.map((e) => e.data.reservation), [a.reservation.id]);
      await timed.settle(a.reservation.id, usage(800, 700));
      await timed.settle(b.reservation.id, usage(900, 100));
      row = await timed.task('x-task');
      assert.deepEqual([row.used, row.reserved, row.calls, row.callsReserved], [2_500, 0, 2, 0]);
    });

    it('keeps a hold alive while its holder extends it, and lets it expire once the holder stops', async () => {
      let now = 2_000_000;
      const timed = new Ledger(store, { clock: () => now, config: { reservationTtlMs: 10_000 } });
      await timed.createTask({ id: 'k-task', total: 50_000, policy: 'hard' });
      const g = await timed.reserve({ taskId: 'k-task', model: null, inputTokens: 1_000, outputTokensMax: 2_000 });
      now += 8_000;
      assert.equal(await timed.extend(g.reservation.id), true); // now due at 2,018,000
      assert.equal(await timed.extend(g.reservation.id, 1_000), true, 'still pending, and not shortened (see the sweeps below)');
      now += 9_000;
      assert.equal(await timed.sweep(), 0, 'past its first expiry, but extended');
      now += 1_001;
      assert.equal(await timed.sweep(), 1);
      assert.equal(await timed.extend(g.reservation.id), false, 'an expired hold is not revived');
      const row = await timed.task('k-task');
      assert.deepEqual([row.reserved, row.callsReserved], [0, 0]);
      await assert.rejects(timed.extend('no-such-reservation'), (e: unknown) => e instanceof EnvelopeError && e.code === 'not_found');
    });

    it('prunes finished reservations a day old, never a pending one', async () => {
      let now = 5_000_000_000;
      const timed = new Ledger(store, { clock: () => now, config: { reservationTtlMs: 10 * 86_400_000 } });
      await timed.createTask({ id: 'p-task', total: 50_000, policy: 'hard' });
      const hold = () => timed.reserve({ taskId: 'p-task', model: null, inputTokens: 100, outputTokensMax: 100 });
      const old = await hold();
      await timed.settle(old.reservation.id, usage(10, 10));
      const pending = await hold();
      now += 86_400_000 + 1;
      const fresh = await hold();
      await timed.settle(fresh.reservation.id, usage(10, 10));
      await timed.sweep();
      await assert.rejects(timed.settle(old.reservation.id, usage(10, 10)), (e: unknown) => e instanceof EnvelopeError && e.code === 'not_found');
      assert.equal((await timed.settle(fresh.reservation.id, usage(10, 10))).charged, false, 'kept: a repeated settle still charges nothing');
      assert.equal((await timed.settle(pending.reservation.id, usage(10, 10))).charged, true, 'a pending hold is never pruned');
      const row = await timed.task('p-task');
      assert.deepEqual([row.used, row.reserved, row.calls], [60, 0, 3]);
    });

    it('lets an advisory task run over by at most its overrun fraction', async () => {
      await ledger.createTask({ id: 'adv', total: 20_000, policy: 'advisory', overrun: 0.1 });
      let calls = 0;
      for (;;) {
        try {
          const g = await ledger.reserve({ taskId: 'adv', model: null, inputTokens: 500, outputTokensMax: 1_500, outputTokensMin: 1_500 });
          await ledger.settle(g.reservation.id, usage(500, 1_500));
          calls++;
        } catch (e) {
          assert.ok(e instanceof EnvelopeError && e.code === 'budget_exceeded');
          break;
        }
      }
      const row = await ledger.task('adv');
      assert.deepEqual([calls, row.used, row.state], [11, 22_000, 'exhausted']);
      const types = (await ledger.events({ taskId: 'adv' })).map((e) => e.type);
      assert.deepEqual(types, ['threshold_crossed', 'threshold_crossed', 'exhausted', 'overrun']);
      assert.equal(row.used - row.total, 2_000);
    });

    it('pauses an approval task and resumes it after approve', async () => {
      await ledger.createTask({ id: 'appr', total: 20_000, policy: 'approval' });
      const g = await ledger.reserve({ taskId: 'appr', model: null, inputTokens: 10_000, outputTokensMax: 8_000 });
      await ledger.settle(g.reservation.id, usage(10_000, 8_000));
      await assert.rejects(
        ledger.reserve({ taskId: 'appr', model: null, inputTokens: 2_000, outputTokensMax: 2_000 }),
        (e: unknown) => e instanceof EnvelopeError && e.code === 'budget_paused' && /appr is paused for approval/.test(e.message),
      );
      assert.equal((await ledger.task('appr')).state, 'paused');
      await assert.rejects(ledger.reserve({ taskId: 'appr', model: null, inputTokens: 10, outputTokensMax: 10 }), (e: unknown) => e instanceof EnvelopeError && e.code === 'budget_paused');
      const approved = await ledger.approve('appr', 10_000);
      assert.deepEqual([approved.total, approved.state], [30_000, 'active']);
      const again = await ledger.reserve({ taskId: 'appr', model: null, inputTokens: 2_000, outputTokensMax: 2_000 });
      assert.equal(again.outputTokens, 2_000);
      const types = (await ledger.events({ taskId: 'appr' })).map((e) => e.type);
      assert.deepEqual(types, ['threshold_crossed', 'threshold_crossed', 'paused', 'approved']);
    });

    it('enforces call and wall-clock limits', async () => {
      let now = 5_000_000;
      const timed = new Ledger(store, { clock: () => now });
      await timed.createTask({ id: 'lim-calls', total: 100_000, policy: 'hard', limits: { calls: 2 } });
      for (let i = 0; i < 2; i++) {
        const g = await timed.reserve({ taskId: 'lim-calls', model: null, inputTokens: 10, outputTokensMax: 10 });
        await timed.settle(g.reservation.id, usage(10, 10));
      }
      await assert.rejects(timed.reserve({ taskId: 'lim-calls', model: null, inputTokens: 10, outputTokensMax: 10 }), /used 2 of 2 calls/);
      assert.equal((await timed.task('lim-calls')).state, 'exhausted');
      await timed.createTask({ id: 'lim-secs', total: 100_000, policy: 'hard', limits: { seconds: 60 } });
      now += 61_000;
      await assert.rejects(timed.reserve({ taskId: 'lim-secs', model: null, inputTokens: 10, outputTokensMax: 10 }), /used 61 of 60 seconds/);
      assert.equal((await timed.task('lim-secs')).state, 'exhausted');
    });

    it('counts USD budgets exactly in micro-dollars and fails closed on unpriced models', async () => {
      await ledger.createTask({ id: 'usd', total: 1, unit: 'usd', policy: 'hard' });
      // claude-sonnet-4-6: $3 in, $15 out, $3.75 cache write, $0.30 cache read per Mtok. The worst input is a cache write.
      const g = await ledger.reserve({ taskId: 'usd', model: 'claude-sonnet-4-6', inputTokens: 1_000, outputTokensMax: 1_000 });
      assert.deepEqual(g.reservation.amounts, [3_750 + 15_000]);
      await ledger.settle(g.reservation.id, { inputTokens: 1_000, outputTokens: 500, cacheWriteTokens: 0, cacheReadTokens: 10_000 });
      const row = await ledger.task('usd');
      assert.deepEqual([row.used, row.reserved, row.costMicros, row.tokensUsed], [3_000 + 7_500 + 3_000, 0, 13_500, 11_500]);
      assert.equal(ledger.view(row).used, 0.0135);
      await assert.rejects(
        ledger.reserve({ taskId: 'usd', model: 'mystery-model-9', inputTokens: 10, outputTokensMax: 10 }),
        (e: unknown) => e instanceof EnvelopeError && e.code === 'price_unknown' && /no known price/.test(e.message),
      );
      assert.equal((await ledger.task('usd')).reserved, 0);
    });

    it('keeps events in order and writes a run record on close', async () => {
      await ledger.createTask({ id: 'ev', total: 20_000, policy: 'hard', label: 'bug-fix' });
      const g = await ledger.reserve({ taskId: 'ev', model: 'claude-sonnet-4-6', inputTokens: 15_000, outputTokensMax: 5_000 });
      await ledger.settle(g.reservation.id, usage(15_000, 5_000));
      const closed = await ledger.close('ev');
      assert.equal(closed.outcome, 'exhausted');
      assert.equal((await ledger.close('ev')).closedAtMs, closed.closedAtMs);
      await assert.rejects(ledger.reserve({ taskId: 'ev', model: null, inputTokens: 1, outputTokensMax: 1 }), (e: unknown) => e instanceof EnvelopeError && e.code === 'task_closed');
      const events = await ledger.events({ taskId: 'ev' });
      assert.deepEqual(events.map((e) => e.type), ['threshold_crossed', 'threshold_crossed', 'exhausted', 'closed']);
      for (let i = 1; i < events.length; i++) assert.ok(events[i]!.seq > events[i - 1]!.seq);
      const later = await ledger.events({ afterSeq: events[1]!.seq, taskId: 'ev' });
      assert.deepEqual(later.map((e) => e.type), ['exhausted', 'closed']);
      const runs = (await ledger.runs({ label: 'bug-fix' })).filter((r) => r.task === 'ev');
      assert.equal(runs.length, 1);
      assert.deepEqual(
        [runs[0]!.used, runs[0]!.total, runs[0]!.calls, runs[0]!.outcome, runs[0]!.model, runs[0]!.costUsd, runs[0]!.budgeted],
        [20_000, 20_000, 1, 'exhausted', 'claude-sonnet-4-6', 0.12, true],
      );
    });

    it('measures a task without a budget: never lowered, refused or restated, and its run record is unbudgeted', async () => {
      await ledger.createTask({ id: 'meas', total: 20_000, policy: 'measure', label: 'measured', limits: { calls: 1 } });
      const big = await ledger.reserve({ taskId: 'meas', model: 'claude-sonnet-4-6', inputTokens: 5_000, outputTokensMax: 30_000 });
      assert.equal(big.outputTokens, 30_000); // more than the total: not lowered
      await ledger.settle(big.reservation.id, usage(5_000, 25_000));
      // Past its total and its call limit, a second call still goes through.
      const again = await ledger.reserve({ taskId: 'meas', model: 'claude-sonnet-4-6', inputTokens: 1_000, outputTokensMax: 2_000 });
      assert.equal(again.outputTokens, 2_000);
      await ledger.settle(again.reservation.id, usage(1_000, 2_000));
      const row = await ledger.task('meas');
      assert.deepEqual([row.used, row.calls, row.state, row.policy], [33_000, 2, 'active', 'measure']);
      // A measured child is still held by a hard parent: the parent decides.
      await ledger.createTask({ id: 'meas-parent', total: 20_000, policy: 'hard' });
      await ledger.createTask({ id: 'meas-child', total: 20_000, policy: 'measure', parent: 'meas-parent' });
      const held = await ledger.reserve({ taskId: 'meas-child', model: null, inputTokens: 4_000, outputTokensMax: 30_000 });
      assert.equal(held.outputTokens, 16_000);
      await ledger.release(held.reservation.id);
      const closed = await ledger.close('meas');
      assert.equal(closed.outcome, 'completed');
      assert.deepEqual((await ledger.events({ taskId: 'meas' })).map((e) => e.type), ['closed']);
      const runs = (await ledger.runs({ label: 'measured' })).filter((r) => r.task === 'meas');
      assert.deepEqual(
        runs.map((r) => [r.used, r.total, r.calls, r.outcome, r.budgeted]),
        [[33_000, 20_000, 2, 'completed', false]],
      );
    });

    it('lowers remaining from a carry, never raises it', async () => {
      await ledger.createTask({ id: 'carry', total: 50_000 });
      assert.equal(await ledger.lowerRemaining('carry', 45_000), 5_000);
      assert.equal(await ledger.lowerRemaining('carry', 49_000), 0);
      const row = await ledger.task('carry');
      assert.deepEqual([row.used, row.total], [5_000, 50_000]);
    });

    it('bounds every total at 10^12 tokens or 10^6 USD: approvals cannot overflow it', async () => {
      const refused = (message: RegExp) => (e: unknown) => e instanceof EnvelopeError && e.code === 'invalid_request' && message.test(e.message);
      await assert.rejects(ledger.createTask({ id: 'max-0', total: 1e12 + 1 }), refused(/at most 1,000,000,000,000 tokens/));
      await assert.rejects(ledger.createTask({ id: 'max-0', total: 1.7e308 }), refused(/at most/));
      await assert.rejects(ledger.createTask({ id: 'max-0', total: 1e6 + 0.01, unit: 'usd' }), refused(/at most 1,000,000 USD/));
      await assert.rejects(ledger.createTask({ id: 'max-0', total: 20_000, limits: { calls: 1e13 } }), refused(/calls/));
      await ledger.createTask({ id: 'max-t', total: 50_000, policy: 'hard' });
      for (let i = 0; i < 2; i++) {
        await assert.rejects(ledger.approve('max-t', 1.7e308), refused(/past the maximum of 1,000,000,000,000 tokens/));
      }
      assert.equal((await ledger.approve('max-t', 1e12 - 50_000)).total, 1e12);
      await assert.rejects(ledger.approve('max-t', 1), refused(/past the maximum/));
      await ledger.createTask({ id: 'max-usd', total: 5, unit: 'usd', policy: 'hard' });
      // A child that takes its parent's unit is bounded in that unit.
      await assert.rejects(ledger.createTask({ id: 'max-usd/child', total: 2e6, parent: 'max-usd' }), refused(/at most \$1000000/));
      await assert.rejects(ledger.approve('max-usd', 1.7e308), refused(/past the maximum/));
      assert.equal((await ledger.approve('max-usd', 999_995)).total, 1e12); // micro-USD
      const rows = await Promise.all(['max-t', 'max-usd'].map((id) => ledger.task(id)));
      assert.deepEqual(rows.map((r) => [r.total, r.totalApproved, r.state]), [[1e12, 1e12 - 50_000, 'active'], [1e12, 1e12 - 5e6, 'active']]);
      assert.deepEqual(rows.map((r) => ledger.view(r).remaining), [1e12, 1e6]);
    });

    it('scopes every operation to the caller’s tenant', async () => {
      await ledger.createTask({ id: 'ten-a', total: 20_000, tenant: 'a' });
      await assert.rejects(ledger.task('ten-a', { tenant: 'b' }), (e: unknown) => e instanceof EnvelopeError && e.code === 'not_found');
      await assert.rejects(ledger.reserve({ taskId: 'ten-a', model: null, inputTokens: 1, outputTokensMax: 1 }, { tenant: 'b' }), (e: unknown) => e instanceof EnvelopeError && e.code === 'not_found');
      await assert.rejects(ledger.approve('ten-a', 1_000, { tenant: 'b' }), (e: unknown) => e instanceof EnvelopeError && e.code === 'not_found');
      // Each tenant's ids are its own: b creates a task of the same id, as if a's did not exist, and each sees its own.
      const b = await ledger.createTask({ id: 'ten-a', total: 30_000, policy: 'hard' }, { tenant: 'b' });
      assert.deepEqual([b.id, b.tenant, b.total], ['ten-a', 'b', 30_000]);
      const g = await ledger.reserve({ taskId: 'ten-a', model: null, inputTokens: 100, outputTokensMax: 1_000 }, { tenant: 'b' });
      await ledger.settle(g.reservation.id, { inputTokens: 100, outputTokens: 400, cacheWriteTokens: 0, cacheReadTokens: 0 });
      const child = await ledger.createTask({ id: 'ten-c', total: 20_000, parent: 'ten-a' }, { tenant: 'b' });
      assert.equal(child.parentId, 'ten-a');
      assert.deepEqual((await ledger.listTasks({}, { tenant: 'a' })).map((t) => [t.id, t.used]), [['ten-a', 0]]);
      assert.deepEqual((await ledger.listTasks({ parentId: null }, { tenant: 'b' })).map((t) => [t.id, t.used]), [['ten-a', 500]]);
      assert.deepEqual((await ledger.listTasks({ parentId: 'ten-a' }, { tenant: 'b' })).map((t) => t.id), ['ten-c']);
      assert.deepEqual([(await ledger.task('ten-a', { tenant: 'a' })).total, (await ledger.task('ten-a', { tenant: 'b' })).total], [20_000, 30_000]);
      assert.ok((await ledger.events({ taskId: 'ten-a' }, { tenant: 'b' })).every((e) => e.taskId === 'ten-a' && e.tenant === 'b'));
      // The admin names them by their store ids; a tenant naming a store id reaches nothing.
      assert.deepEqual([(await ledger.task('a~ten-a')).used, (await ledger.task('b~ten-a')).used], [0, 500]);
      assert.equal(await ledger.findTask('a~ten-a', { tenant: 'b' }), undefined);
      await assert.rejects(ledger.approve('a~ten-a', 1_000, { tenant: 'b' }), (e: unknown) => e instanceof EnvelopeError && e.code === 'not_found');
      // A refusal names the tenant's task by the tenant's id.
      await assert.rejects(ledger.reserve({ taskId: 'ten-a', model: null, inputTokens: 100, outputTokensMax: 40_000, outputTokensMin: 40_000 }, { tenant: 'b' }), (e: unknown) => e instanceof EnvelopeError && e.code === 'budget_exceeded' && /task ten-a /.test(e.message) && !/b~/.test(e.message));
    });

    meterContract(() => ledger);
    tenantContract(() => store);

    // Last: its clock runs a year ahead, so the tasks the tests above left open have gone quiet too.
    it('closes tasks gone quiet with a closed event and a run record, never one with a call in flight, paused or unused', async () => {
      let now = Date.now() + 365 * 86_400_000;
      const quietMs = 60 * 60_000;
      const later = new Ledger(store, { clock: () => now });
      const call = async (id: string, output: number) => {
        const g = await later.reserve({ taskId: id, model: null, inputTokens: 1_000, outputTokensMax: output });
        await later.settle(g.reservation.id, usage(1_000, output));
      };
      const created = now;
      await later.createTask({ id: 'idle-done', total: 50_000, label: 'idle-job' });
      await later.createTask({ id: 'idle-child', total: 20_000, parent: 'idle-done' });
      await later.createTask({ id: 'idle-busy', total: 50_000 });
      await later.createTask({ id: 'idle-fresh', total: 50_000 });
      await later.createTask({ id: 'idle-paused', total: 20_000, policy: 'approval' });
      await later.createTask({ id: 'idle-unused', total: 50_000 });
      now += 1_000;
      await call('idle-child', 2_000);
      now += 1_000;
      await call('idle-done', 500);
      await call('idle-busy', 500);
      await later.reserve({ taskId: 'idle-busy', model: null, inputTokens: 1_000, outputTokensMax: 1_000 });
      await assert.rejects(later.reserve({ taskId: 'idle-paused', model: null, inputTokens: 19_000, outputTokensMax: 2_000, outputTokensMin: 2_000 }));
      const lastActivity = now;
      now += quietMs - 1;
      await call('idle-fresh', 500);
      now += 1;
      const states = async () => Object.fromEntries(await Promise.all(['idle-done', 'idle-child', 'idle-busy', 'idle-fresh', 'idle-paused', 'idle-unused'].map(async (id) => [id, (await later.task(id)).state])));
      await later.closeIdle(quietMs);
      assert.deepEqual(await states(), { 'idle-done': 'closed', 'idle-child': 'closed', 'idle-busy': 'active', 'idle-fresh': 'active', 'idle-paused': 'paused', 'idle-unused': 'active' });
      const closed = (await later.events({ taskId: 'idle-done' })).filter((e) => e.type === 'closed');
      assert.deepEqual(closed.map((e) => e.data), [{ outcome: 'completed', used: 4_500, total: 50_000, reason: 'idle', quietMs }]);
      const run = (await later.runs({ label: 'idle-job' })).find((r) => r.task === 'idle-done')!;
      assert.deepEqual([run.used, run.calls, run.outcome, run.durationMs, run.closedAtMs], [4_500, 2, 'completed', lastActivity - created, now]);
      assert.equal(await later.closeIdle(quietMs), 0);
      // A quiet period later, the fresh one closes too.
      now += quietMs;
      assert.equal(await later.closeIdle(quietMs), 1);
      assert.equal((await later.task('idle-fresh')).state, 'closed');
    });
  });
}
