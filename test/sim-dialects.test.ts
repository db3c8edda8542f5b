// The simulator's OpenAI Responses and Gemini dialects and its model listings, driven directly by the official SDKs:
// exact usage as each API shapes it, streams, tool calls, previous_response_id, thoughts billed apart.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';
import { anthropic } from '../src/providers/anthropic.js';
import { gemini as geminiProvider } from '../src/providers/gemini.js';
import { startSim, type Sim } from '../src/sim/server.js';

const tokens = (text: string): number => Math.ceil(text.length / 4);

describe('envelope sim: Responses, Gemini, model listings', () => {
  let sim: Sim;
  let gpt: OpenAI;
  let gemini: GoogleGenAI;
  before(async () => {
    sim = await startSim({ outputTokens: 200 });
    gpt = new OpenAI({ apiKey: 'sk-sim', baseURL: `${sim.url}/v1`, maxRetries: 0 });
    gemini = new GoogleGenAI({ apiKey: 'gm-sim-key', httpOptions: { baseUrl: sim.url } });
  });
  after(() => sim.close());

  it('answers Responses calls with OpenAI’s usage, JSON and streamed', async () => {
    const json = await gpt.responses.create({ model: 'gpt-5', input: 'hello world!', max_output_tokens: 1_000 });
    // One user message: 3 + "hello world!" 3.
    assert.deepEqual(json.usage, { input_tokens: 6, input_tokens_details: { cached_tokens: 0 }, output_tokens: 200, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 206 });
    assert.equal(json.output_text.length, 800);
    assert.equal(json.status, 'completed');
    const stream = gpt.responses.stream({ model: 'gpt-5', input: 'hello world!' }, { headers: { 'x-sim-reasoning-tokens': '50' } });
    const types = new Set<string>();
    for await (const ev of stream) types.add(ev.type);
    const final = await stream.finalResponse();
    // Reasoning is part of output_tokens, never added to it.
    assert.deepEqual([final.usage?.output_tokens, final.usage?.output_tokens_details.reasoning_tokens, final.usage?.total_tokens], [250, 50, 256]);
    assert.equal(final.output_text.length, 800);
    for (const t of ['response.created', 'response.output_text.delta', 'response.output_item.done', 'response.completed']) assert.ok(types.has(t), t);
    const cut = await gpt.responses.create({ model: 'gpt-5', input: 'hello world!', max_output_tokens: 60 });
    assert.deepEqual([cut.status, cut.incomplete_details?.reason, cut.usage?.output_tokens], ['incomplete', 'max_output_tokens', 60]);
  });

  it('runs a function-call loop on previous_response_id, counting the held context as input', async () => {
    const tools = [{ type: 'function' as const, name: 'do_subtask', description: 'one subtask', parameters: { type: 'object', properties: { n: { type: 'number' } } }, strict: false }];
    const first = await gpt.responses.create({ model: 'gpt-5', tools, input: 'job: 2 subtasks', max_output_tokens: 1_000 });
    const call = first.output.find((o) => o.type === 'function_call');
    assert.ok(call && call.type === 'function_call');
    assert.deepEqual([call.name, JSON.parse(call.arguments)], ['do_subtask', { n: 1 }]);
    const toolTokens = tokens(JSON.stringify(tools));
    assert.equal(first.usage?.input_tokens, toolTokens + 3 + tokens('job: 2 subtasks'));
    const second = await gpt.responses.create({
      model: 'gpt-5',
      tools,
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'ok' }],
      max_output_tokens: 1_000,
    });
    const again = second.output.find((o) => o.type === 'function_call');
    assert.ok(again && again.type === 'function_call' && JSON.parse(again.arguments).n === 2);
    const message = first.output.find((o) => o.type === 'message')!;
    const held = first.usage!.input_tokens + itemTokens(message) + 3 + tokens(`do_subtask${call.arguments}`) + 3 + tokens('ok');
    assert.equal(second.usage?.input_tokens, held);
    await assert.rejects(gpt.responses.create({ model: 'gpt-5', previous_response_id: 'resp_nope', input: 'x' }), (e: any) => e.status === 400 && /not found/.test(e.message));
  });

  it('answers Gemini generateContent and streamGenerateContent with usageMetadata, thoughts apart', async () => {
    const json = await gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello world!', config: { maxOutputTokens: 1_000 } });
    assert.deepEqual(
      [json.usageMetadata?.promptTokenCount, json.usageMetadata?.candidatesTokenCount, json.usageMetadata?.thoughtsTokenCount, json.usageMetadata?.totalTokenCount],
      [6, 200, undefined, 206],
    );
    assert.equal(json.text?.length, 800);
    const stream = await gemini.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hello world!', config: { httpOptions: { headers: { 'x-sim-reasoning-tokens': '40' } } } });
    let text = '';
    let last;
    for await (const chunk of stream) {
      text += chunk.text ?? '';
      last = chunk;
    }
    assert.equal(text.length, 800);
    // Thoughts are billed as output, outside candidatesTokenCount.
    assert.deepEqual([last?.usageMetadata?.candidatesTokenCount, last?.usageMetadata?.thoughtsTokenCount, last?.usageMetadata?.totalTokenCount], [200, 40, 246]);
    assert.equal(last?.candidates?.[0]?.finishReason, 'STOP');
    const counted = await gemini.models.countTokens({ model: 'gemini-2.5-flash', contents: 'hello world!' });
    assert.equal(counted.totalTokens, 6);
    const cut = await gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello world!', config: { maxOutputTokens: 50 } });
    assert.deepEqual([cut.usageMetadata?.candidatesTokenCount, cut.candidates?.[0]?.finishReason], [50, 'MAX_TOKENS']);
  });

  it('runs a Gemini function-call loop', async () => {
    const config = { tools: [{ functionDeclarations: [{ name: 'do_subtask', description: 'one subtask', parametersJsonSchema: { type: 'object' } }] }] };
    const first = await gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: 'job: 2 subtasks', config });
    assert.deepEqual(first.functionCalls?.map((c) => [c.name, c.args]), [['do_subtask', { n: 1 }]]);
    const second = await gemini.models.generateContent({
      model: 'gemini-2.5-flash',
      config,
      contents: [
        { role: 'user', parts: [{ text: 'job: 2 subtasks' }] },
        first.candidates![0]!.content!,
        { role: 'user', parts: [{ functionResponse: { name: 'do_subtask', response: { result: 'ok' } } }] },
      ],
    });
    assert.deepEqual(second.functionCalls?.map((c) => c.args), [{ n: 2 }]);
  });

  it('gives the exact input count a provider offers for the admission step near the edge (count_tokens, :countTokens)', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${sim.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'k' }, body: JSON.stringify(body) }).then((r) => r.json());
    const messages = { model: 'claude-sonnet-4-6', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'hello world!' }] };
    assert.equal(await anthropic.countInputTokens!({ body: messages, path: '/v1/messages', post }), 6);
    const contents = { contents: [{ role: 'user', parts: [{ text: 'hello world!' }] }], generationConfig: { maxOutputTokens: 100 } };
    assert.equal(await geminiProvider.countInputTokens!({ body: contents, path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent', post }), 6);
  });

  it('lists models in each provider’s shape, and keeps Gemini’s key out of its log', async () => {
    const openaiModels = await gpt.models.list();
    assert.ok(openaiModels.data.some((m) => m.id === 'gpt-5'));
    assert.equal((await gpt.models.retrieve('gpt-4.1')).owned_by, 'openai');
    const claude = new Anthropic({ apiKey: 'sk-ant-sim', baseURL: sim.url, maxRetries: 0 });
    const anthropicModels = await claude.models.list();
    assert.ok(anthropicModels.data.some((m) => m.id === 'claude-sonnet-4-6' && m.type === 'model'));
    const pager = await gemini.models.list();
    const names: string[] = [];
    for await (const m of pager) names.push(m.name!);
    assert.ok(names.includes('models/gemini-2.5-pro'));
    await fetch(`${sim.url}/v1beta/models/gemini-2.5-flash:generateContent?key=gm-secret-in-url`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    });
    const log = JSON.stringify(await (await fetch(`${sim.url}/sim/requests`)).json());
    assert.ok(!log.includes('gm-secret') && !log.includes('gm-sim-key'), log.slice(0, 300));
  });
});

function itemTokens(item: { type: string; content?: unknown }): number {
  const parts = (item.content ?? []) as Array<{ text?: string }>;
  return 3 + parts.reduce((n, p) => n + (typeof p.text === 'string' ? tokens(p.text) : 0), 0);
}
