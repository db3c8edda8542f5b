// Gemini through the gateway and in-process, driven by the real clients: @google/genai (JSON, stream, countTokens),
// the AI SDK's google() — each counted exactly (thoughts billed as output), the countdown a text part of the last
// user content, maxOutputTokens lowered before a refusal, and the caller's ?key= passed on, never logged.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { ApiError, GoogleGenAI, type GenerateContentResponseUsageMetadata } from '@google/genai';
import { generateText, jsonSchema, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { openEnvelope, type Envelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { stopProcess } from '../bench/processes.js';
import { startGateway, tempDbPath, type TestGateway } from './helpers/gateway.js';
import { startCli } from './helpers/process.js';

const billed = (u: GenerateContentResponseUsageMetadata | undefined): number => (u?.promptTokenCount ?? 0) + (u?.candidatesTokenCount ?? 0) + (u?.thoughtsTokenCount ?? 0);
// Billed: these tests check the usage each answer reports, token by token (the loop meter would leave first inputs out).
const task = (id: string, budget: number, policy = 'hard') => ({ 'x-envelope-task': id, 'x-envelope-budget': String(budget), 'x-envelope-policy': policy, 'x-envelope-meter': 'billed' });
type Logged = { path: string; raw: string };

describe('gateway and task.wrap(): Gemini', () => {
  let sim: Sim;
  let gw: TestGateway;
  let env: Envelope;
  const requests = async (): Promise<Logged[]> => ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Logged[] }).requests;
  const client = (headers: Record<string, string>) => new GoogleGenAI({ apiKey: 'gm-secret-key', httpOptions: { baseUrl: gw.url, headers } });
  before(async () => {
    sim = await startSim({ outputTokens: 300 });
    gw = await startGateway({ geminiUrl: sim.url });
    env = await openEnvelope({ store: `sqlite:${tempDbPath()}`, sweepIntervalMs: 0 });
  });
  after(async () => {
    await env.close();
    await gw.close();
    await sim.close();
  });

  it('counts generateContent and generateContentStream exactly, thoughts as output, the countdown a text part', async () => {
    const gemini = client(task('gm-1', 25_000));
    const json = await gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello world!', config: { maxOutputTokens: 1_000 } });
    const sent = JSON.parse((await requests()).at(-1)!.raw) as { contents: Array<{ parts: Array<{ text: string }> }>; generationConfig: { maxOutputTokens: number } };
    assert.equal(sent.contents[0]!.parts[0]!.text, 'hello world!');
    assert.match(sent.contents[0]!.parts[1]!.text, /^\[Envelope task budget\] 0 of 25,000 tokens used/);
    assert.equal(sent.generationConfig.maxOutputTokens, 1_000);
    const stream = await gemini.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hello again!', config: { httpOptions: { headers: { 'x-sim-reasoning-tokens': '60' } } } });
    let last;
    let text = '';
    for await (const chunk of stream) {
      text += chunk.text ?? '';
      last = chunk;
    }
    assert.equal(text.length, 1_200);
    assert.equal(last?.usageMetadata?.thoughtsTokenCount, 60);
    const row = await gw.ledger.task('gm-1');
    assert.deepEqual([row.used, row.calls, row.reserved], [billed(json.usageMetadata) + billed(last?.usageMetadata), 2, 0]);
    // countTokens is forwarded, not budgeted.
    const counted = await gemini.models.countTokens({ model: 'gemini-2.5-flash', contents: 'hello world!' });
    assert.equal(counted.totalTokens, 6);
    assert.equal((await gw.ledger.task('gm-1')).calls, 2);
  });

  it('runs a function-call loop, lowers maxOutputTokens, then refuses with the SDK’s ApiError', async () => {
    const gemini = client(task('gm-2', 21_000));
    const config = { maxOutputTokens: 2_000, tools: [{ functionDeclarations: [{ name: 'do_subtask', parametersJsonSchema: { type: 'object' } }] }] };
    const contents: Array<{ role: string; parts: unknown[] }> = [{ role: 'user', parts: [{ text: 'job: 2 subtasks' }] }];
    let spent = 0;
    for (let i = 0; i < 3; i++) {
      const r = await gemini.models.generateContent({ model: 'gemini-2.5-pro', contents: contents as never, config });
      spent += billed(r.usageMetadata);
      const call = r.functionCalls?.[0];
      if (!call) break;
      contents.push(r.candidates![0]!.content as never, { role: 'user', parts: [{ functionResponse: { name: call.name, response: { result: 'ok' } } }] });
    }
    const row = await gw.ledger.task('gm-2');
    assert.deepEqual([row.used, row.calls, row.reserved], [spent, 3, 0]);
    await gemini.models.generateContent({ model: 'gemini-2.5-pro', contents: 'a long one', config: { maxOutputTokens: 19_000 } });
    const cap = (JSON.parse((await requests()).at(-1)!.raw) as { generationConfig: { maxOutputTokens: number } }).generationConfig.maxOutputTokens;
    assert.ok(cap < 19_000 && cap >= 1_024, `cap ${cap}`);
    await assert.rejects(
      gemini.models.generateContent({ model: 'gemini-2.5-pro', contents: 'x'.repeat(90_000) }),
      (e: unknown) => e instanceof ApiError && e.status === 402 && /RESOURCE_EXHAUSTED|task gm-2 has used/.test(e.message),
    );
  });

  it('envelope serve --gemini-url: passes ?key= upstream untouched and never logs it', async () => {
    const serve = await startCli(['serve', '--port', '0', '--store', `sqlite:${tempDbPath()}`, '--gemini-url', sim.url, '--log-level', 'info']);
    try {
      const res = await fetch(`${serve.url}/v1beta/models/gemini-2.5-flash:generateContent?key=gm-query-secret`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...task('gm-3', 20_000) },
        body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-envelope-task'), 'gm-3');
      // The simulator saw the key (and logs it redacted itself).
      assert.equal((await requests()).at(-1)!.path, '/v1beta/models/gemini-2.5-flash:generateContent?key=[redacted]');
      const sse = await fetch(`${serve.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=gm-query-secret`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-goog-api-key': 'gm-secret-key' },
        body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
      });
      assert.match(sse.headers.get('content-type') ?? '', /text\/event-stream/);
      assert.match(await sse.text(), /"finishReason":"STOP"/);
    } finally {
      await stopProcess(serve.child);
    }
    const out = serve.stdout();
    const calls = out.split('\n').filter((l) => l.includes('"model call"'));
    assert.equal(calls.length, 2);
    assert.ok(!out.includes('gm-query-secret') && !out.includes('gm-secret-key'));
  });

  it('runs the AI SDK’s google() through the gateway, and task.wrap(new GoogleGenAI()) and the middleware in-process', async () => {
    const google = createGoogleGenerativeAI({ apiKey: 'gk', baseURL: `${gw.url}/v1beta`, headers: task('gm-ai', 40_000) });
    const doSubtask = tool({ description: 'one subtask', inputSchema: jsonSchema<{ n: number }>({ type: 'object', properties: { n: { type: 'number' } } }), execute: async ({ n }) => `done ${n}` });
    const result = await generateText({ model: google('gemini-2.5-flash'), tools: { do_subtask: doSubtask }, prompt: 'job: 2 subtasks', stopWhen: stepCountIs(10) });
    assert.equal(result.steps.length, 3);
    const ai = await gw.ledger.task('gm-ai');
    assert.deepEqual([ai.used, ai.calls, ai.reserved], [result.totalUsage.totalTokens, 3, 0]);

    const t = await env.task({ id: 'gm-wrap', total: 30_000, policy: 'hard', meter: 'billed' });
    const gemini = t.wrap(new GoogleGenAI({ apiKey: 'gk', httpOptions: { baseUrl: sim.url } }));
    const json = await gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello world!' });
    let last;
    for await (const chunk of await gemini.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hello again!' })) last = chunk;
    const row = await t.row();
    assert.deepEqual([row.used, row.calls, row.reserved], [billed(json.usageMetadata) + billed(last?.usageMetadata), 2, 0]);
    await assert.rejects(gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x'.repeat(150_000) }), (e: unknown) => e instanceof ApiError && e.status === 402);

    const m = await env.task({ id: 'gm-mw', total: 30_000, policy: 'hard', meter: 'billed' });
    const model = wrapLanguageModel({ model: createGoogleGenerativeAI({ apiKey: 'gk', baseURL: `${sim.url}/v1beta` })('gemini-2.5-flash'), middleware: m.middleware() });
    const s = streamText({ model, prompt: 'hello', maxOutputTokens: 500 });
    await s.consumeStream();
    const mr = await m.row();
    assert.deepEqual([mr.used, mr.calls, mr.reserved], [(await s.totalUsage).totalTokens, 1, 0]);
  });
});
