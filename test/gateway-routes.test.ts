// The gateway's routes beyond the model calls: model listings forwarded to the provider the caller's headers name,
// every other path a 404 in the provider's own shape naming the routes, named upstreams under /NAME/, and bodies
// the countdown cannot go into refused as 400s in the provider's shape before anything is reserved.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const budget = { 'x-envelope-task': 'bad-body', 'x-envelope-budget': '50000', 'x-envelope-policy': 'hard' };

describe('gateway: listings, unknown paths, named upstreams, bodies it cannot rewrite', () => {
  let sim: Sim;
  let gw: TestGateway;
  before(async () => {
    sim = await startSim({ outputTokens: 100 });
    gw = await startGateway({
      anthropicUrl: sim.url,
      openaiUrl: `${sim.url}/v1`,
      geminiUrl: sim.url,
      upstreams: [{ name: 'local', family: 'openai', url: `${sim.url}/v1` }],
    });
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  it('forwards GET /v1/models and /v1/models/{id} to the provider the caller’s headers name', async () => {
    const claude = new Anthropic({ apiKey: 'sk-ant', baseURL: gw.url, maxRetries: 0 });
    const gpt = new OpenAI({ apiKey: 'sk', baseURL: `${gw.url}/v1`, maxRetries: 0 });
    assert.ok((await claude.models.list()).data.every((m) => m.type === 'model' && m.id.startsWith('claude-')));
    assert.equal((await claude.models.retrieve('claude-sonnet-4-6')).display_name, 'claude-sonnet-4-6');
    assert.deepEqual((await gpt.models.list()).data.map((m) => m.object), ['model', 'model', 'model', 'model']);
    assert.equal((await gpt.models.retrieve('gpt-5')).owned_by, 'openai');
    const names: string[] = [];
    for await (const m of await new GoogleGenAI({ apiKey: 'gk', httpOptions: { baseUrl: gw.url } }).models.list()) names.push(m.name!);
    assert.ok(names.includes('models/gemini-2.5-flash'));
  });

  it('answers any other path with a 404 in the provider’s shape that names the routes', async () => {
    const anthropicStyle = await fetch(`${gw.url}/v1/complete`, { method: 'POST', headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' }, body: '{}' });
    const a = (await anthropicStyle.json()) as { type: string; error: { type: string; message: string } };
    assert.equal(anthropicStyle.status, 404);
    assert.deepEqual([a.type, a.error.type], ['error', 'not_found_error']);
    assert.match(a.error.message, /POST \/v1\/messages, .*POST \/v1\/responses/);
    const gpt = new OpenAI({ apiKey: 'sk', baseURL: `${gw.url}/v1`, maxRetries: 0 });
    await assert.rejects(gpt.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }), (e: unknown) => e instanceof OpenAI.NotFoundError && /Envelope serves no POST \/v1\/embeddings/.test(e.message));
    const g = await fetch(`${gw.url}/v1beta/models/gemini-2.5-flash:embedContent`, { method: 'POST', headers: { 'x-goog-api-key': 'k' }, body: '{}' });
    const ge = ((await g.json()) as { error: { status: string; code: number; message: string } }).error;
    assert.deepEqual([g.status, ge.status, ge.code], [404, 'NOT_FOUND', 404]);
    assert.match(ge.message, /POST \/v1beta\/models\/\{model\}:generateContent/);
  });

  it('serves a named upstream under /NAME/ with its family’s routes, budgeted', async () => {
    const gpt = new OpenAI({ apiKey: 'sk', baseURL: `${gw.url}/local/v1`, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'named-1', 'x-envelope-budget': '30000', 'x-envelope-meter': 'billed' } });
    const chat = await gpt.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] });
    const resp = await gpt.responses.create({ model: 'llama-3.1-8b', input: 'hi' });
    const row = await gw.ledger.task('named-1');
    assert.deepEqual([row.used, row.calls], [chat.usage!.total_tokens + resp.usage!.total_tokens, 2]);
    const log = ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Array<{ path: string }> }).requests;
    assert.deepEqual(log.slice(-2).map((r) => r.path), ['/v1/chat/completions', '/v1/responses']);
    const unknown = await fetch(`${gw.url}/local/v1/messages`, { method: 'POST', body: '{}' });
    assert.equal(unknown.status, 404);
  });

  it('refuses a last user message the countdown cannot go into as a 400 in the provider’s shape, holding nothing', async () => {
    const cases: Array<[string, Record<string, string>, (content: unknown) => unknown, (body: any) => string]> = [
      ['/v1/messages', { 'anthropic-version': '2023-06-01' }, (c) => ({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: c }] }), (b) => b.error.type],
      ['/v1/chat/completions', {}, (c) => ({ model: 'gpt-4.1', messages: [{ role: 'user', content: c }] }), (b) => b.error.type],
      ['/v1/responses', {}, (c) => ({ model: 'gpt-5', input: [{ role: 'user', content: c }] }), (b) => b.error.type],
      ['/v1beta/models/gemini-2.5-flash:generateContent', {}, (c) => ({ contents: [{ role: 'user', parts: c }] }), (b) => b.error.status],
    ];
    for (const [path, headers, make, kind] of cases) {
      for (const content of [42, {}, null]) {
        const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...budget, ...headers }, body: JSON.stringify(make(content)) });
        const body = (await res.json()) as unknown;
        assert.equal(res.status, 400, `${path} ${JSON.stringify(content)}`);
        assert.ok(['invalid_request_error', 'INVALID_ARGUMENT'].includes(kind(body)), JSON.stringify(body));
      }
    }
    // Refused before anything was reserved: the task was never even created.
    assert.equal(await gw.ledger.findTask('bad-body'), undefined);
  });
});
