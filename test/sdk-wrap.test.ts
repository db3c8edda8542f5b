// task.wrap(): the official SDKs budgeted in-process, with exactly the gateway's pipeline.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { openEnvelope, type Envelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, tempDbPath, type TestGateway } from './helpers/gateway.js';

const tool: Anthropic.Tool = { name: 'do_subtask', description: 'does one subtask', input_schema: { type: 'object', properties: { n: { type: 'number' } } } };

/** A 30-turn tool loop with an insistent driver; returns the turn refused (or 0). */
async function toolLoop(claude: Anthropic): Promise<number> {
  const system = 'You are a careful engineer. '.repeat(200);
  const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'job: 30 subtasks' }];
  for (let turn = 1; turn <= 30; turn++) {
    try {
      const res = await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 2_000, system, tools: [tool], messages: [...messages] });
      messages.push({ role: 'assistant', content: res.content });
      const use = res.content.find((b) => b.type === 'tool_use');
      messages.push(use ? { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'done' }] } : { role: 'user', content: 'continue' });
    } catch (e) {
      assert.ok(e instanceof Anthropic.APIError && e.status === 402, String(e));
      return turn;
    }
  }
  return 0;
}

describe('task.wrap() with the official SDKs', () => {
  let sim: Sim;
  let gw: TestGateway;
  let env: Envelope;
  before(async () => {
    sim = await startSim({ outputTokens: 1_500 });
    gw = await startGateway({ anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1` });
    env = await openEnvelope({ store: `sqlite:${tempDbPath()}`, sweepIntervalMs: 0 });
  });
  after(async () => {
    await env.close();
    await gw.close();
    await sim.close();
  });

  it('gives the same ledger figures in-process as through the gateway', async () => {
    const task = await env.task({ id: 'same-1', total: 30_000, policy: 'hard' });
    const inProcess = await toolLoop(task.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url })));
    const viaGateway = await toolLoop(
      new Anthropic({ apiKey: 'k', baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'same-1', 'x-envelope-budget': '30000', 'x-envelope-policy': 'hard' } }),
    );
    const a = await task.row();
    const b = await gw.ledger.task('same-1');
    assert.ok(inProcess > 1, 'the loop is refused within 30 turns');
    assert.equal(inProcess, viaGateway);
    assert.deepEqual([a.used, a.calls, a.reserved, a.state], [b.used, b.calls, b.reserved, b.state]);
  });

  it('surfaces a refusal as the SDK’s own 402 error, without retries', async () => {
    const task = await env.task({ id: 'refuse-1', total: 20_000, policy: 'hard', meter: 'billed' });
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const claude = task.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url, maxRetries: 2 }));
    await assert.rejects(
      claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user', content: 'x'.repeat(80_000) }] }),
      (e: any) => e instanceof Anthropic.APIError && e.status === 402 && /task refuse-1 has used 0 of 20,000 tokens/.test(e.message),
    );
    // Never forwarded (nor retried): the estimate was at the edge, so only its exact count was asked for.
    const log = (await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Array<{ path: string }> };
    assert.deepEqual(log.requests.map((r) => r.path), ['/v1/messages/count_tokens']);
  });

  it('settles streams, including one the caller abandons, for Anthropic and OpenAI', async () => {
    const task = await env.task({ id: 'stream-w', total: 100_000, policy: 'hard', meter: 'billed' });
    const claude = task.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url }));
    const msg = await claude.messages.stream({ model: 'claude-sonnet-4-6', max_tokens: 2_000, messages: [{ role: 'user', content: 'hello world!' }] }).finalMessage();
    const first = msg.usage.input_tokens + msg.usage.output_tokens;
    assert.equal(msg.usage.output_tokens, 1_500);
    assert.deepEqual([(await task.row()).used, (await task.row()).calls], [first, 1]);

    // Abandoned after the first event: the rest is still read and charged.
    const stream = await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 2_000, stream: true, messages: [{ role: 'user', content: 'hello world!' }] });
    for await (const _event of stream) break;
    for (let i = 0; i < 100 && (await task.row()).calls < 2; i++) await sleep(20);
    const row = await task.row();
    assert.equal(row.calls, 2);
    assert.equal(row.reserved, 0);
    // All 1,500 output tokens are charged, plus the input (the prompt and a countdown line of a few tokens).
    const input = row.used - first - 1_500;
    assert.ok(input >= 6 && input <= 40, `input charged ${input}`);

    const gpt = task.wrap(new OpenAI({ apiKey: 'k', baseURL: `${sim.url}/v1` }));
    const chunks = await gpt.chat.completions.create({ model: 'gpt-4.1', stream: true, messages: [{ role: 'user', content: 'hello world!' }] });
    let text = '';
    for await (const c of chunks) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text.length, 6_000);
    const after = await task.row();
    assert.deepEqual([after.calls, after.reserved], [3, 0]);
    assert.ok(after.used > row.used + 1_500);
  });
  it('covers beta.messages.create, with the native task budget and its beta header for a native model', async () => {
    const task = await env.task({ id: 'beta-1', total: 80_000, policy: 'hard', meter: 'billed' });
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const claude = task.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url }));
    const r = await claude.beta.messages.create({ model: 'claude-opus-4-7', max_tokens: 1_000, messages: [{ role: 'user', content: 'hi' }], betas: ['interleaved-thinking-2025-05-14'] });
    const log = (await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Array<{ raw: string; headers: Record<string, string> }> };
    const sent = log.requests.at(-1)!;
    assert.deepEqual(JSON.parse(sent.raw).output_config, { task_budget: { type: 'tokens', total: 80_000, remaining: 80_000 } });
    assert.equal(sent.headers['anthropic-beta'], 'interleaved-thinking-2025-05-14,task-budgets-2026-03-13');
    assert.equal((await task.row()).used, r.usage.input_tokens + r.usage.output_tokens);
  });

  it('charges what the provider generated when the caller breaks off a slow stream or aborts a call', async () => {
    // A provider that takes its time: each of the ~94 stream chunks after 3 ms, every answer after 60 ms.
    const slow = await startSim({ outputTokens: 1_500, chunkDelayMs: 3, latencyMs: 60 });
    try {
      const task = await env.task({ id: 'abandon-slow', total: 100_000, policy: 'hard', meter: 'billed' });
      const claude = task.wrap(new Anthropic({ apiKey: 'k', baseURL: slow.url, maxRetries: 0 }));
      const settledCalls = async (n: number) => {
        for (let i = 0; i < 200 && (await task.row()).calls < n; i++) await sleep(20);
        return task.row();
      };
      const params = { model: 'claude-sonnet-4-6', max_tokens: 2_000, messages: [{ role: 'user' as const, content: 'hello world!' }] };
      const stream = await claude.messages.create({ ...params, stream: true });
      for await (const _event of stream) {
        // Unbuffered: the first event is here while the call is still held, unsettled, in the ledger.
        const during = await task.row();
        assert.deepEqual([during.calls, during.callsReserved, during.used], [0, 1, 0]);
        break;
      }
      const one = await settledCalls(1);
      // Message 3 + "hello world!" 3 + the countdown line (79 characters: 20 tokens) + all 1,500 generated.
      assert.deepEqual([one.used, one.calls, one.reserved], [3 + 3 + 20 + 1_500, 1, 0]);

      const stop = new AbortController();
      setTimeout(() => stop.abort(), 20);
      await assert.rejects(claude.messages.create(params, { signal: stop.signal }), (e: unknown) => e instanceof Anthropic.APIUserAbortError);
      const two = await settledCalls(2);
      // The countdown now reads "… 1,526 of 100,000 tokens used (1%); 98,474 tokens remaining." (82 characters: 21 tokens).
      assert.deepEqual([two.used - one.used, two.calls, two.reserved], [3 + 3 + 21 + 1_500, 2, 0]);
    } finally {
      await slow.close();
    }
  });
});
