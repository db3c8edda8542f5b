// An upstream that dies mid-stream (issue 14 item 6, SPEC §2): what it delivered is charged as an estimate, never
// zero, with a `usage_estimated` event — through the gateway for every dialect, in-process (task.wrap) and for the
// AI SDK middleware. Before, OpenAI streams cut after ~4,500 output tokens left used 0, and Anthropic streams were
// charged message_start's input and 1 token.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { streamText, wrapLanguageModel } from 'ai';
import type { StoredEvent } from '../src/budget/types.js';
import type { Ledger } from '../src/ledger/ledger.js';
import { aiSdkBodyBytes } from '../src/providers/ai-sdk.js';
import { openEnvelope, type Envelope } from '../src/sdk/envelope.js';
import { startGateway, tempDbPath, type TestGateway } from './helpers/gateway.js';
import { sendJson, startFakeProvider, type FakeProvider } from './helpers/fake-provider.js';
import { startStreamingProvider, type StreamDialect } from './helpers/fake-streams.js';

/** ~4,500 output tokens of text, as the issue measured: 281 deltas of 64 characters. */
const DELTAS = 281;
const TEXT = 'x'.repeat(64);
/** What the meters make of them: a token per 3 bytes (they overestimate a little: the text is 4,496 tokens at 4 a token). */
const DELIVERED_TOKENS = Math.ceil((DELTAS * TEXT.length) / 3);
const INPUT_TOKENS = 10;
const OUTPUT_TOKENS = 4_496;

/** The input a reservation estimates for a conversation's first call: bytes ÷ 3 with the countdown's room. */
const estimatedInput = (bodyBytes: number): number => Math.ceil((bodyBytes + 320) / 3);

const budgetHeaders = (task: string): Record<string, string> => ({ 'x-envelope-task': task, 'x-envelope-budget': '100000', 'x-envelope-policy': 'hard', 'x-envelope-meter': 'billed' });

const calls: Record<StreamDialect, { path: string; body: unknown; headers: Record<string, string> }> = {
  anthropic: { path: '/v1/messages', body: { model: 'claude-sonnet-4-6', max_tokens: 20_000, stream: true, messages: [{ role: 'user', content: 'write' }] }, headers: { 'anthropic-version': '2023-06-01', 'x-api-key': 'k' } },
  openai: { path: '/v1/chat/completions', body: { model: 'gpt-4.1', max_tokens: 20_000, stream: true, messages: [{ role: 'user', content: 'write' }] }, headers: { authorization: 'Bearer k' } },
  responses: { path: '/v1/responses', body: { model: 'gpt-5', max_output_tokens: 20_000, stream: true, input: 'write' }, headers: { authorization: 'Bearer k' } },
  gemini: { path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', body: { contents: [{ role: 'user', parts: [{ text: 'write' }] }], generationConfig: { maxOutputTokens: 20_000 } }, headers: { 'x-goog-api-key': 'k' } },
};

async function estimatedEvents(ledger: Ledger, taskId: string): Promise<StoredEvent[]> {
  return (await ledger.events({ taskId })).filter((e) => e.type === 'usage_estimated');
}

describe('an upstream that dies mid-stream is charged what it delivered', () => {
  let provider: FakeProvider;
  let bare: FakeProvider;
  let gw: TestGateway;
  let env: Envelope;
  before(async () => {
    provider = await startStreamingProvider((h) => ({ deltas: DELTAS, text: TEXT, inputTokens: INPUT_TOKENS, outputTokens: OUTPUT_TOKENS, cut: h['x-fake-cut'] === 'yes' }));
    // A compatible server that answers JSON without any usage.
    bare = await startFakeProvider((_req, res) => sendJson(res, 200, { id: 'chatcmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: TEXT.repeat(30) }, finish_reason: 'stop' }] }));
    gw = await startGateway({ anthropicUrl: provider.url, openaiUrl: `${provider.url}/v1`, geminiUrl: provider.url, upstreams: [{ name: 'bare', family: 'openai', url: `${bare.url}/v1` }] });
    env = await openEnvelope({ store: `sqlite:${tempDbPath()}`, sweepIntervalMs: 0 });
  });
  after(async () => {
    await env.close();
    await gw.close();
    await provider.close();
    await bare.close();
  });

  for (const dialect of ['anthropic', 'openai', 'responses', 'gemini'] as const) {
    it(`${dialect}: a cut stream is charged its input and the output it delivered; a whole one its usage`, async () => {
      const { path, body, headers } = calls[dialect];
      const raw = JSON.stringify(body);
      const send = (task: string, cut: boolean): Promise<Response> =>
        fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers, ...budgetHeaders(task), ...(cut ? { 'x-fake-cut': 'yes' } : {}) }, body: raw });
      const cut = await send(`cut-${dialect}`, true);
      const text = await cut.text();
      // Anthropic and Gemini said the input before the stream broke; OpenAI's dialects said nothing: the estimate stands.
      const input = dialect === 'anthropic' || dialect === 'gemini' ? INPUT_TOKENS : estimatedInput(raw.length);
      const row = await gw.ledger.task(`cut-${dialect}`);
      assert.deepEqual([row.used, row.reserved, row.callsReserved, row.calls], [input + DELIVERED_TOKENS, 0, 0, 1]);
      const [event, ...more] = await estimatedEvents(gw.ledger, `cut-${dialect}`);
      assert.equal(more.length, 0);
      assert.deepEqual([event!.data.reason, event!.data.charged], ['stream_cut', input + DELIVERED_TOKENS]);
      // The client learns that the stream broke, and the settled figures.
      assert.match(text, /upstream stream broke/);
      assert.match(text, new RegExp(`: envelope \\{"task":"cut-${dialect}","used":${input + DELIVERED_TOKENS},`));
      // The same answer, whole: its own usage, no estimate.
      await (await send(`whole-${dialect}`, false)).text();
      const whole = await gw.ledger.task(`whole-${dialect}`);
      assert.deepEqual([whole.used, whole.reserved], [INPUT_TOKENS + OUTPUT_TOKENS, 0]);
      assert.equal((await estimatedEvents(gw.ledger, `whole-${dialect}`)).length, 0);
    });
  }

  it('charges a JSON answer without usage (a compatible server) what it delivered, and passes it on', async () => {
    const raw = JSON.stringify({ model: 'llama', max_tokens: 2_000, messages: [{ role: 'user', content: 'write' }] });
    const res = await fetch(`${gw.url}/bare/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...budgetHeaders('no-usage') }, body: raw });
    const answer = await res.text();
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(answer) as { choices: unknown[] }).choices.length, 1);
    const row = await gw.ledger.task('no-usage');
    const charged = estimatedInput(raw.length) + Math.ceil(Buffer.byteLength(answer) / 3);
    assert.deepEqual([row.used, row.reserved], [charged, 0]);
    const [event] = await estimatedEvents(gw.ledger, 'no-usage');
    assert.deepEqual([event!.data.reason, event!.data.charged], ['no_usage', charged]);
  });

  it('in-process: task.wrap() charges a cut stream what it delivered (OpenAI and Anthropic)', async () => {
    const oTask = await env.task({ id: 'wrap-cut-openai', total: 100_000, policy: 'hard', meter: 'billed' });
    const gpt = oTask.wrap(new OpenAI({ apiKey: 'k', baseURL: `${provider.url}/v1`, maxRetries: 0, defaultHeaders: { 'x-fake-cut': 'yes' } }));
    const params = { model: 'gpt-4.1', max_tokens: 20_000, stream: true as const, messages: [{ role: 'user' as const, content: 'write' }] };
    let seen = 0;
    await assert.rejects(async () => {
      for await (const chunk of await gpt.chat.completions.create(params)) seen += chunk.choices[0]?.delta?.content?.length ?? 0;
    });
    assert.equal(seen, DELTAS * TEXT.length, 'every delta reached the caller before the stream broke');
    const oRow = await oTask.row();
    assert.deepEqual([oRow.used, oRow.reserved], [estimatedInput(JSON.stringify(params).length) + DELIVERED_TOKENS, 0]);
    assert.equal((await estimatedEvents(env.ledger, 'wrap-cut-openai')).length, 1);

    const aTask = await env.task({ id: 'wrap-cut-anthropic', total: 100_000, policy: 'hard', meter: 'billed' });
    const claude = aTask.wrap(new Anthropic({ apiKey: 'k', baseURL: provider.url, maxRetries: 0, defaultHeaders: { 'x-fake-cut': 'yes' } }));
    await assert.rejects(async () => {
      for await (const _ of await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 20_000, stream: true, messages: [{ role: 'user', content: 'write' }] }));
    });
    const aRow = await aTask.row();
    assert.deepEqual([aRow.used, aRow.reserved], [INPUT_TOKENS + DELIVERED_TOKENS, 0]);
  });

  it('the AI SDK middleware charges a stream that broke before its finish part what it delivered', async () => {
    const task = await env.task({ id: 'ai-cut', total: 100_000, policy: 'hard', meter: 'billed' });
    const parts: Array<Record<string, unknown>> = [
      { type: 'stream-start', warnings: [] },
      { type: 'text-start', id: 't1' },
      ...Array.from({ length: DELTAS }, () => ({ type: 'text-delta', id: 't1', delta: TEXT })),
    ];
    let prompt: unknown;
    const model = {
      specificationVersion: 'v3' as const,
      provider: 'openai.chat',
      modelId: 'gpt-4.1',
      supportedUrls: {},
      doGenerate: () => Promise.reject(new Error('not used')),
      doStream: async (options: { prompt: unknown }) => {
        prompt = options.prompt;
        let i = 0;
        return {
          stream: new ReadableStream({
            pull(controller) {
              if (i < parts.length) controller.enqueue(parts[i++]);
              else controller.error(new Error('the provider went away'));
            },
          }),
        };
      },
    };
    const wrapped = wrapLanguageModel({ model: model as never, middleware: task.middleware() });
    const result = streamText({ model: wrapped, prompt: 'write', maxOutputTokens: 20_000, maxRetries: 0, onError: () => undefined });
    let text = '';
    await assert.rejects(async () => {
      for await (const t of result.textStream) text += t;
    }, /the provider went away/);
    assert.equal(text.length, DELTAS * TEXT.length);
    const row = await task.row();
    // The prompt as the middleware saw it (before its countdown went in): the base of the input estimate.
    const sent = prompt as Array<{ role: string; content: Array<{ type: string }> }>;
    const asSeen = sent.map((m) => (m.role === 'user' ? { ...m, content: m.content.slice(0, 1) } : m));
    assert.deepEqual([row.used, row.reserved], [estimatedInput(aiSdkBodyBytes({ prompt: asSeen as never })) + DELIVERED_TOKENS, 0]);
    const [event] = await estimatedEvents(env.ledger, 'ai-cut');
    assert.equal(event!.data.reason, 'stream_cut');
  });
});
