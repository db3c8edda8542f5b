// Bodies and answers no real client or provider sends (issue 14 item 12): a request nested 200,000 levels deep is a
// 400 in the provider's shape before anything is reserved (it was a 502 "Maximum call stack size exceeded" from the
// gateway's own encoder), and usage a provider reports past any call's reach is charged as the call's hold, with a
// usage_estimated event, instead of growing `used` without limit.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { openEnvelope, type Envelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, tempDbPath, type TestGateway } from './helpers/gateway.js';
import { sendJson, startFakeProvider, type FakeProvider } from './helpers/fake-provider.js';

const DEPTH = 200_000;
/** A JSON value nested DEPTH arrays deep, written out as text (no encoder could). */
const deep = (depth = DEPTH): string => `${'['.repeat(depth)}"x"${']'.repeat(depth)}`;

const budget = { 'x-envelope-budget': '50000', 'x-envelope-policy': 'hard', 'x-envelope-meter': 'billed' };

describe('gateway: hostile bodies and absurd usage', () => {
  let sim: Sim;
  let absurd: FakeProvider;
  let gw: TestGateway;
  let env: Envelope;
  before(async () => {
    sim = await startSim({ outputTokens: 50 });
    // A provider whose usage is past any call's reach; `x-fake-output` picks the output count it reports.
    absurd = await startFakeProvider((req, res) =>
      sendJson(res, 200, {
        id: 'chatcmpl-1',
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: Number(req.headers['x-fake-input'] ?? 10), completion_tokens: Number(req.headers['x-fake-output'] ?? 5) },
      }),
    );
    gw = await startGateway({ anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1`, geminiUrl: sim.url, upstreams: [{ name: 'absurd', family: 'openai', url: `${absurd.url}/v1` }] });
    env = await openEnvelope({ store: `sqlite:${tempDbPath()}`, sweepIntervalMs: 0 });
  });
  after(async () => {
    await env.close();
    await gw.close();
    await absurd.close();
    await sim.close();
  });

  it('refuses a body nested 200,000 deep as a 400 in the provider’s shape on every route, creating and holding nothing', async () => {
    const cases: Array<[string, Record<string, string>, string, (b: any) => string]> = [
      ['/v1/messages', { 'anthropic-version': '2023-06-01' }, `{"model":"claude-sonnet-4-6","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"metadata":${deep()}}`, (b) => b.error.type],
      ['/v1/messages', { 'anthropic-version': '2023-06-01' }, `{"model":"claude-sonnet-4-6","max_tokens":100,"system":${deep()},"messages":[{"role":"user","content":"hi"}]}`, (b) => b.error.type],
      ['/v1/messages/count_tokens', { 'anthropic-version': '2023-06-01' }, `{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":${deep()}}]}`, (b) => b.error.type],
      ['/v1/chat/completions', {}, `{"model":"gpt-4.1","messages":[{"role":"user","content":[{"type":"text","text":"hi","x":${deep()}}]}]}`, (b) => b.error.type],
      ['/v1/responses', {}, `{"model":"gpt-5","input":[{"role":"user","content":"hi"}],"tools":${deep()}}`, (b) => b.error.type],
      ['/v1beta/models/gemini-2.5-flash:generateContent', {}, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"x":${deep()}}}`, (b) => b.error.status],
      ['/v1', {}, deep(), (b) => b.error.type],
    ];
    for (const [i, [path, headers, body, kind]] of cases.entries()) {
      const res = await fetch(`${gw.url}${path === '/v1' ? '/v1/chat/completions' : path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers, ...budget, 'x-envelope-task': `deep-${i}` }, body });
      const answer = (await res.json()) as any;
      assert.equal(res.status, 400, `${path}: ${JSON.stringify(answer).slice(0, 200)}`);
      assert.ok(['invalid_request_error', 'INVALID_ARGUMENT'].includes(kind(answer)), JSON.stringify(answer));
      assert.match(JSON.stringify(answer), /more than 512 levels deep/);
      assert.equal(await gw.ledger.findTask(`deep-${i}`), undefined);
    }
    // 512 levels is still a body (the provider judges it); the gateway forwards and charges it.
    const ok = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...budget, 'x-envelope-task': 'deep-ok' },
      body: `{"model":"claude-sonnet-4-6","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"metadata":{"x":${deep(510)}}}`,
    });
    assert.equal(ok.status, 200);
    assert.deepEqual([(await gw.ledger.task('deep-ok')).reserved, (await gw.ledger.task('deep-ok')).calls], [0, 1]);
  });

  it('refuses it in-process too (task.wrap), before anything is reserved', async () => {
    const task = await env.task({ id: 'deep-wrap', total: 50_000, policy: 'hard' });
    const gpt = task.wrap(new OpenAI({ apiKey: 'k', baseURL: `${sim.url}/v1`, maxRetries: 0 }));
    let nested: unknown = 'x';
    for (let i = 0; i < 600; i++) nested = [nested];
    await assert.rejects(
      gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], metadata: { x: nested } as never }),
      (e: any) => e.status === 400 && /more than 512 levels deep/.test(e.message),
    );
    assert.deepEqual([(await task.row()).reserved, (await task.row()).calls], [0, 0]);
  });

  it('charges usage past any call’s reach as the call’s hold, with a clear event, and rounds a fractional count up', async () => {
    const gpt = (task: string, headers: Record<string, string>): OpenAI =>
      new OpenAI({ apiKey: 'k', baseURL: `${gw.url}/absurd/v1`, maxRetries: 0, defaultHeaders: { ...budget, 'x-envelope-task': task, ...headers } });
    const messages = [{ role: 'user' as const, content: 'hi' }];
    await gpt('absurd-1', { 'x-fake-output': '1e15', 'x-fake-input': '9000000000000000' }).chat.completions.create({ model: 'gpt-4.1', messages, max_tokens: 2_000 });
    const row = await gw.ledger.task('absurd-1');
    // The hold: the input estimate and the output cap the provider was given.
    const held = Math.ceil((JSON.stringify({ model: 'gpt-4.1', messages, max_tokens: 2_000 }).length + 320) / 3) + 2_000;
    assert.deepEqual([row.used, row.reserved, row.calls], [held, 0, 1]);
    const [event] = (await gw.ledger.events({ taskId: 'absurd-1' })).filter((e) => e.type === 'usage_estimated');
    assert.deepEqual([event!.data.reason, event!.data.charged, (event!.data.reported as any).outputTokens], ['usage_implausible', held, 1e15]);
    // Ten times the largest context window is still believed.
    await gpt('absurd-2', { 'x-fake-input': '20000000' }).chat.completions.create({ model: 'gpt-4.1', messages, max_tokens: 2_000 });
    assert.equal((await gw.ledger.task('absurd-2')).used, 20_000_005);
    // A fractional count is charged whole (the ledger refused it before, and the call was charged nothing).
    await gpt('absurd-3', { 'x-fake-output': '10.5' }).chat.completions.create({ model: 'gpt-4.1', messages, max_tokens: 2_000 });
    assert.deepEqual([(await gw.ledger.task('absurd-3')).used, (await gw.ledger.task('absurd-3')).reserved], [21, 0]);
  });
});
