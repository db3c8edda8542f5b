// The admin API and the gateway's refusals that need no upstream: auth, tenants, bad input in provider shapes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const ADMIN = 'admin-secret';
const KEYS = new Map([
  ['key-acme', 'acme'],
  ['key-globex', 'globex'],
]);

async function api(gw: TestGateway, method: string, path: string, token: string | null, body?: unknown) {
  const res = await fetch(`${gw.url}/envelope/v1${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

describe('gateway admin API', () => {
  let gw: TestGateway;
  before(async () => {
    // No upstream is ever reached in these tests: refusals happen before forwarding.
    gw = await startGateway({ adminToken: ADMIN, tenantKeys: KEYS, anthropicUrl: 'http://127.0.0.1:9', openaiUrl: 'http://127.0.0.1:9/v1' });
  });
  after(() => gw.close());

  it('refuses a missing or wrong token', async () => {
    assert.equal((await api(gw, 'GET', '/tasks', null)).status, 401);
    const wrong = await api(gw, 'GET', '/tasks', 'nope');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error.code, 'unauthorized');
  });

  it('creates, lists, approves and closes tasks; a tenant sees only its own', async () => {
    const created = await api(gw, 'POST', '/tasks', 'key-acme', { id: 'acme-1', total: 50_000, policy: 'approval', label: 'bug-fix' });
    assert.equal(created.status, 201);
    assert.deepEqual([created.json.tenant, created.json.total, created.json.remaining, created.json.state], ['acme', 50_000, 50_000, 'active']);
    assert.equal((await api(gw, 'POST', '/tasks', 'key-globex', { id: 'globex-1', total: 30_000 })).status, 201);
    const child = await api(gw, 'POST', '/tasks', 'key-acme', { id: 'acme-1-research', total: 20_000, parent: 'acme-1' });
    assert.equal(child.status, 201);

    const acme = await api(gw, 'GET', '/tasks', 'key-acme');
    assert.deepEqual(acme.json.tasks.map((t: { id: string }) => t.id), ['acme-1', 'acme-1-research']);
    const all = await api(gw, 'GET', '/tasks', ADMIN);
    assert.equal(all.json.tasks.length, 3);

    // Another tenant's task does not exist for it, and cannot be approved, closed, or used as a parent.
    assert.equal((await api(gw, 'GET', '/tasks/acme-1', 'key-globex')).status, 404);
    assert.equal((await api(gw, 'POST', '/tasks/acme-1/approve', 'key-globex', { add: 1_000 })).status, 404);
    assert.equal((await api(gw, 'POST', '/tasks', 'key-globex', { id: 'sneaky', total: 20_000, parent: 'acme-1' })).status, 404);

    const shown = await api(gw, 'GET', '/tasks/acme-1', 'key-acme');
    assert.deepEqual(shown.json.children.map((c: { id: string }) => c.id), ['acme-1-research']);
    assert.match(shown.json.countdown, /0 of 50,000 tokens used \(0%\); 50,000 tokens remaining\./);

    const approved = await api(gw, 'POST', '/tasks/acme~acme-1/approve', ADMIN, { add: 10_000 }); // the admin names it by its store id
    assert.equal(approved.json.total, 60_000);
    const closed = await api(gw, 'POST', '/tasks/acme-1-research/close', 'key-acme', {});
    assert.deepEqual([closed.json.state, closed.json.outcome], ['closed', 'completed']);
    const runs = await api(gw, 'GET', '/runs', 'key-acme');
    assert.deepEqual(runs.json.runs.map((r: { task: string }) => r.task), ['acme-1-research']);
    assert.equal((await api(gw, 'GET', '/runs', 'key-globex')).json.runs.length, 0);
  });

  it('rejects bad admin input with a clear error and changes nothing', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ id: 'bad-1', total: -5 }, /total/],
      [{ id: 'bad-2', total: 25_000.5 }, /whole number/],
      [{ id: 'bad-3', total: 25_000, unit: 'gallons' }, /unit/],
      [{ id: 'bad-4', total: 25_000, policy: 'maybe' }, /policy/],
      [{ id: 'bad-5', total: 19_999 }, /below the minimum of 20,000 tokens/],
      [{ id: 'bad-6', total: 25_000, parent: 'no-such-task' }, /parent task no-such-task does not exist/],
    ];
    for (const [body, message] of cases) {
      const r = await api(gw, 'POST', '/tasks', ADMIN, body);
      assert.ok(r.status === 400 || r.status === 404, `${JSON.stringify(body)} → ${r.status}`);
      assert.match(r.json.error.message, message);
    }
    const ids = (await api(gw, 'GET', '/tasks', ADMIN)).json.tasks.map((t: { id: string }) => t.id);
    assert.ok(!ids.some((id: string) => id.startsWith('bad-')));
    assert.equal((await api(gw, 'POST', '/tasks/globex~globex-1/approve', ADMIN, { add: -3 })).status, 400);
    assert.equal((await api(gw, 'GET', '/tasks/globex~globex-1', ADMIN)).json.total, 30_000);
  });

  it('answers bad model calls in the provider’s own error shape, before any upstream', async () => {
    const claude = new Anthropic({ apiKey: 'sk-ant-test', baseURL: gw.url, maxRetries: 0 });
    await assert.rejects(
      claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [] }),
      (e: any) => e.status === 400 && e.error?.error?.type === 'invalid_request_error' && /messages/.test(e.message),
    );
    await assert.rejects(
      claude.messages.create(
        { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] },
        { headers: { 'x-envelope-task': 'never-created' } },
      ),
      (e: any) => e.status === 404 && e.error?.error?.type === 'not_found_error' && /never-created does not exist/.test(e.message),
    );
    await assert.rejects(
      claude.messages.create(
        { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] },
        { headers: { 'x-envelope-task': 'tiny', 'x-envelope-budget': '500' } },
      ),
      (e: any) => e.status === 400 && /below the minimum/.test(e.message),
    );
    await assert.rejects(
      claude.messages.create(
        { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] },
        { headers: { 'x-envelope-key': 'not-a-key' } },
      ),
      (e: any) => e.status === 401 && e.error?.error?.type === 'authentication_error',
    );
    const gpt = new OpenAI({ apiKey: 'sk-test', baseURL: `${gw.url}/v1`, maxRetries: 0 });
    await assert.rejects(
      gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: -1 }),
      (e: any) => e.status === 400 && e.error?.type === 'invalid_request_error',
    );
    const raw = await fetch(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    assert.equal(raw.status, 400);
    assert.deepEqual(await raw.json(), { type: 'error', error: { type: 'invalid_request_error', message: 'the request body is not valid JSON' } });
    const ids = (await api(gw, 'GET', '/tasks', ADMIN)).json.tasks.map((t: { id: string }) => t.id);
    assert.ok(!ids.includes('tiny') && !ids.includes('never-created'));
  });
});
