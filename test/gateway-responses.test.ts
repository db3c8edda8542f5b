// OpenAI Responses through the gateway and in-process, driven by the real clients: the OpenAI SDK (create, stream,
// previous_response_id), the OpenAI Agents SDK's default tool loop, the AI SDK's openai(), LangChain's ChatOpenAI
// with useResponsesApi — each counted exactly against the ledger, the countdown reaching the model, refusals as 402s.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, OpenAIProvider, run, Runner, setDefaultOpenAIClient, setTracingDisabled, tool } from '@openai/agents';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, jsonSchema, stepCountIs, tool as aiTool, wrapLanguageModel } from 'ai';
import OpenAI from 'openai';
import { z } from 'zod';
import { openEnvelope, type Envelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, tempDbPath, type TestGateway } from './helpers/gateway.js';

const total = (u: { input_tokens: number; output_tokens: number } | null | undefined): number => (u ? u.input_tokens + u.output_tokens : 0);
// Billed: these tests check the usage each answer reports, token by token (the loop meter would leave first inputs out).
const task = (id: string, budget: number, policy = 'hard') => ({ 'x-envelope-task': id, 'x-envelope-budget': String(budget), 'x-envelope-policy': policy, 'x-envelope-meter': 'billed' });
type Logged = { path: string; raw: string };

describe('gateway and task.wrap(): OpenAI Responses', () => {
  let sim: Sim;
  let gw: TestGateway;
  let env: Envelope;
  const requests = async (): Promise<Logged[]> => ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Logged[] }).requests;
  before(async () => {
    setTracingDisabled(true);
    sim = await startSim({ outputTokens: 300 });
    gw = await startGateway({ openaiUrl: `${sim.url}/v1` });
    env = await openEnvelope({ store: `sqlite:${tempDbPath()}`, sweepIntervalMs: 0 });
  });
  after(async () => {
    await env.close();
    await gw.close();
    await sim.close();
  });

  it('counts JSON and streamed calls exactly, with the countdown as an input_text of the last user item', async () => {
    const gpt = new OpenAI({ apiKey: 'sk-openai-secret', baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: task('rs-1', 25_000) });
    const json = await gpt.responses.create({ model: 'gpt-5', input: 'hello world!', max_output_tokens: 1_000 });
    const sent = JSON.parse((await requests()).at(-1)!.raw) as { input: Array<{ role: string; content: Array<{ type: string; text: string }> }>; max_output_tokens: number };
    assert.equal(sent.input.length, 1);
    assert.deepEqual(sent.input[0]!.content.map((p) => p.type), ['input_text', 'input_text']);
    assert.match(sent.input[0]!.content[1]!.text, /^\[Envelope task budget\] 0 of 25,000 tokens used/);
    assert.equal(sent.max_output_tokens, 1_000);
    // Streamed, with 40 reasoning tokens: output_tokens holds them; the ledger counts them once.
    const stream = gpt.responses.stream({ model: 'gpt-5', input: [{ role: 'user', content: 'hello again!' }] }, { headers: { 'x-sim-reasoning-tokens': '40' } });
    const final = await stream.finalResponse();
    assert.deepEqual([final.usage?.output_tokens, final.usage?.output_tokens_details.reasoning_tokens], [340, 40]);
    const upstream = JSON.parse((await requests()).at(-1)!.raw) as { max_output_tokens: number };
    // No cap from the client: the gateway sets the default it reserved for.
    assert.equal(upstream.max_output_tokens, 4_096);
    const row = await gw.ledger.task('rs-1');
    assert.deepEqual([row.used, row.calls, row.reserved], [total(json.usage) + total(final.usage), 2, 0]);
  });

  it('budgets a function-call loop on previous_response_id, and lowers max_output_tokens before it refuses', async () => {
    const gpt = new OpenAI({ apiKey: 'sk', baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: task('rs-2', 24_000) });
    const tools = [{ type: 'function' as const, name: 'do_subtask', parameters: { type: 'object', properties: { n: { type: 'number' } } }, strict: false }];
    let previous = await gpt.responses.create({ model: 'gpt-5', tools, input: 'job: 3 subtasks', max_output_tokens: 2_000 });
    let spent = total(previous.usage);
    for (let i = 0; i < 3; i++) {
      const call = previous.output.find((o) => o.type === 'function_call');
      if (!call || call.type !== 'function_call') break;
      previous = await gpt.responses.create({ model: 'gpt-5', tools, previous_response_id: previous.id, input: [{ type: 'function_call_output', call_id: call.call_id, output: 'done' }], max_output_tokens: 2_000 });
      spent += total(previous.usage);
    }
    assert.match(previous.output_text, /All 3 subtasks complete/);
    // After tool outputs the countdown is one more user item, after every cached prefix.
    const last = JSON.parse((await requests()).at(-1)!.raw) as { input: Array<{ type?: string; role?: string }> };
    assert.deepEqual(last.input.map((i) => i.type ?? i.role), ['function_call_output', 'message']);
    const row = await gw.ledger.task('rs-2');
    assert.deepEqual([row.used, row.calls, row.reserved], [spent, 4, 0]);
    // What is left cannot hold 23,000 output tokens: the cap is lowered to what fits.
    const big = await gpt.responses.create({ model: 'gpt-5', input: 'one more', max_output_tokens: 23_000 });
    const cap = (JSON.parse((await requests()).at(-1)!.raw) as { max_output_tokens: number }).max_output_tokens;
    assert.ok(cap < 24_000 - spent && cap >= 1_024, `cap ${cap}`);
    assert.equal(big.status, 'completed');
  });

  it('refuses in OpenAI’s error shape, which the SDK does not retry', async () => {
    const gpt = new OpenAI({ apiKey: 'sk', baseURL: `${gw.url}/v1`, defaultHeaders: task('rs-3', 20_000) });
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    await assert.rejects(
      gpt.responses.create({ model: 'gpt-5', input: 'x'.repeat(60_000) }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 402 && (e.error as { type?: string })?.type === 'budget_exceeded' && /task rs-3 has used 0 of 20,000 tokens/.test(e.message),
    );
    // Never forwarded, and never retried by the SDK (402).
    assert.equal((await requests()).length, 0);
  });

  it('runs the OpenAI Agents SDK’s default Responses tool loop, counted exactly', async () => {
    const client = new OpenAI({ apiKey: 'sk', baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: task('rs-agents', 40_000) });
    setDefaultOpenAIClient(client);
    const doSubtask = tool({ name: 'do_subtask', description: 'does one subtask', parameters: z.object({ n: z.number() }), execute: async ({ n }) => `subtask ${n} done` });
    const agent = new Agent({ name: 'worker', instructions: 'Work through the job.', tools: [doSubtask], model: 'gpt-5' });
    const result = await run(agent, 'job: 3 subtasks', { maxTurns: 10 });
    assert.match(String(result.finalOutput), /All 3 subtasks complete/);
    const reported = result.rawResponses.reduce((n, r) => n + r.usage.inputTokens + r.usage.outputTokens, 0);
    const row = await gw.ledger.task('rs-agents');
    assert.deepEqual([row.used, row.calls, row.reserved], [reported, 4, 0]);
  });

  it('runs the AI SDK’s openai() (Responses) and LangChain’s useResponsesApi through the gateway', async () => {
    const openai = createOpenAI({ apiKey: 'sk', baseURL: `${gw.url}/v1`, headers: task('rs-ai', 40_000) });
    const doSubtask = aiTool({ description: 'one subtask', inputSchema: jsonSchema<{ n: number }>({ type: 'object', properties: { n: { type: 'number' } } }), execute: async ({ n }) => `done ${n}` });
    const result = await generateText({ model: openai('gpt-5'), tools: { do_subtask: doSubtask }, prompt: 'job: 2 subtasks', stopWhen: stepCountIs(10) });
    assert.equal(result.steps.length, 3);
    const ai = await gw.ledger.task('rs-ai');
    assert.deepEqual([ai.used, ai.calls, ai.reserved], [result.totalUsage.totalTokens, 3, 0]);
    const chat = new ChatOpenAI({ model: 'gpt-5', apiKey: 'sk', useResponsesApi: true, maxRetries: 0, configuration: { baseURL: `${gw.url}/v1`, defaultHeaders: task('rs-lc', 20_000) } });
    const answer = await chat.invoke('hello there');
    const lc = await gw.ledger.task('rs-lc');
    assert.deepEqual([lc.used, lc.calls, lc.reserved], [answer.usage_metadata!.total_tokens, 1, 0]);
    const refused = new ChatOpenAI({ model: 'gpt-5', apiKey: 'sk', useResponsesApi: true, maxRetries: 0, configuration: { baseURL: `${gw.url}/v1`, defaultHeaders: task('rs-lc', 20_000) } });
    await assert.rejects(refused.invoke('x'.repeat(60_000)), (e: { status?: number }) => e.status === 402);
  });

  it('task.wrap(new OpenAI()) budgets responses.create and responses.stream, and the AI SDK middleware openai()', async () => {
    const t = await env.task({ id: 'rs-wrap', total: 30_000, policy: 'hard', meter: 'billed' });
    const gpt = t.wrap(new OpenAI({ apiKey: 'sk', baseURL: `${sim.url}/v1`, maxRetries: 0 }));
    const json = await gpt.responses.create({ model: 'gpt-5', input: 'hello world!', max_output_tokens: 1_000 });
    const stream = gpt.responses.stream({ model: 'gpt-5', input: 'hello again!' });
    let text = '';
    for await (const ev of stream) if (ev.type === 'response.output_text.delta') text += ev.delta;
    const final = await stream.finalResponse();
    assert.equal(text.length, 1_200);
    const sent = JSON.parse((await requests()).at(-1)!.raw) as { input: Array<{ content: Array<{ text: string }> }> };
    assert.match(sent.input[0]!.content[1]!.text, /^\[Envelope task budget\] [\d,]+ of 30,000 tokens used/);
    const row = await t.row();
    assert.deepEqual([row.used, row.calls, row.reserved], [total(json.usage) + total(final.usage), 2, 0]);
    await assert.rejects(gpt.responses.create({ model: 'gpt-5', input: 'x'.repeat(90_000) }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 402);
    // The Agents SDK in-process: a runner whose model provider has the wrapped client.
    const a = await env.task({ id: 'rs-wrap-agents', total: 40_000, policy: 'hard', meter: 'billed' });
    const runner = new Runner({ modelProvider: new OpenAIProvider({ openAIClient: a.wrap(new OpenAI({ apiKey: 'sk', baseURL: `${sim.url}/v1`, maxRetries: 0 })) }) });
    const doSubtask = tool({ name: 'do_subtask', description: 'does one subtask', parameters: z.object({ n: z.number() }), execute: async ({ n }) => `subtask ${n} done` });
    const result = await runner.run(new Agent({ name: 'worker', instructions: 'Work.', tools: [doSubtask], model: 'gpt-5' }), 'job: 2 subtasks', { maxTurns: 10 });
    const ar = await a.row();
    assert.deepEqual([ar.used, ar.calls, ar.reserved], [result.rawResponses.reduce((n, r) => n + r.usage.inputTokens + r.usage.outputTokens, 0), 3, 0]);
    const m = await env.task({ id: 'rs-mw', total: 30_000, policy: 'hard', meter: 'billed' });
    const model = wrapLanguageModel({ model: createOpenAI({ apiKey: 'sk', baseURL: `${sim.url}/v1` })('gpt-5'), middleware: m.middleware() });
    const r = await generateText({ model, prompt: 'hello', maxOutputTokens: 500 });
    const mr = await m.row();
    assert.deepEqual([mr.used, mr.calls, mr.reserved], [r.totalUsage.totalTokens, 1, 0]);
  });
});
