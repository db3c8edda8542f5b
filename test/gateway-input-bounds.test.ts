// Numbers from outside are read one way and bounded: x-envelope-* headers are plain decimals, totals and
// approvals stop at 10^12 tokens (10^6 USD) over HTTP as in the ledger, and a tenant cannot probe for other
// tenants' task ids.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const ADMIN = 'bounds-admin';
const KEYS = new Map([
  ['key-acme', 'acme'],
  ['key-globex', 'globex'],
]);

describe('gateway: bounded numbers and tenant privacy', () => {
  let sim: Sim;
  let gw: TestGateway;
  before(async () => {
    sim = await startSim({ outputTokens: 10 });
    gw = await startGateway({ adminToken: ADMIN, tenantKeys: KEYS, anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1` });
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  const call = (headers: Record<string, string>) =>
    fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01', ...headers },
      body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }),
    });
  const admin = (method: string, path: string, token: string, body?: unknown) =>
    fetch(`${gw.url}/envelope/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it('reads x-envelope-budget as plain digits only, a fraction only for USD', async () => {
    const refused: Array<[string, string | undefined]> = [
      ['1e30', undefined],
      ['0x4E20', undefined],
      ['+50000', undefined],
      ['-50000', undefined],
      ['50000.0', undefined],
      ['50_000', undefined],
      ['50,000', undefined],
      ['50 000', undefined],
      ['Infinity', undefined],
      ['2.5e1', 'usd'],
      ['.5', 'usd'],
      ['0x10', 'usd'],
    ];
    for (const [i, [budget, unit]] of refused.entries()) {
      const res = await call({ 'x-envelope-task': `hdr-${i}`, 'x-envelope-budget': budget, ...(unit ? { 'x-envelope-unit': unit } : {}) });
      const body = (await res.json()) as { type: string; error: { type: string; message: string } };
      assert.equal(res.status, 400, budget);
      assert.equal(body.error.type, 'invalid_request_error');
      assert.match(body.error.message, /^x-envelope-budget must be a (whole number in plain digits|plain decimal)/, budget);
    }
    // Digits past the bound are refused by the task spec, before anything exists.
    const huge = await call({ 'x-envelope-task': 'hdr-huge', 'x-envelope-budget': '1'.padEnd(400, '0') });
    assert.equal(huge.status, 400);
    assert.match(((await huge.json()) as { error: { message: string } }).error.message, /total/);
    const ids = ((await (await admin('GET', '/tasks', ADMIN)).json()) as { tasks: Array<{ id: string }> }).tasks.map((t) => t.id);
    assert.deepEqual(ids.filter((id) => id.startsWith('hdr-')), []);

    const tokens = await call({ 'x-envelope-task': 'hdr-ok', 'x-envelope-budget': '50000' });
    assert.deepEqual([tokens.status, tokens.headers.get('x-envelope-budget-total')], [200, '50000']);
    const usd = await call({ 'x-envelope-task': 'hdr-usd', 'x-envelope-budget': '2.50', 'x-envelope-unit': 'usd' });
    assert.deepEqual([usd.status, usd.headers.get('x-envelope-budget-total')], [200, '2.5']);
    // A child takes its parent's unit: a fraction is read, and the rules decide whether the unit allows one.
    const usdChild = await call({ 'x-envelope-task': 'hdr-usd/child', 'x-envelope-parent': 'hdr-usd', 'x-envelope-budget': '0.50' });
    assert.deepEqual([usdChild.status, usdChild.headers.get('x-envelope-budget-total')], [200, '0.5']);
    const tokenChild = await call({ 'x-envelope-task': 'hdr-ok/child', 'x-envelope-parent': 'hdr-ok', 'x-envelope-budget': '20000.5' });
    assert.equal(tokenChild.status, 400);
    assert.match(((await tokenChild.json()) as { error: { message: string } }).error.message, /whole number/);
  });

  it('refuses approvals that would take a total past 10^12 tokens, and leaves the task as it was', async () => {
    assert.equal((await admin('POST', '/tasks', ADMIN, { id: 'big', total: 50_000, policy: 'hard' })).status, 201);
    for (let i = 0; i < 2; i++) {
      const res = await admin('POST', '/tasks/big/approve', ADMIN, { add: 1.7e308 });
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /past the maximum of 1,000,000,000,000 tokens/);
    }
    const big = (await (await admin('GET', '/tasks/big', ADMIN)).json()) as { total: number; remaining: number; state: string };
    assert.deepEqual([big.total, big.remaining, big.state], [50_000, 50_000, 'active']);
    assert.equal((await admin('POST', '/tasks', ADMIN, { id: 'too-big', total: 1e12 + 1 })).status, 400);
  });

  it('gives each tenant task ids of its own: another tenant’s id is as unknown as any other', async () => {
    assert.equal((await admin('POST', '/tasks', 'key-acme', { id: 'private-1', total: 20_000 })).status, 201);
    // globex is answered exactly as for an id nobody has: created, its own.
    const mine = await admin('POST', '/tasks', 'key-globex', { id: 'private-1', total: 30_000 });
    assert.equal(mine.status, 201);
    assert.deepEqual(pick((await mine.json()) as Record<string, unknown>), ['private-1', 'globex', 30_000]);
    assert.equal((await admin('GET', '/tasks/private-2', 'key-globex')).status, 404);
    // On first sight through a model call too: created for the caller, headers in its own ids.
    const viaCall = await call({ 'x-envelope-key': 'key-globex', 'x-envelope-task': 'private-3', 'x-envelope-budget': '20000' });
    assert.equal(viaCall.status, 200);
    assert.equal(viaCall.headers.get('x-envelope-task'), 'private-3');
    const acmeCall = await call({ 'x-envelope-key': 'key-acme', 'x-envelope-task': 'private-3', 'x-envelope-budget': '25000' });
    assert.deepEqual([acmeCall.status, acmeCall.headers.get('x-envelope-task'), acmeCall.headers.get('x-envelope-budget-total')], [200, 'private-3', '25000']);
    // Each sees its own; the admin sees both under their store ids.
    assert.deepEqual(pick((await (await admin('GET', '/tasks/private-1', 'key-acme')).json()) as Record<string, unknown>), ['private-1', 'acme', 20_000]);
    assert.deepEqual(pick((await (await admin('GET', '/tasks/private-1', 'key-globex')).json()) as Record<string, unknown>), ['private-1', 'globex', 30_000]);
    const all = ((await (await admin('GET', '/tasks?limit=1000', ADMIN)).json()) as { tasks: Array<Record<string, unknown>> }).tasks;
    assert.deepEqual(all.filter((t) => String(t.id).includes('private-')).map(pick).sort(), [
      ['acme~private-1', 'acme', 20_000],
      ['acme~private-3', 'acme', 25_000],
      ['globex~private-1', 'globex', 30_000],
      ['globex~private-3', 'globex', 20_000],
    ]);
    assert.equal((await admin('GET', '/tasks/globex~private-1', ADMIN)).status, 200);
    // A tenant cannot reach another's task by its store id either.
    assert.equal((await admin('GET', '/tasks/globex~private-1', 'key-acme')).status, 404);
  });

  const pick = (t: Record<string, unknown>): unknown[] => [t.id, t.tenant, t.total];

  it('marks every admin API answer nosniff', async () => {
    for (const res of [
      await admin('GET', '/tasks', ADMIN),
      await admin('POST', '/tasks', ADMIN, { id: 'sniff', total: 20_000 }),
      await admin('GET', '/tasks/nobody', ADMIN),
      await admin('GET', '/tasks', 'wrong-token'),
      await admin('GET', '/no-such-route', ADMIN),
    ]) {
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${res.url} ${res.status}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    }
  });
});
