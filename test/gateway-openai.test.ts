// The gateway with the official OpenAI SDK: JSON and streaming usage, include_usage forced, countdown, refusal.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const used = (u: OpenAI.CompletionUsage): number => u.prompt_tokens + u.completion_tokens;

describe('gateway: OpenAI chat completions', () => {
  let sim: Sim;
  let gw: TestGateway;
  before(async () => {
    sim = await startSim({ outputTokens: 300 });
    gw = await startGateway({ openaiUrl: `${sim.url}/v1` });
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  it('counts JSON and streamed calls exactly, asking upstream for usage', async () => {
    const gpt = new OpenAI({ apiKey: 'sk-openai-secret', baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'oa-1', 'x-envelope-budget': '25000', 'x-envelope-policy': 'hard', 'x-envelope-meter': 'billed' } });
    const json = await gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hello world!' }], max_completion_tokens: 1_000 });
    // The client asked for no usage in the stream; the gateway asks upstream for it and settles from it.
    const stream = await gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hello again!' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text.length, 1_200);
    const log = ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Array<{ raw: string }> }).requests;
    const upstream = JSON.parse(log.at(-1)!.raw) as { stream_options: unknown; max_completion_tokens: number; messages: Array<{ content: unknown }> };
    assert.deepEqual(upstream.stream_options, { include_usage: true });
    // No max tokens from the client: the gateway sets the default it reserved for.
    assert.equal(upstream.max_completion_tokens, 4_096);
    const parts = upstream.messages.at(-1)!.content as Array<{ type: string; text: string }>;
    assert.equal(parts[0]!.text, 'hello again!');
    assert.match(parts[1]!.text, /^\[Envelope task budget\] [\d,]+ of 25,000 tokens used/);
    const streamedPrompt = 3 + Math.ceil('hello again!'.length / 4) + Math.ceil(parts[1]!.text.length / 4);
    const row = await gw.ledger.task('oa-1');
    assert.deepEqual([row.used, row.calls, row.reserved], [used(json.usage!) + streamedPrompt + 300, 2, 0]);
  });

  it('refuses in OpenAI’s error shape when not even the floor fits, and creates no task', async () => {
    // Billed: the first call's 60,000 characters count (the loop meter would let a first call's input through).
    const gpt = new OpenAI({ apiKey: 'sk', baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'oa-2', 'x-envelope-budget': '20000', 'x-envelope-policy': 'hard', 'x-envelope-meter': 'billed' } });
    await assert.rejects(
      gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'x'.repeat(60_000) }] }),
      (e: any) => e.status === 402 && e.error?.type === 'budget_exceeded' && e.error?.code === 'budget_exceeded' && /task oa-2 has used 0 of 20,000 tokens/.test(e.message),
    );
    assert.equal(await gw.ledger.findTask('oa-2'), undefined);
  });
});
