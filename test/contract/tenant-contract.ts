// The operator's governance on every store (SPEC §4a): tenant envelopes as the implicit root of a tenant's trees,
// their periods, and rate limits per tenant and per task. Called by storeContract() with its store.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { EnvelopeError } from '../../src/budget/errors.js';
import { parseTenantSpec } from '../../src/budget/tenants.js';
import { Ledger } from '../../src/ledger/ledger.js';
import type { LedgerStore } from '../../src/store/store.js';

const usage = (input: number, output: number) => ({ inputTokens: input, outputTokens: output, cacheWriteTokens: 0, cacheReadTokens: 0 });
const code = (c: string, message?: RegExp) => (e: unknown) => e instanceof EnvelopeError && e.code === c && (!message || message.test(e.message));

/** A ledger on `store` whose clock the test moves. */
function timed(store: LedgerStore, startMs: number): { ledger: Ledger; at: (ms: number) => void; now: () => number } {
  let now = startMs;
  return { ledger: new Ledger(store, { clock: () => now }), at: (ms) => void (now = ms), now: () => now };
}

export function tenantContract(getStore: () => LedgerStore): void {
  it('caps a tenant: its tasks hang under its envelope, every call counts against it, degrading before refusing', async () => {
    const { ledger } = timed(getStore(), Date.UTC(2026, 2, 10, 12));
    const view = await ledger.governance.set(parseTenantSpec('cap-a', { total: 50_000, period: 'day' }));
    assert.deepEqual([view.envelope?.total, view.envelope?.policy, view.envelope?.meter, view.spend?.resetsAtMs], [50_000, 'hard', 'billed', Date.UTC(2026, 2, 11)]);
    const scope = { tenant: 'cap-a' };
    const one = await ledger.createTask({ id: 'cap-1', total: 40_000, meter: 'billed' }, scope);
    await ledger.createTask({ id: 'cap-2', total: 40_000, meter: 'billed' }, scope);
    await ledger.createTask({ id: 'cap-2/sub', total: 20_000, parent: 'cap-2' }, scope);
    assert.deepEqual([one.pathIds, one.parentId, (await ledger.task('cap-2/sub', scope)).pathIds], [['~cap-a', 'cap-1'], null, ['~cap-a', 'cap-2', 'cap-2/sub']]);
    // The envelope is the operator's: never listed, read or changed as a task, least of all by its tenant.
    assert.deepEqual((await ledger.listTasks({ parentId: null }, scope)).map((t) => t.id), ['cap-1', 'cap-2']);
    assert.ok(!(await ledger.listTasks({ limit: 10_000 })).some((t) => t.id.startsWith('~')));
    await assert.rejects(ledger.approve('~cap-a', 1_000_000, scope), code('not_found'));
    await assert.rejects(ledger.close('~cap-a', undefined, scope), code('not_found'));
    await assert.rejects(ledger.task('~cap-a'), code('invalid_request'));

    const g = await ledger.reserve({ taskId: 'cap-1', model: null, inputTokens: 10_000, outputTokensMax: 20_000 }, scope);
    assert.deepEqual(g.reservation.amounts, [30_000, 30_000]);
    await ledger.settle(g.reservation.id, usage(14_000, 22_000));
    // 36,000 of 50,000: the sibling's model is told to scope down, though its own task has spent nothing.
    const lowered = await ledger.reserve({ taskId: 'cap-2/sub', model: null, inputTokens: 4_000, outputTokensMax: 19_000 }, scope);
    assert.deepEqual([lowered.outputTokens, lowered.countdown.level], [10_000, 'scope']);
    await ledger.release(lowered.reservation.id);
    await assert.rejects(
      ledger.reserve({ taskId: 'cap-2', model: null, inputTokens: 13_500, outputTokensMax: 4_000 }, scope),
      code('budget_exceeded', /^tenant cap-a's envelope has used 36,000 of 50,000 tokens and this call needs at least 14,524 tokens; the operator can raise it with: envelope tenants set cap-a --budget \d+; it starts over at 2026-03-11T00:00:00.000Z$/),
    );
    const [tenant] = (await ledger.governance.list()).filter((t) => t.tenant === 'cap-a');
    assert.deepEqual([tenant!.envelope?.used, tenant!.envelope?.reserved, tenant!.envelope?.state, tenant!.spend?.calls], [36_000, 0, 'scoping', 1]);
    assert.deepEqual([(await ledger.task('cap-2', scope)).used, (await ledger.task('cap-2', scope)).reserved], [0, 0]);
  });

  it('never lets 64 concurrent callers on two tasks overspend their tenant’s hard envelope', async () => {
    const ledger = new Ledger(getStore());
    await ledger.governance.set(parseTenantSpec('cap-hot', { total: 30_000 }));
    const scope = { tenant: 'cap-hot' };
    for (const id of ['hot-a', 'hot-b']) await ledger.createTask({ id, total: 25_000, policy: 'advisory', meter: 'billed' }, scope);
    let settled = 0;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 64 }, async (_, i) => {
        const g = await ledger.reserve({ taskId: i % 2 ? 'hot-a' : 'hot-b', model: null, inputTokens: 500, outputTokensMax: 1_500, outputTokensMin: 1_500 }, scope);
        await ledger.settle(g.reservation.id, usage(500, 1_500));
        settled += 2_000;
      }),
    );
    assert.ok(outcomes.every((o) => o.status === 'fulfilled' || code('budget_exceeded')(o.reason)));
    const [a, b] = [await ledger.task('hot-a', scope), await ledger.task('hot-b', scope)];
    const [tenant] = (await ledger.governance.list()).filter((t) => t.tenant === 'cap-hot');
    assert.deepEqual([tenant!.envelope?.used, a.used + b.used, settled, tenant!.envelope?.reserved], [30_000, 30_000, 30_000, 0]);
  });

  it('refuses a task started before its tenant had an envelope: the tenant cannot spend outside it', async () => {
    const ledger = new Ledger(getStore());
    const scope = { tenant: 'late' };
    await ledger.createTask({ id: 'late-old', total: 30_000 }, scope);
    await ledger.governance.set(parseTenantSpec('late', { total: 100_000 }));
    await assert.rejects(
      ledger.reserve({ taskId: 'late-old', model: null, inputTokens: 10, outputTokensMax: 10 }, scope),
      code('budget_exceeded', /task late-old was started before tenant late had an envelope and cannot spend outside it; start a new task/),
    );
    const fresh = await ledger.reserve({ taskId: 'late-new', model: null, inputTokens: 10, outputTokensMax: 10 }, scope, { create: { id: 'late-new', total: 30_000 } });
    // The grant is the ledger's own: store ids (the tenant's tasks under its prefix).
    assert.deepEqual(fresh.reservation.pathIds, ['~late', 'late~late-new']);
    // A call that names no task is counted in the envelope itself.
    const bare = await ledger.reserve({ taskId: '~late', model: null, inputTokens: 100, outputTokensMax: 100 }, scope);
    await ledger.settle(bare.reservation.id, usage(100, 50));
    await ledger.settle(fresh.reservation.id, usage(10, 10));
    const [tenant] = (await ledger.governance.list()).filter((t) => t.tenant === 'late');
    assert.deepEqual([tenant!.envelope?.used, tenant!.spend?.calls], [170, 2]);
  });

  it('starts an envelope over each period by the clock, with a period_reset event; calls in flight settle into the new one', async () => {
    const { ledger, at } = timed(getStore(), Date.UTC(2026, 2, 10, 23, 59));
    await ledger.governance.set(parseTenantSpec('daily', { total: 50_000, period: 'day' }));
    const scope = { tenant: 'daily' };
    await ledger.createTask({ id: 'daily-1', total: 200_000, meter: 'billed' }, scope);
    const call = async (input: number, output: number) => {
      const g = await ledger.reserve({ taskId: 'daily-1', model: null, inputTokens: input, outputTokensMax: output }, scope);
      await ledger.settle(g.reservation.id, usage(input, output));
    };
    await call(20_000, 20_000);
    const inFlight = await ledger.reserve({ taskId: 'daily-1', model: null, inputTokens: 4_000, outputTokensMax: 5_000 }, scope);
    await assert.rejects(call(10_000, 1_500), code('budget_exceeded'));
    at(Date.UTC(2026, 2, 11, 0, 0, 30));
    await ledger.settle(inFlight.reservation.id, usage(4_000, 5_000));
    await call(10_000, 1_500);
    const resets = (await ledger.events({ taskId: '~daily' })).filter((e) => e.type === 'period_reset');
    assert.deepEqual(resets.map((e) => e.data), [
      { period: 'day', startMs: Date.UTC(2026, 2, 11), previous: { startMs: Date.UTC(2026, 2, 10), used: 40_000, total: 50_000, calls: 1, tokens: 40_000, costUsd: 0 } },
    ]);
    let [tenant] = (await ledger.governance.list()).filter((t) => t.tenant === 'daily');
    // Nothing lost: 40,000 settled yesterday, 9,000 + 11,500 today; the task counts all of them.
    assert.deepEqual([tenant!.envelope?.used, tenant!.envelope?.reserved, tenant!.spend?.calls, (await ledger.task('daily-1', scope)).used], [20_500, 0, 2, 60_500]);
    // A day with no call: the sweep starts it over at the boundary, with its event.
    at(Date.UTC(2026, 2, 12, 0, 0, 5));
    await ledger.sweep();
    [tenant] = (await ledger.governance.list()).filter((t) => t.tenant === 'daily');
    assert.deepEqual([tenant!.envelope?.used, tenant!.spend?.startMs], [0, Date.UTC(2026, 2, 12)]);
    assert.equal((await ledger.events({ taskId: '~daily' })).filter((e) => e.type === 'period_reset').length, 2);
  });

  it('limits a tenant’s requests per minute: 429 with retry-after, nothing held, one rate_limited event a minute', async () => {
    const t0 = 2_000_000_000_000; // a multiple of the 5 s bucket
    const { ledger, at } = timed(getStore(), t0);
    await ledger.governance.set(parseTenantSpec('rpm-a', { rpm: 3 }));
    const scope = { tenant: 'rpm-a' };
    await ledger.createTask({ id: 'rpm-1', total: 100_000 }, scope);
    const call = async () => {
      const g = await ledger.reserve({ taskId: 'rpm-1', model: null, inputTokens: 100, outputTokensMax: 100 }, scope);
      await ledger.settle(g.reservation.id, usage(100, 100));
    };
    for (let i = 0; i < 3; i++) await call();
    at(t0 + 20_000);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(call(), (e: unknown) => code('rate_limited', /^tenant rpm-a is over its rate limit of 3 requests per minute \(3 in the last minute\); retry after 45 s$/)(e) && (e as EnvelopeError).details.retryAfterMs === 45_000);
    }
    const row = await ledger.task('rpm-1', scope);
    assert.deepEqual([row.reserved, row.callsReserved, row.calls], [0, 0, 3]);
    const limited = (await ledger.events({}, scope)).filter((e) => e.type === 'rate_limited');
    assert.deepEqual(limited.map((e) => [e.taskId, e.data]), [['rpm-1', { scope: 'tenant', limit: 'rpm', perMinute: 3, used: 3, asked: 1, retryAfterMs: 45_000 }]]);
    // The window frees when the first bucket leaves it (65 s after the calls): not a millisecond before.
    at(t0 + 64_999);
    await assert.rejects(call(), code('rate_limited'));
    at(t0 + 65_000);
    await call();
    const [tenant] = (await ledger.governance.list()).filter((t) => t.tenant === 'rpm-a');
    assert.deepEqual(tenant!.limits, { tpm: null, rpm: 3, window: { tokens: 200, requests: 1 } });
  });

  it('counts a tenant’s tokens per minute at their worst case, corrected at settlement; a refused call is taken back', async () => {
    const t0 = 2_000_000_100_000;
    const { ledger } = timed(getStore(), t0);
    await ledger.governance.set(parseTenantSpec('tpm-a', { tpm: 10_000, rpm: 100 }));
    const scope = { tenant: 'tpm-a' };
    await ledger.createTask({ id: 'tpm-1', total: 100_000 }, scope);
    await ledger.createTask({ id: 'tpm-tiny', total: 20_000, policy: 'hard' }, scope);
    const window = async () => (await ledger.governance.list()).find((t) => t.tenant === 'tpm-a')!.limits!.window;
    const g = await ledger.reserve({ taskId: 'tpm-1', model: null, inputTokens: 4_000, outputTokensMax: 1_000 }, scope);
    assert.deepEqual(await window(), { tokens: 5_000, requests: 1 });
    await ledger.settle(g.reservation.id, usage(2_000, 500));
    assert.deepEqual(await window(), { tokens: 2_500, requests: 1 });
    const held = await ledger.reserve({ taskId: 'tpm-1', model: null, inputTokens: 4_000, outputTokensMax: 1_000 }, scope);
    await assert.rejects(
      ledger.reserve({ taskId: 'tpm-1', model: null, inputTokens: 2_000, outputTokensMax: 1_000 }, scope),
      code('rate_limited', /over its rate limit of 10,000 tokens per minute \(7,500 counted in the last minute, and this call may use up to 3,000\); retry after 65 s/),
    );
    await ledger.release(held.reservation.id);
    assert.deepEqual(await window(), { tokens: 2_500, requests: 2 });
    await ledger.lowerRemaining('tpm-tiny', 1_000, scope);
    await assert.rejects(ledger.reserve({ taskId: 'tpm-tiny', model: null, inputTokens: 500, outputTokensMax: 2_000, outputTokensMin: 2_000 }, scope), code('budget_exceeded'));
    assert.deepEqual(await window(), { tokens: 2_500, requests: 2 });
    // A call larger than a whole minute's tokens goes alone into an empty window; the budget caps its size.
    const { ledger: later } = timed(getStore(), t0 + 70_000);
    const big = await later.reserve({ taskId: 'tpm-1', model: null, inputTokens: 12_000, outputTokensMax: 1_000 }, scope);
    await later.settle(big.reservation.id, usage(11_000, 1_000));
  });

  it('limits a task’s own rate, and a parent’s rate its children together', async () => {
    const t0 = 2_000_000_200_000;
    const { ledger, at } = timed(getStore(), t0);
    await ledger.createTask({ id: 'tr-parent', total: 100_000, limits: { rpm: 3 } });
    await ledger.createTask({ id: 'tr-a', total: 20_000, parent: 'tr-parent', limits: { tpm: 1_000 } });
    await ledger.createTask({ id: 'tr-b', total: 20_000, parent: 'tr-parent' });
    const call = async (id: string, input = 100) => {
      const g = await ledger.reserve({ taskId: id, model: null, inputTokens: input, outputTokensMax: 300 });
      await ledger.settle(g.reservation.id, usage(input, 100));
    };
    await call('tr-a', 500);
    await assert.rejects(call('tr-a', 500), code('rate_limited', /^task tr-a is over its rate limit of 1,000 tokens per minute \(600 counted/));
    await call('tr-b');
    await call('tr-b');
    await assert.rejects(call('tr-b'), code('rate_limited', /^task tr-parent is over its rate limit of 3 requests per minute/));
    assert.equal(ledger.view(await ledger.task('tr-a')).limits.tpm, 1_000);
    const parent = await ledger.task('tr-parent');
    assert.deepEqual([parent.used, parent.reserved, parent.calls], [1_000, 0, 3]);
    const events = (await ledger.events({ limit: 10_000 })).filter((e) => e.type === 'rate_limited' && e.taskId.startsWith('tr-'));
    assert.deepEqual(events.map((e) => [e.taskId, e.data.limit, e.data.scope]), [['tr-a', 'tpm', 'task'], ['tr-parent', 'rpm', 'task']]);
    at(t0 + 65_000);
    await call('tr-b');
  });

  it('changes an envelope in place, and refuses bad settings with a clear message, changing nothing', async () => {
    const { ledger } = timed(getStore(), Date.UTC(2026, 4, 4, 10));
    await ledger.governance.set(parseTenantSpec('edit', { total: 40_000, policy: 'hard' }));
    const scope = { tenant: 'edit' };
    await ledger.createTask({ id: 'edit-1', total: 100_000, meter: 'billed' }, scope);
    const g = await ledger.reserve({ taskId: 'edit-1', model: null, inputTokens: 20_000, outputTokensMax: 10_000 }, scope);
    await ledger.settle(g.reservation.id, usage(20_000, 10_000));
    const lowered = await ledger.governance.set(parseTenantSpec('edit', { total: 25_000 }));
    assert.deepEqual([lowered.envelope?.used, lowered.envelope?.state], [30_000, 'exhausted']);
    await assert.rejects(ledger.reserve({ taskId: 'edit-1', model: null, inputTokens: 10, outputTokensMax: 10 }, scope), code('budget_exceeded'));
    const raised = await ledger.governance.set(parseTenantSpec('edit', { total: 60_000, period: 'month' }));
    assert.deepEqual([raised.envelope?.state, raised.envelope?.period, raised.spend?.resetsAtMs], ['active', 'month', Date.UTC(2026, 5, 1)]);
    const open = await ledger.reserve({ taskId: 'edit-1', model: null, inputTokens: 10, outputTokensMax: 10 }, scope);
    await assert.rejects(ledger.governance.set(parseTenantSpec('edit', { total: 5, unit: 'usd' })), code('conflict', /calls in flight/));
    await ledger.release(open.reservation.id);
    // No cap: the envelope keeps counting what the tenant spends, and refuses nothing.
    const uncapped = await ledger.governance.set(parseTenantSpec('edit', {}));
    assert.deepEqual([uncapped.envelope, uncapped.spend?.used], [null, 30_000]);
    await ledger.reserve({ taskId: 'edit-1', model: null, inputTokens: 10, outputTokensMax: 10 }, scope);

    const before = JSON.stringify(await ledger.governance.list());
    const bad: Array<[string, unknown, RegExp]> = [
      ['edit', { tpm: -5 }, /^tpm: tpm must be positive$/],
      ['edit', { rpm: 1.5 }, /^rpm: rpm must be a whole number$/],
      ['edit', { total: 10_000, period: 'fortnight' }, /^period: period must be day, week, month or none$/],
      ['edit', { period: 'day' }, /^period: period describes an envelope: give its total too$/],
      ['edit', { total: -1 }, /^total: total must be positive$/],
      ['edit', { total: 10_000, policy: 'measure' }, /^policy: policy must be hard, advisory or approval$/],
      ['edit', { total: 10_000, colour: 'red' }, /colour/],
      ['edit', { total: 1e13 }, /at most 1,000,000,000,000 tokens/],
      ['no such tenant!', { total: 10_000 }, /tenant names are/],
    ];
    for (const [tenant, input, message] of bad) assert.throws(() => parseTenantSpec(tenant, input), code('invalid_request', message), JSON.stringify(input));
    assert.equal(JSON.stringify(await ledger.governance.list()), before);
  });
}
