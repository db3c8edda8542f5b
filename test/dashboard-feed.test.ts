// The dashboard's server side without a browser: the burn history rebuilt from events, the live task feed
// (snapshot, then only what changed, per tenant), and the routes: the page, its files, uPlot, the SSE feed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { burnHistory } from '../src/dashboard/history.js';
import { TaskFeed, type FeedDelivery } from '../src/dashboard/feed.js';
import { Ledger } from '../src/ledger/ledger.js';
import { MemoryStore } from '../src/store/memory.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const usage = (inputTokens: number, outputTokens: number) => ({ inputTokens, outputTokens, cacheWriteTokens: 0, cacheReadTokens: 0 });

describe('burn history', () => {
  it('rebuilds a task’s burn from its events: thresholds, pause, approval, closing', async () => {
    let now = 1_000;
    const ledger = new Ledger(new MemoryStore(), { clock: () => now });
    await ledger.createTask({ id: 'h1', total: 20_000, policy: 'approval' });
    now = 2_000;
    let grant = await ledger.reserve({ taskId: 'h1', model: 'claude-sonnet-4-6', inputTokens: 14_000, outputTokensMax: 1_000 });
    await ledger.settle(grant.reservation.id, usage(14_000, 1_000)); // 75 %: crosses 70 %
    now = 3_000;
    // 1,000 tokens of room is below the 1,024 floor: the approval task pauses.
    await assert.rejects(ledger.reserve({ taskId: 'h1', model: 'claude-sonnet-4-6', inputTokens: 4_000, outputTokensMax: 2_000 }), { code: 'budget_paused' });
    now = 4_000;
    await ledger.approve('h1', 10_000);
    now = 5_000;
    grant = await ledger.reserve({ taskId: 'h1', model: 'claude-sonnet-4-6', inputTokens: 4_000, outputTokensMax: 2_000 });
    await ledger.settle(grant.reservation.id, usage(4_000, 2_000)); // 21,000 of 30,000: 70 % again
    now = 6_000;
    await ledger.close('h1');

    const row = await ledger.task('h1');
    const points = burnHistory(row, await ledger.events({ taskId: 'h1' }), [{ atMs: 2_500, used: 15_000, reserved: 0, total: 20_000 }]);
    assert.deepEqual(
      points.map((p) => [p.atMs, p.source, p.event ?? null, p.used, p.reserved, p.total, p.exact]),
      [
        [1_000, 'created', null, 0, 0, 20_000, true],
        [2_000, 'event', 'threshold_crossed', 15_000, 0, 20_000, false],
        [2_500, 'sample', null, 15_000, 0, 20_000, true],
        [3_000, 'event', 'paused', 15_000, 0, 20_000, true],
        [4_000, 'event', 'approved', 15_000, 0, 30_000, true],
        [5_000, 'event', 'threshold_crossed', 21_000, 0, 30_000, false],
        [6_000, 'event', 'closed', 21_000, 0, 30_000, true],
        [6_000, 'now', null, 21_000, 0, 30_000, true],
      ],
    );
  });

  it('gives USD tasks in dollars', async () => {
    const ledger = new Ledger(new MemoryStore(), { clock: () => 7_000 });
    await ledger.createTask({ id: 'u1', unit: 'usd', total: 2.5 });
    const grant = await ledger.reserve({ taskId: 'u1', model: 'claude-sonnet-4-6', inputTokens: 100_000, outputTokensMax: 10_000 });
    await ledger.settle(grant.reservation.id, usage(100_000, 10_000)); // $0.30 + $0.15
    const points = burnHistory(await ledger.task('u1'), [], []);
    assert.deepEqual(points.map((p) => [p.source, p.used, p.total]), [['created', 0, 2.5], ['now', 0.45, 2.5]]);
  });
});

describe('live task feed', () => {
  /** Deliveries to one watcher, awaited one at a time. */
  function inbox(): { deliver: (d: FeedDelivery) => void; next: () => Promise<FeedDelivery> } {
    const queued: FeedDelivery[] = [];
    const waiting: Array<(d: FeedDelivery) => void> = [];
    return {
      deliver: (d) => (waiting.length ? waiting.shift()!(d) : queued.push(d)),
      next: () => (queued.length ? Promise.resolve(queued.shift()!) : new Promise((r) => waiting.push(r))),
    };
  }

  it('sends each watcher a snapshot of its scope, then only the tasks that changed', async () => {
    const ledger = new Ledger(new MemoryStore());
    const feed = new TaskFeed(ledger, { throttleMs: 1, pollMs: 60_000 });
    // Created as the admin names them; the store keeps them as acme~a1 …, and the tenant names them a1 ….
    await ledger.createTask({ id: 'a1', tenant: 'acme', total: 30_000 });
    await ledger.createTask({ id: 'a2', tenant: 'acme', total: 40_000 });
    await ledger.createTask({ id: 'g1', tenant: 'globex', total: 50_000 });

    const admin = inbox();
    const acme = inbox();
    const stopAdmin = feed.watch({}, admin.deliver);
    const stopAcme = feed.watch({ tenant: 'acme' }, acme.deliver);
    const first = await admin.next();
    assert.deepEqual([first.kind, first.tasks.map((t) => t.id)], ['snapshot', ['acme~a1', 'acme~a2', 'globex~g1']]);
    const acmeFirst = await acme.next();
    assert.deepEqual([acmeFirst.kind, acmeFirst.tasks.map((t) => t.id)], ['snapshot', ['a1', 'a2']]);

    const grant = await ledger.reserve({ taskId: 'acme~a2', model: 'claude-sonnet-4-6', inputTokens: 1_000, outputTokensMax: 2_000 });
    const held = await admin.next();
    assert.deepEqual([held.kind, held.tasks.map((t) => [t.id, t.used, t.reserved])], ['tasks', [['acme~a2', 0, 3_000]]]);
    await ledger.settle(grant.reservation.id, usage(1_000, 500));
    assert.deepEqual((await admin.next()).tasks.map((t) => [t.id, t.used, t.reserved, t.remaining]), [['acme~a2', 1_500, 0, 38_500]]);
    // The tenant saw the same changes of its own task; globex's change never reaches it.
    assert.deepEqual((await acme.next()).tasks.map((t) => [t.id, t.reserved]), [['a2', 3_000]]);
    assert.deepEqual((await acme.next()).tasks.map((t) => [t.id, t.used]), [['a2', 1_500]]);
    await ledger.approve('globex~g1', 1_000);
    assert.deepEqual((await admin.next()).tasks.map((t) => [t.id, t.total]), [['globex~g1', 51_000]]);
    await ledger.approve('acme~a1', 1_000);
    assert.deepEqual((await acme.next()).tasks.map((t) => [t.id, t.total]), [['a1', 31_000]]);

    // What the feed saw of a2 is kept for its burn-down: as created, held, settled.
    assert.deepEqual(feed.samplesOf('acme~a2').map((s) => [s.used, s.reserved]), [[0, 0], [0, 3_000], [1_500, 0]]);
    // A task that closes is sent once more, closed; a new watcher's snapshot still has it.
    await ledger.close('acme~a1');
    assert.deepEqual((await acme.next()).tasks.map((t) => [t.id, t.state]), [['a1', 'closed']]);
    const late = inbox();
    const stopLate = feed.watch({ tenant: 'acme' }, late.deliver);
    assert.deepEqual((await late.next()).tasks.map((t) => [t.id, t.state]).sort(), [['a1', 'closed'], ['a2', 'active']]);
    stopAdmin();
    stopAcme();
    stopLate();
  });
});

describe('dashboard routes', () => {
  let gw: TestGateway;
  const ADMIN = 'dash-admin';
  before(async () => {
    gw = await startGateway({ adminToken: ADMIN, tenantKeys: new Map([['key-acme', 'acme']]), anthropicUrl: 'http://127.0.0.1:9' });
    await gw.ledger.createTask({ id: 'r1', tenant: 'globex', total: 20_000, label: 'bug-fix' });
  });
  after(() => gw.close());

  it('serves the page, its modules and uPlot from the package, with a strict content policy', async () => {
    const page = await fetch(`${gw.url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.match(await page.text(), /<script type="module" src="\/dashboard\/main\.js"><\/script>/);
    const main = await fetch(`${gw.url}/dashboard/main.js`);
    assert.deepEqual([main.status, main.headers.get('content-type')], [200, 'text/javascript; charset=utf-8']);
    const uplot = await fetch(`${gw.url}/dashboard/vendor/uPlot.esm.js`);
    assert.equal(uplot.status, 200);
    assert.match(await uplot.text(), /export \{ uPlot as default \}/);
    assert.equal((await fetch(`${gw.url}/dashboard/vendor/uPlot.min.css`)).status, 200);
    for (const path of ['/dashboard/nope.js', '/dashboard/..%2F..%2F..%2Fpackage.json', '/dashboard/vendor/uPlot.cjs.js']) {
      assert.equal((await fetch(`${gw.url}${path}`)).status, 404, path);
    }
  });

  it('streams the caller’s tasks and gives a task’s history only within its scope', async () => {
    assert.equal((await fetch(`${gw.url}/envelope/v1/task-updates`)).status, 401);
    const res = await fetch(`${gw.url}/envelope/v1/task-updates`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n\n', text.indexOf('event: snapshot'))) text += new TextDecoder().decode((await reader.read()).value);
    const data = JSON.parse(/event: snapshot\ndata: (.*)\n/.exec(text)![1]!) as { scope: { tenant: string | null }; tasks: Array<{ id: string }> };
    assert.deepEqual([data.scope.tenant, data.tasks.map((t) => t.id)], [null, ['globex~r1']]);
    await reader.cancel();
    // The feed sampled r1 while that stream watched: the history has it between creation and now.

    const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    const history = await fetch(`${gw.url}/envelope/v1/tasks/globex~r1/history`, auth(ADMIN));
    assert.equal(history.status, 200);
    const body = (await history.json()) as { task: { id: string }; thresholds: number[]; points: Array<{ source: string; total: number }> };
    assert.deepEqual([body.task.id, body.thresholds, body.points.map((p) => [p.source, p.total])], ['globex~r1', [0.7, 0.85], [['created', 20_000], ['sample', 20_000], ['now', 20_000]]]);
    for (const id of ['r1', 'globex~r1']) assert.equal((await fetch(`${gw.url}/envelope/v1/tasks/${id}/history`, auth('key-acme'))).status, 404);
  });
});

describe('gateway shutdown with dashboards open', () => {
  it('closes although the event stream and the task feed are held open', { timeout: 20_000 }, async () => {
    const gw = await startGateway({ anthropicUrl: 'http://127.0.0.1:9' });
    const streams = await Promise.all(['/events', '/task-updates'].map((p) => fetch(`${gw.url}/envelope/v1${p}`)));
    const readers = streams.map((s) => s.body!.getReader());
    await Promise.all(readers.map((r) => r.read())); // both are open and have sent their first bytes
    await gw.close();
    // Both ended cleanly from the server's side.
    for (const r of readers) {
      let done = false;
      while (!done) done = (await r.read()).done;
    }
  });
});
