// The operator's governance through the gateway (SPEC §4a): PUT/GET /envelope/v1/tenants, a tenant capped whatever
// task it names (or none), 429s in each provider's own shape with retry-after, a rate_limited event and its
// Prometheus counter, and the official SDKs getting through on their own retries once the window frees.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startSim, type Sim } from '../src/sim/server.js';
import { startInsightGateway, type TestGateway } from './helpers/gateway.js';

const ADMIN = 'admin-secret';
const KEYS = new Map([
  ['key-acme', 'acme'],
  ['key-globex', 'globex'],
  ['key-initech', 'initech'],
]);
/** A twelfth of this is one bucket of the rate window: short, so the SDKs' retries find it free within a second. */
const WINDOW_MS = 1_200;

async function api(gw: TestGateway, method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${gw.url}/envelope/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

const billed = (u: Anthropic.Usage): number => u.input_tokens + u.output_tokens + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0);

describe('gateway: tenant envelopes and rate limits', () => {
  let sim: Sim;
  let gw: TestGateway;
  const claude = (key: string, headers: Record<string, string> = {}, maxRetries = 0): Anthropic =>
    new Anthropic({ apiKey: 'sk-ant-x', baseURL: gw.url, maxRetries, defaultHeaders: { 'x-envelope-key': key, ...headers } });

  before(async () => {
    sim = await startSim({ outputTokens: 100 });
    gw = await startInsightGateway(
      { adminToken: ADMIN, tenantKeys: KEYS, anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1`, geminiUrl: sim.url },
      { config: { rateWindowMs: WINDOW_MS } },
    );
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  it('sets and shows envelopes over the admin API; refuses bad input and tenant keys, changing nothing', async () => {
    const put = await api(gw, 'PUT', '/tenants/acme', ADMIN, { total: 5_000_000, period: 'day', tpm: 250_000, rpm: 600 });
    assert.equal(put.status, 200);
    assert.deepEqual([put.json.envelope.total, put.json.envelope.policy, put.json.envelope.period, put.json.limits], [5_000_000, 'hard', 'day', { tpm: 250_000, rpm: 600, window: { tokens: 0, requests: 0 } }]);
    const before = (await api(gw, 'GET', '/tenants', ADMIN)).json;
    assert.deepEqual(before.tenants.map((t: { tenant: string; envelope: unknown }) => [t.tenant, t.envelope !== null]), [['acme', true], ['default', false], ['globex', false], ['initech', false]]);
    const bad: Array<[string, string, unknown, number, RegExp]> = [
      ['/tenants/acme', ADMIN, { total: 5_000_000, tpm: -1 }, 400, /^tpm: tpm must be positive$/],
      ['/tenants/acme', ADMIN, { total: 5_000_000, period: 'fortnight' }, 400, /^period: period must be day, week, month or none$/],
      ['/tenants/hooli', ADMIN, { total: 5_000_000 }, 400, /^tenant hooli does not exist: no tenant key names it \(known: default, acme, globex, initech\)/],
      ['/tenants/acme', 'key-acme', { total: 1e9 }, 403, /only the admin token/],
    ];
    for (const [path, token, body, status, message] of bad) {
      const r = await api(gw, 'PUT', path, token, body);
      assert.deepEqual([r.status, message.test(r.json.error.message)], [status, true], JSON.stringify([body, r.json]));
    }
    assert.deepEqual((await api(gw, 'GET', '/tenants', ADMIN)).json, before);
    // A tenant key sees its own tenant only.
    assert.deepEqual((await api(gw, 'GET', '/tenants', 'key-acme')).json.tenants.map((t: { tenant: string }) => t.tenant), ['acme']);
    assert.equal((await api(gw, 'GET', '/tenants/globex', 'key-acme')).status, 404);
    assert.equal((await api(gw, 'GET', '/tenants/acme', 'key-acme')).json.envelope.total, 5_000_000);
    assert.equal((await api(gw, 'GET', '/tenants/nobody', ADMIN)).status, 404);
  });

  it('caps a tenant whatever its calls declare: a task of its own, a child, or no task at all', async () => {
    assert.equal((await api(gw, 'PUT', '/tenants/globex', ADMIN, { total: 30_000, policy: 'hard' })).status, 200);
    // The client declares a million tokens for itself: the envelope still decides.
    const greedy = claude('key-globex', { 'x-envelope-task': 'globex-run', 'x-envelope-budget': '1000000', 'x-envelope-policy': 'advisory', 'x-envelope-meter': 'billed' });
    const first = await greedy.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user', content: 'hello' }] });
    const bare = await claude('key-globex').messages.create({ model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user', content: 'no task named' }] });
    let spent = billed(first.usage) + billed(bare.usage);
    const tenant = async () => (await api(gw, 'GET', '/tenants/globex', ADMIN)).json;
    assert.deepEqual([(await tenant()).envelope.used, (await tenant()).spend.calls], [spent, 2]);
    const run = await api(gw, 'GET', '/tasks/globex~globex-run', ADMIN); // the admin names it by its store id
    assert.equal(run.json.used, billed(first.usage), JSON.stringify(run));
    // Calls of 20,000 tokens' worth of output fit until the envelope has less than a call's floor left.
    let refused: InstanceType<typeof Anthropic.APIError> | undefined;
    for (let i = 0; i < 40 && !refused; i++) {
      try {
        const r = await greedy.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 20_000, messages: [{ role: 'user', content: `call ${i}` }] }, { headers: { 'x-sim-output-tokens': '2000' } });
        spent += billed(r.usage);
      } catch (e) {
        refused = e as InstanceType<typeof Anthropic.APIError>;
      }
    }
    assert.equal(refused?.status, 402);
    assert.match(String((refused?.error as { error: { message: string } }).error.message), /^tenant globex's envelope has used [0-9,]+ of 30,000 tokens and this call needs at least [0-9,]+ tokens; the operator can raise it with: envelope tenants set globex --budget \d+$/);
    const end = await tenant();
    assert.ok(end.envelope.used <= 30_000, `${end.envelope.used}`);
    assert.deepEqual([end.envelope.used, end.envelope.reserved], [spent, 0]);
  });

  it('answers a rate limit with 429 in each provider’s own shape and retry-after, spending nothing; one event, every refusal counted', async () => {
    assert.equal((await api(gw, 'PUT', '/tenants/initech', ADMIN, { rpm: 1 })).status, 200);
    const headers = { 'content-type': 'application/json', 'x-envelope-key': 'key-initech', 'x-envelope-task': 'initech-1', 'x-envelope-budget': '50000' };
    const anthropic = { url: `${gw.url}/v1/messages`, body: { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }, extra: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' } };
    const openai = { url: `${gw.url}/v1/chat/completions`, body: { model: 'gpt-4o', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }, extra: { authorization: 'Bearer k' } };
    const gemini = { url: `${gw.url}/v1beta/models/gemini-2.5-pro:generateContent`, body: { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, extra: { 'x-goog-api-key': 'k' } };
    const post = (c: typeof anthropic | typeof openai | typeof gemini) => fetch(c.url, { method: 'POST', headers: { ...headers, ...c.extra }, body: JSON.stringify(c.body) });
    assert.equal((await post(anthropic)).status, 200);
    const shapes: unknown[] = [];
    for (const c of [anthropic, openai, gemini]) {
      const res = await post(c);
      const body = (await res.json()) as Record<string, any>;
      assert.equal(res.status, 429);
      const ms = Number(res.headers.get('retry-after-ms'));
      assert.ok(ms > 0 && ms <= (WINDOW_MS * 13) / 12, String(ms));
      assert.equal(res.headers.get('retry-after'), String(Math.ceil(ms / 1000)));
      shapes.push(body.type === 'error' ? body.error.type : body.error.code === 429 ? body.error.status : [body.error.type, body.error.code]);
    }
    assert.deepEqual(shapes, ['rate_limit_error', ['rate_limit_exceeded', 'rate_limit_exceeded'], 'RESOURCE_EXHAUSTED']);
    const task = (await api(gw, 'GET', '/tasks/initech~initech-1', ADMIN)).json;
    assert.deepEqual([task.calls, task.reserved, task.callsInFlight], [1, 0, 0]);
    const events = (await gw.ledger.events({}, { tenant: 'initech' })).filter((e) => e.type === 'rate_limited');
    assert.deepEqual(events.map((e) => [e.taskId, e.data.scope, e.data.limit]), [['initech-1', 'tenant', 'rpm']]);
    const metrics = parsePrometheusTextFormat((await (await fetch(`${gw.url}/envelope/v1/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text()));
    const limited = metrics.find((f) => f.name === 'envelope_rate_limited_total')!.metrics.map((m) => [m.labels, Number(m.value)]);
    assert.deepEqual(limited, [[{ tenant: 'initech', scope: 'tenant', limit: 'rpm' }, 3]]);
  });

  it('lets the official SDKs get through with their default retries once the window frees', async () => {
    assert.equal((await api(gw, 'PUT', '/tenants/initech', ADMIN, { rpm: 1 })).status, 200);
    await new Promise((r) => setTimeout(r, WINDOW_MS + WINDOW_MS / 12)); // the window of the last test has passed
    const statuses: number[] = [];
    const counting: typeof fetch = async (url, init) => {
      const res = await fetch(url, init);
      statuses.push(res.status);
      return res;
    };
    const headers = { 'x-envelope-key': 'key-initech', 'x-envelope-task': 'initech-sdk', 'x-envelope-budget': '50000' };
    const anthropic = new Anthropic({ apiKey: 'k', baseURL: gw.url, defaultHeaders: headers, fetch: counting });
    const openai = new OpenAI({ apiKey: 'k', baseURL: `${gw.url}/v1`, defaultHeaders: headers, fetch: counting });
    await anthropic.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'one' }] });
    // Over the limit now: each SDK is answered 429, waits what retry-after-ms says, and tries again on its own.
    await anthropic.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'two' }] });
    await openai.chat.completions.create({ model: 'gpt-4o', max_tokens: 100, messages: [{ role: 'user', content: 'three' }] });
    assert.deepEqual(statuses.filter((s) => s === 200).length, 3);
    assert.ok(statuses.filter((s) => s === 429).length >= 2, JSON.stringify(statuses));
    assert.ok(statuses.every((s) => s === 200 || s === 429), JSON.stringify(statuses));
    assert.equal((await api(gw, 'GET', '/tasks/initech~initech-sdk', ADMIN)).json.calls, 3);
  });
});
