// task.middleware() with the Vercel AI SDK: generateText and streamText, tools and multi-step loops, stopWhen.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { APICallError, generateText, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { z } from 'zod';
import { openEnvelope, type Envelope } from '../src/sdk/envelope.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSim, type Sim } from '../src/sim/server.js';
import { tempDbPath } from './helpers/gateway.js';
import { LoopMeter } from './helpers/loop-meter.js';

/** What the loop meter makes of the AI SDK's steps (their inputTokens include cached ones). */
function loopUsed(steps: ReadonlyArray<{ usage: { inputTokens?: number; outputTokens?: number } }>): number {
  const meter = new LoopMeter();
  for (const s of steps) meter.charge({ input: s.usage.inputTokens ?? 0, output: s.usage.outputTokens ?? 0 });
  return meter.used;
}

const tools = { do_subtask: tool({ description: 'does one subtask', inputSchema: z.object({ n: z.number() }), execute: async ({ n }) => `subtask ${n} done` }) };

describe('task.middleware() with the Vercel AI SDK', () => {
  let sim: Sim;
  let env: Envelope;
  before(async () => {
    sim = await startSim({ outputTokens: 800 });
    env = await openEnvelope({ store: `sqlite:${tempDbPath()}`, sweepIntervalMs: 0 });
  });
  after(async () => {
    await env.close();
    await sim.close();
  });

  it('budgets a multi-step generateText tool loop and counts exactly what the provider reported', async () => {
    const task = await env.task({ id: 'ai-gen', total: 50_000, policy: 'hard' });
    const anthropic = createAnthropic({ apiKey: 'k', baseURL: `${sim.url}/v1` });
    const model = wrapLanguageModel({ model: anthropic('claude-sonnet-4-6'), middleware: task.middleware() });
    const result = await generateText({ model, tools, prompt: 'job: 4 subtasks', maxOutputTokens: 2_000, stopWhen: [stepCountIs(20), task.stopWhenExhausted()] });
    assert.equal(result.steps.length, 5);
    assert.match(result.text, /All 4 subtasks complete/);
    const row = await task.row();
    const u = result.totalUsage;
    assert.deepEqual([row.used, row.calls, row.reserved, row.tokensUsed], [loopUsed(result.steps), 5, 0, (u.inputTokens ?? 0) + (u.outputTokens ?? 0)]);
    const log = (await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Array<{ raw: string }> };
    assert.match(log.requests.at(-1)!.raw, /\[Envelope task budget\] [\d,]+ of 50,000 tokens used/);
  });

  it('ends a streamText loop with stopWhen once the task is exhausted', async () => {
    // Advisory with 50 % overrun: calls go on past 100 %, and only the stop condition ends the 40-subtask job.
    const task = await env.task({ id: 'ai-stop', total: 20_000, policy: 'advisory', overrun: 0.5 });
    const openai = createOpenAI({ apiKey: 'k', baseURL: `${sim.url}/v1` });
    const model = wrapLanguageModel({ model: openai.chat('gpt-4.1'), middleware: task.middleware() });
    const result = streamText({
      model,
      tools,
      prompt: 'job: 40 subtasks',
      maxOutputTokens: 9_000,
      // An agent that never heeds the countdown: only the stop condition ends it.
      headers: { 'x-sim-output-tokens': '8000', 'x-sim-agent': 'ignores-budget' },
      stopWhen: [stepCountIs(60), task.stopWhenExhausted()],
    });
    await result.consumeStream();
    const steps = await result.steps;
    const total = await result.totalUsage;
    const row = await task.row();
    // Loop meter: step 1 is its 8,000 output tokens (40 %), each later step 8,000 and the tool result it added;
    // step 3 ends past 100 %: the stop.
    assert.deepEqual(steps.map((s) => s.finishReason), ['tool-calls', 'tool-calls', 'tool-calls']);
    assert.deepEqual([row.used, row.calls, row.reserved, row.state, row.tokensUsed], [loopUsed(steps), 3, 0, 'exhausted', (total.inputTokens ?? 0) + (total.outputTokens ?? 0)]);
    assert.ok(row.used > 20_000 && row.used <= 30_000, `used ${row.used}`);
  });

  it('refuses with the SDK’s own APICallError (402, the provider’s error body), without retries', async () => {
    // Billed: a first call's input is held (the loop meter would let it through).
    const task = await env.task({ id: 'ai-refuse', total: 20_000, policy: 'hard', meter: 'billed' });
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const anthropic = createAnthropic({ apiKey: 'k', baseURL: `${sim.url}/v1` });
    const model = wrapLanguageModel({ model: anthropic('claude-sonnet-4-6'), middleware: task.middleware() });
    await assert.rejects(generateText({ model, prompt: 'x'.repeat(60_000), maxRetries: 2 }), (e: unknown) => {
      assert.ok(APICallError.isInstance(e), String(e));
      assert.deepEqual([e.statusCode, e.isRetryable], [402, false]);
      assert.deepEqual(e.data, { type: 'error', error: { type: 'budget_exceeded_error', message: e.message } });
      assert.match(e.message, /^task ai-refuse has used 0 of 20,000 tokens and this call needs at least 21,151 tokens/);
      return true;
    });
    const log = (await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: unknown[] };
    assert.deepEqual([log.requests.length, (await task.row()).reserved, (await task.row()).calls], [0, 0, 0]);
  });

  it('charges what the provider generated when the caller aborts a slow stream or call', async () => {
    // A provider that takes its time: each of the ~94 stream chunks after 3 ms, every answer after 60 ms.
    const slow = await startSim({ outputTokens: 1_500, chunkDelayMs: 3, latencyMs: 60 });
    try {
      const task = await env.task({ id: 'ai-abandon', total: 50_000, policy: 'hard', meter: 'billed' });
      const openai = createOpenAI({ apiKey: 'k', baseURL: `${slow.url}/v1` });
      const model = wrapLanguageModel({ model: openai.chat('gpt-4.1'), middleware: task.middleware() });
      const settledCalls = async (n: number) => {
        for (let i = 0; i < 200 && (await task.row()).calls < n; i++) await sleep(20);
        return task.row();
      };
      const countdownTokens = () => {
        const sent = JSON.parse(slow.context.log.at(-1)!.raw) as { messages: Array<{ content: Array<{ text: string }> }> };
        return Math.ceil(sent.messages[0]!.content[1]!.text.length / 4);
      };

      const stop = new AbortController();
      const result = streamText({ model, prompt: 'hello world!', maxOutputTokens: 2_000, abortSignal: stop.signal });
      for await (const _text of result.textStream) {
        // Unbuffered: the first text is here while the call is still held, unsettled, in the ledger.
        const during = await task.row();
        assert.deepEqual([during.calls, during.callsReserved, during.used], [0, 1, 0]);
        break;
      }
      stop.abort();
      const one = await settledCalls(1);
      // Message 3 + "hello world!" 3 + the countdown line + all 1,500 generated.
      assert.deepEqual([one.used, one.calls, one.reserved], [3 + 3 + countdownTokens() + 1_500, 1, 0]);

      const stop2 = new AbortController();
      setTimeout(() => stop2.abort(), 20);
      await assert.rejects(generateText({ model, prompt: 'hello world!', maxOutputTokens: 2_000, abortSignal: stop2.signal, maxRetries: 0 }), (e: Error) => e.name === 'AbortError');
      const two = await settledCalls(2);
      assert.deepEqual([two.used - one.used, two.calls, two.reserved], [3 + 3 + countdownTokens() + 1_500, 2, 0]);
    } finally {
      await slow.close();
    }
  });
});
