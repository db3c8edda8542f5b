// The gateway with the official Anthropic SDK over loopback to envelope sim: refusal at the right call, exact
// ledger figures, streams (also cut by the client), the cached prefix left intact, native task budgets.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Anthropic from '@anthropic-ai/sdk';
import { COUNTDOWN_ADVICE } from '../src/budget/countdown.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { textTokens } from '../src/sim/tokens.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { fromAnthropic, LoopMeter } from './helpers/loop-meter.js';

type Params = Anthropic.MessageCreateParamsNonStreaming;
const tool: Anthropic.Tool = { name: 'do_subtask', description: 'does one subtask', input_schema: { type: 'object', properties: { n: { type: 'number' } } } };
const total = (u: Anthropic.Usage): number => u.input_tokens + u.output_tokens + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0);

interface Logged {
  auth: string;
  headers: Record<string, string>;
  raw: string;
}
async function upstreamLog(sim: Sim): Promise<Logged[]> {
  return ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Logged[] }).requests;
}
/** Tokens the simulator counts for the countdown block the gateway appended to the last request. */
async function countdownTokens(sim: Sim): Promise<number> {
  const body = JSON.parse((await upstreamLog(sim)).at(-1)!.raw) as Params;
  const last = body.messages.at(-1)!.content as Anthropic.TextBlockParam[];
  return textTokens(last.at(-1)!.text);
}

describe('gateway: Anthropic Messages', () => {
  let sim: Sim;
  let gw: TestGateway;
  const client = (task: Record<string, string>, key = 'sk-ant-secret-key-123'): Anthropic =>
    new Anthropic({ apiKey: key, baseURL: gw.url, maxRetries: 0, defaultHeaders: task });

  before(async () => {
    sim = await startSim({ outputTokens: 200, chunkChars: 32 });
    gw = await startGateway({ anthropicUrl: sim.url });
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  it('lets an agent that ignores the countdown spend at least 95 % of a 30,000-token hard budget, never more, and tells it to stop first', async () => {
    const claude = client({ 'x-envelope-task': 'loop-1', 'x-envelope-budget': '30000', 'x-envelope-policy': 'hard', 'x-sim-output-tokens': '1500' });
    const system = 'You are a careful engineer. '.repeat(200); // 5,600 characters
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'job: 40 subtasks' }];
    const meter = new LoopMeter();
    let refusedAt = 0;
    let stopTold = 0;
    for (let turn = 1; turn <= 40 && !refusedAt; turn++) {
      const params: Params = { model: 'claude-sonnet-4-6', max_tokens: 2_000, system, tools: [tool], messages: [...messages] };
      try {
        const res = await claude.messages.create(params);
        meter.charge(fromAnthropic(res.usage));
        if ((await upstreamLog(sim)).at(-1)!.raw.includes(COUNTDOWN_ADVICE.stop)) stopTold ||= turn;
        messages.push({ role: 'assistant', content: res.content });
        const use = res.content.find((b) => b.type === 'tool_use');
        // An insistent driver: it keeps the agent working even after it wraps up, to reach the hard limit. Each
        // tool result is ~3 KB, as a file read would be.
        const result = `subtask output ${'x'.repeat(3_000)}`;
        messages.push(use ? { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: result }] } : { role: 'user', content: `continue ${result}` });
      } catch (e) {
        assert.ok(e instanceof Anthropic.APIError);
        assert.equal(e.status, 402);
        assert.equal((e.error as { error: { type: string } }).error.type, 'budget_exceeded_error');
        assert.match(e.message, /task loop-1 has used [\d,]+ of 30,000 tokens and this call needs at least [\d,]+ tokens; approve more with: envelope approve loop-1 --add \d+/);
        refusedAt = turn;
      }
    }
    const row = await gw.ledger.task('loop-1');
    // The ledger charged exactly what the loop meter makes of the provider's usage, and held nothing back.
    assert.deepEqual([row.used, row.reserved, row.calls, row.meter], [meter.used, 0, refusedAt - 1, 'loop']);
    assert.ok(refusedAt > 1, 'refused at some point');
    assert.ok(row.used <= 30_000 && row.used >= 0.95 * 30_000, `used ${row.used}`);
    // "Stop and report" reached the model on the last call admitted, before the refusal.
    assert.equal(stopTold, refusedAt - 1);
  });

  it('settles streams from message_start + message_delta, with budget headers and the closing comment', async () => {
    // Billed: every token of both calls, input from message_start and output from message_delta.
    const claude = client({ 'x-envelope-task': 'stream-1', 'x-envelope-budget': '40000', 'x-envelope-meter': 'billed' });
    const params: Params = { model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user', content: 'hello world!' }] };
    const first = await claude.messages.stream(params).finalMessage();
    // "hello world!" is 6 tokens with its message; the countdown the gateway appended is counted too.
    assert.deepEqual([first.usage.input_tokens, first.usage.output_tokens], [6 + (await countdownTokens(sim)), 200]);
    const firstUsed = total(first.usage);
    const raw = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-x', 'x-envelope-task': 'stream-1' },
      body: JSON.stringify({ ...params, stream: true }),
    });
    assert.equal(raw.headers.get('x-envelope-budget-used'), String(firstUsed));
    assert.equal(raw.headers.get('x-envelope-budget-state'), 'active');
    const text = await raw.text();
    const secondUsed = 6 + (await countdownTokens(sim)) + 200;
    const comment = text.trimEnd().split('\n').at(-1)!;
    const used = firstUsed + secondUsed;
    assert.equal(comment, `: envelope {"task":"stream-1","used":${used},"remaining":${40_000 - used},"state":"active"}`);
    const row = await gw.ledger.task('stream-1');
    assert.deepEqual([row.used, row.calls], [used, 2]);
  });

  it('charges a stream the client cut for everything the provider generated', async () => {
    const slow = await startSim({ outputTokens: 300, chunkChars: 16, chunkDelayMs: 5 });
    const gw2 = await startGateway({ anthropicUrl: slow.url });
    try {
      const controller = new AbortController();
      const res = await fetch(`${gw2.url}/v1/messages`, {
        method: 'POST',
        signal: controller.signal,
        headers: { 'content-type': 'application/json', 'x-api-key': 'k', 'x-envelope-task': 'cut-1', 'x-envelope-budget': '20000', 'x-envelope-meter': 'billed' },
        body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 1_000, stream: true, messages: [{ role: 'user', content: 'hello world!' }] }),
      });
      const reader = res.body!.getReader();
      const firstChunk = await reader.read();
      assert.ok(!firstChunk.done);
      controller.abort();
      // The gateway keeps reading the provider's stream to learn the real usage: all 300 output tokens.
      for (let i = 0; i < 200 && (await gw2.ledger.task('cut-1')).calls === 0; i++) await sleep(25);
      const row = await gw2.ledger.task('cut-1');
      assert.deepEqual([row.used, row.reserved, row.calls], [6 + (await countdownTokens(slow)) + 300, 0, 1]);
    } finally {
      await gw2.close();
      await slow.close();
    }
  });

  it('leaves the cached prefix byte-identical while the countdown changes', async () => {
    const claude = client({ 'x-envelope-task': 'cache-1', 'x-envelope-budget': '60000', 'x-sim-output-tokens': '400' });
    const system: Anthropic.TextBlockParam[] = [{ type: 'text', text: 'Reference manual. '.repeat(300), cache_control: { type: 'ephemeral' } }];
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'job: 4 subtasks' }];
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const sent: Params[] = [];
    const reads: number[] = [];
    for (let turn = 0; turn < 3; turn++) {
      const params: Params = { model: 'claude-sonnet-4-6', max_tokens: 1_000, system, tools: [tool], messages: [...messages] };
      sent.push(params);
      const res = await claude.messages.create(params);
      reads.push(res.usage.cache_read_input_tokens ?? 0);
      const use = res.content.find((b) => b.type === 'tool_use')!;
      messages.push({ role: 'assistant', content: res.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: (use as Anthropic.ToolUseBlock).id, content: 'ok' }] });
    }
    const upstream = (await upstreamLog(sim)).map((r) => JSON.parse(r.raw) as Params);
    const countdowns = upstream.map((u, i) => {
      // Everything before the last user turn reaches the provider exactly as the client sent it.
      assert.equal(JSON.stringify(u.system), JSON.stringify(sent[i]!.system));
      assert.equal(JSON.stringify(u.tools), JSON.stringify(sent[i]!.tools));
      assert.equal(JSON.stringify(u.messages.slice(0, -1)), JSON.stringify(sent[i]!.messages.slice(0, -1)));
      const last = u.messages.at(-1)!.content as Anthropic.ContentBlockParam[];
      const client = sent[i]!.messages.at(-1)!.content;
      const clientBlocks = typeof client === 'string' ? [{ type: 'text', text: client }] : client;
      assert.equal(JSON.stringify(last.slice(0, -1)), JSON.stringify(clientBlocks));
      return (last.at(-1) as Anthropic.TextBlockParam).text;
    });
    assert.equal(new Set(countdowns).size, 3);
    assert.match(countdowns[1]!, /^\[Envelope task budget\] [\d,]+ of 60,000 tokens used \(\d+%\); [\d,]+ tokens remaining\.$/);
    // The provider read the system prompt from its cache on every call after the first.
    assert.deepEqual(reads.map((r) => r > 0), [false, true, true]);
  });

  it('sends native task budgets with the beta header, fresh only when a turn starts', async () => {
    const claude = client({ 'x-envelope-task': 'native-1', 'x-envelope-budget': '100000' });
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'job: 2 subtasks' }];
    const r1 = await claude.messages.create({ model: 'claude-opus-4-7', max_tokens: 1_000, tools: [tool], messages: [...messages] });
    const use = r1.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
    messages.push({ role: 'assistant', content: r1.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'ok' }] });
    const r2 = await claude.messages.create({ model: 'claude-opus-4-7', max_tokens: 1_000, tools: [tool], messages: [...messages] });
    messages.push({ role: 'assistant', content: r2.content }, { role: 'user', content: 'a new request' });
    await claude.messages.create({ model: 'claude-opus-4-7', max_tokens: 1_000, tools: [tool], messages: [...messages] });
    const log = await upstreamLog(sim);
    const budgets = log.map((r) => (JSON.parse(r.raw) as { output_config?: { task_budget?: unknown } }).output_config?.task_budget);
    // In the task's meter (loop): the first call's output, then the second's output and what it added.
    const meter = new LoopMeter();
    const afterFirst = 100_000 - meter.charge(fromAnthropic(r1.usage));
    const afterSecond = afterFirst - meter.charge(fromAnthropic(r2.usage));
    assert.deepEqual(budgets, [
      { type: 'tokens', total: 100_000, remaining: 100_000 },
      // Same turn (tool results): the value sent at the turn's start, so Anthropic's cache stays valid.
      { type: 'tokens', total: 100_000, remaining: 100_000 },
      { type: 'tokens', total: 100_000, remaining: afterSecond },
    ]);
    assert.ok(afterFirst > afterSecond);
    for (const r of log) {
      assert.match(r.headers['anthropic-beta'] ?? '', /task-budgets-2026-03-13/);
      assert.ok(!r.raw.includes('[Envelope task budget]'));
    }
  });

  it('lets a carried remaining lower the ledger, never raise it', async () => {
    const claude = client({});
    const body = (remaining: number): Params => ({
      model: 'claude-sonnet-4-6',
      max_tokens: 500,
      messages: [{ role: 'user', content: 'compacted context' }],
      output_config: { task_budget: { type: 'tokens', total: 50_000, remaining } },
    } as Params);
    const first = await claude.messages.create(body(50_000)).withResponse();
    const task = first.response.headers.get('x-envelope-task')!;
    assert.match(task, /^conv-[0-9a-f]{24}$/);
    const afterFirst = (await gw.ledger.task(task)).used;
    // The loop meter: a first call's output; the same context again adds no input.
    assert.equal(afterFirst, first.data.usage.output_tokens);
    // 40,000 left by the client's count: what the ledger never saw is charged (down to 40,000 left), then the call.
    const second = await claude.messages.create(body(40_000));
    const lowered = await gw.ledger.task(task);
    assert.equal(lowered.used, 10_000 + second.usage.output_tokens);
    // A remaining above the ledger's is ignored: only the call is charged.
    const third = await claude.messages.create(body(49_000));
    assert.equal((await gw.ledger.task(task)).used, lowered.used + third.usage.output_tokens);
    const upstream = JSON.parse((await upstreamLog(sim)).at(-1)!.raw) as Record<string, unknown>;
    assert.equal(upstream.output_config, undefined, 'a model without native budgets gets no task_budget field');
  });

  it('passes both auth styles through untouched and stores no key', async () => {
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const bearer = new Anthropic({ authToken: 'sk-ant-bearer-secret-456', apiKey: null, baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'auth-1', 'x-envelope-budget': '20000' } });
    await bearer.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-header-secret-789', 'anthropic-version': '2023-06-01', 'x-envelope-task': 'auth-1' },
      body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(res.status, 200);
    const log = await upstreamLog(sim);
    assert.deepEqual(log.map((r) => r.auth), ['bearer', 'x-api-key']);
    // Whatever anthropic-version the client sends reaches the provider.
    assert.match(log[0]!.headers['anthropic-version'] ?? '', /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(log[1]!.headers['anthropic-version'], '2023-06-01');
    assert.ok(log.every((r) => !('x-envelope-task' in r.headers)));
    const stored = readFileSync(gw.dbPath).toString('latin1') + readFileSync(`${gw.dbPath}-wal`).toString('latin1');
    for (const key of ['sk-ant-secret-key-123', 'sk-ant-bearer-secret-456', 'sk-ant-header-secret-789']) assert.ok(!stored.includes(key));
    assert.ok(COUNTDOWN_ADVICE.stop.length > 0);
  });
});
