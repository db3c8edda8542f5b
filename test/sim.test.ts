// The simulated provider, driven directly by the official SDKs: exact usage, caching, the scripted agent, faults.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { COUNTDOWN_ADVICE } from '../src/budget/countdown.js';
import { startSim, type Sim } from '../src/sim/server.js';

const tool = { name: 'do_subtask', description: 'do one subtask', input_schema: { type: 'object' as const, properties: { n: { type: 'number' } } } };

describe('envelope sim', () => {
  let sim: Sim;
  let claude: Anthropic;
  let gpt: OpenAI;
  before(async () => {
    sim = await startSim({ outputTokens: 200 });
    claude = new Anthropic({ apiKey: 'sk-ant-sim', baseURL: sim.url, maxRetries: 0 });
    gpt = new OpenAI({ apiKey: 'sk-sim', baseURL: `${sim.url}/v1`, maxRetries: 0 });
  });
  after(() => sim.close());

  it('reports exact Anthropic usage, JSON and streaming', async () => {
    // "hello world!" is 12 characters: 3 tokens, plus 3 for the message.
    const params = { model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user' as const, content: 'hello world!' }] };
    const json = await claude.messages.create(params);
    assert.deepEqual(
      [json.usage.input_tokens, json.usage.output_tokens, json.usage.cache_creation_input_tokens, json.usage.cache_read_input_tokens],
      [6, 200, 0, 0],
    );
    assert.equal(json.stop_reason, 'end_turn');
    const streamed = await claude.messages.stream(params).finalMessage();
    assert.deepEqual([streamed.usage.input_tokens, streamed.usage.output_tokens], [6, 200]);
    const short = await claude.messages.create({ ...params, max_tokens: 50 });
    assert.deepEqual([short.usage.output_tokens, short.stop_reason], [50, 'max_tokens']);
    const counted = await claude.messages.countTokens({ model: params.model, messages: params.messages });
    assert.equal(counted.input_tokens, 6);
  });

  it('writes a cache prefix once and reads it after', async () => {
    const system = [{ type: 'text' as const, text: 'x'.repeat(5_000), cache_control: { type: 'ephemeral' as const } }];
    const params = { model: 'claude-sonnet-4-6', max_tokens: 100, system, messages: [{ role: 'user' as const, content: 'hello world!' }] };
    const first = await claude.messages.create(params);
    assert.deepEqual([first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens, first.usage.input_tokens], [1_250, 0, 6]);
    const second = await claude.messages.create(params);
    assert.deepEqual([second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens, second.usage.input_tokens], [0, 1_250, 6]);
  });

  it('reports exact OpenAI usage, JSON and streaming with include_usage', async () => {
    const params = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hello world!' }], max_completion_tokens: 1_000 };
    const json = await gpt.chat.completions.create(params);
    assert.deepEqual([json.usage?.prompt_tokens, json.usage?.completion_tokens, json.usage?.prompt_tokens_details?.cached_tokens], [6, 200, 0]);
    const stream = await gpt.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | undefined;
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text.length, 800);
    assert.deepEqual([usage?.prompt_tokens, usage?.completion_tokens], [6, 200]);
  });

  it('runs a tool loop and obeys the countdown', async () => {
    const first = await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 1_000, tools: [tool], messages: [{ role: 'user', content: 'job: 3 subtasks' }] });
    const use = first.content.find((b) => b.type === 'tool_use');
    assert.ok(use && use.type === 'tool_use');
    assert.deepEqual(use.input, { n: 1 });
    const wrap = await claude.messages.create({
      model: 'claude-sonnet-4-6',
      max_tokens: 1_000,
      tools: [tool],
      messages: [
        { role: 'user', content: 'job: 3 subtasks' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'ok' }, { type: 'text', text: `[budget] ${COUNTDOWN_ADVICE.wrap_up}` }] },
      ],
    });
    assert.equal(wrap.stop_reason, 'end_turn');
    assert.match((wrap.content[0] as { text: string }).text, /^Wrapping up: 1 of 3 subtasks complete/);
    const openaiFirst = await gpt.chat.completions.create({
      model: 'gpt-4.1',
      tools: [{ type: 'function', function: { name: 'do_subtask', parameters: { type: 'object' } } }],
      messages: [{ role: 'user', content: 'job: 2 subtasks' }],
    });
    assert.equal(openaiFirst.choices[0]?.finish_reason, 'tool_calls');
  });

  it('injects faults the SDKs surface, and records auth styles without keys', async () => {
    const params = { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user' as const, content: 'hi' }] };
    await assert.rejects(claude.messages.create(params, { headers: { 'x-sim-fault': '529' } }), (e: any) => e.status === 529);
    await assert.rejects(claude.messages.create(params, { headers: { 'x-sim-fault': 'malformed' } }));
    await assert.rejects(claude.messages.create(params, { headers: { 'x-sim-fault': 'reset' } }), (e: any) => /connection/i.test(e.message));
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const bearer = new Anthropic({ authToken: 'sk-ant-bearer', apiKey: null, baseURL: sim.url, maxRetries: 0 });
    await bearer.messages.create(params);
    // SDK 1.x sends Authorization: Bearer; SDK 0.x and the Vercel AI SDK send x-api-key.
    const res = await fetch(`${sim.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-header', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify(params),
    });
    assert.equal(res.status, 200);
    const log = (await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Array<{ auth: string; headers: Record<string, string> }> };
    assert.deepEqual(log.requests.map((r) => r.auth), ['bearer', 'x-api-key']);
    assert.ok(!JSON.stringify(log).includes('sk-ant'));
  });
});
