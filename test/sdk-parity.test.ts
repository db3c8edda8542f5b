// The same 60-subtask tool-use job, once in-process and once through the gateway, with each official client: the
// ledger must end with the same figures and the same events either way. The scripted agent heeds the countdown and
// ends with its own report inside a hard budget; one that ignores it is refused only past 95 % of it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { APICallError, generateText, stepCountIs, streamText, tool, wrapLanguageModel, type LanguageModel } from 'ai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { z } from 'zod';
import type { Ledger } from '../src/ledger/ledger.js';
import { openEnvelope, type BudgetTask, type Envelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, tempDbPath, type TestGateway } from './helpers/gateway.js';

const SYSTEM = 'You are a careful engineer working through a job one subtask at a time. '.repeat(20);
const JOB = 'job: 60 subtasks';
const TURNS = 60;

/** Where a run ended: the turn refused (0 if none) and the model's last words. */
interface Ending {
  refusedAt: number;
  lastText: string;
}

async function anthropicLoop(claude: Anthropic, stream: boolean): Promise<Ending> {
  const tools: Anthropic.Tool[] = [{ name: 'do_subtask', description: 'does subtask n', input_schema: { type: 'object', properties: { n: { type: 'number' } } } }];
  const messages: Anthropic.MessageParam[] = [{ role: 'user', content: JOB }];
  let lastText = '';
  for (let turn = 1; turn <= TURNS; turn++) {
    const params = { model: 'claude-sonnet-4-6', max_tokens: 2_000, system: SYSTEM, tools, messages: [...messages] };
    let res: Anthropic.Message;
    try {
      res = stream ? await claude.messages.stream(params).finalMessage() : await claude.messages.create(params);
    } catch (e) {
      assert.ok(e instanceof Anthropic.APIError && e.status === 402, String(e));
      return { refusedAt: turn, lastText };
    }
    lastText = res.content.find((b) => b.type === 'text')?.text.slice(0, 60) ?? '';
    messages.push({ role: 'assistant', content: res.content });
    const use = res.content.find((b) => b.type === 'tool_use');
    if (!use) break;
    messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: `subtask done` }] });
  }
  return { refusedAt: 0, lastText };
}

async function openaiLoop(gpt: OpenAI, stream: boolean): Promise<Ending> {
  const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'do_subtask', description: 'does subtask n', parameters: { type: 'object', properties: { n: { type: 'number' } } } } }];
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'system', content: SYSTEM }, { role: 'user', content: JOB }];
  let lastText = '';
  for (let turn = 1; turn <= TURNS; turn++) {
    const params = { model: 'gpt-4.1', max_completion_tokens: 2_000, tools, messages: [...messages] };
    let message: OpenAI.ChatCompletionMessage;
    try {
      if (stream) {
        message = await gpt.chat.completions.stream({ ...params, stream: true }).finalMessage();
      } else {
        message = (await gpt.chat.completions.create(params)).choices[0]!.message;
      }
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIError && e.status === 402, String(e));
      return { refusedAt: turn, lastText };
    }
    lastText = (message.content ?? '').slice(0, 60);
    messages.push({ role: 'assistant', content: message.content, ...(message.tool_calls?.length ? { tool_calls: message.tool_calls } : {}) });
    const call = message.tool_calls?.[0];
    if (!call) break;
    messages.push({ role: 'tool', tool_call_id: call.id, content: 'subtask done' });
  }
  return { refusedAt: 0, lastText };
}

const aiTools = { do_subtask: tool({ description: 'does subtask n', inputSchema: z.object({ n: z.number() }), execute: async () => 'subtask done' }) };

async function aiLoop(model: LanguageModel, stream: boolean): Promise<Ending> {
  let stepsDone = 0;
  let lastText = '';
  const onStepFinish = (step: { text: string }): void => {
    stepsDone++;
    lastText = step.text.slice(0, 60);
  };
  const options = { model, system: SYSTEM, tools: aiTools, prompt: JOB, maxOutputTokens: 2_000, maxRetries: 0, stopWhen: stepCountIs(TURNS), onStepFinish };
  try {
    if (stream) {
      let error: unknown = null;
      const result = streamText({ ...options, onError: ({ error: e }) => void (error = e) });
      await result.consumeStream();
      if (error) throw error;
    } else {
      await generateText(options);
    }
    return { refusedAt: 0, lastText };
  } catch (e) {
    assert.ok(APICallError.isInstance(e) && e.statusCode === 402 && !e.isRetryable, String(e));
    return { refusedAt: stepsDone + 1, lastText };
  }
}

/** What the ledger ends with for one task: every figure and every event (without ids and times). */
async function figures(ledger: Ledger, id: string): Promise<unknown> {
  const t = await ledger.task(id);
  const events = await ledger.events({ taskId: id });
  return {
    used: t.used,
    reserved: t.reserved,
    calls: t.calls,
    callsInFlight: t.callsReserved,
    tokensUsed: t.tokensUsed,
    costMicros: t.costMicros,
    state: t.state,
    models: t.models,
    events: events.map((e) => ({ type: e.type, data: e.data })),
  };
}

type Figures = { used: number; reserved: number; calls: number; state: string; events: Array<{ type: string }> };

/** Heeding the countdown: the model answers without a tool call ("wrapping up") inside the total, never refused. */
function expectReport(ending: Ending, f: Figures, total: number): void {
  assert.deepEqual([ending.refusedAt, ending.lastText.slice(0, 13)], [0, 'Wrapping up: '], JSON.stringify(ending));
  assert.equal(f.reserved, 0);
  assert.ok(f.used >= 0.7 * total && f.used <= total, `used ${f.used} of ${total}`);
  assert.deepEqual(f.events.map((e) => e.type), ['threshold_crossed', 'threshold_crossed']);
}

/** Ignoring it: refused once a call no longer fits, past 95 % of the hard total and never over it. */
function expectRefusal(ending: Ending, f: Figures, total: number): void {
  assert.ok(ending.refusedAt > 1, JSON.stringify(ending));
  assert.deepEqual([f.calls, f.reserved], [ending.refusedAt - 1, 0]);
  assert.ok(f.used >= 0.95 * total && f.used <= total, `used ${f.used} of ${total}`);
}

describe('the same 60-subtask job in-process and through the gateway', () => {
  let sim: Sim;
  let gw: TestGateway;
  let env: Envelope;
  before(async () => {
    sim = await startSim({ outputTokens: 700 });
    gw = await startGateway({ anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1` });
    env = await openEnvelope({ store: `sqlite:${tempDbPath()}`, sweepIntervalMs: 0 });
  });
  after(async () => {
    await env.close();
    await gw.close();
    await sim.close();
  });

  const headers = (id: string, total: number, policy: string): Record<string, string> => ({
    'x-envelope-task': id,
    'x-envelope-budget': String(total),
    'x-envelope-policy': policy,
  });

  /** Runs `job` in-process on task `id` and through the gateway on the same id; returns both endings. */
  async function both(id: string, total: number, inProcess: (task: BudgetTask) => Promise<Ending>, viaGateway: (h: Record<string, string>) => Promise<Ending>) {
    // Created on both ledgers first, so the gateway finds the task rather than creating it from headers.
    const spec = { id, total, policy: 'hard' as const };
    const task = await env.task(spec);
    await gw.ledger.createTask(spec);
    const a = await inProcess(task);
    const b = await viaGateway(headers(id, total, 'hard'));
    const [fa, fb] = [await figures(env.ledger, id), await figures(gw.ledger, id)];
    assert.deepEqual(a, b);
    assert.deepEqual(fa, fb);
    return { ending: a, figures: fa as Figures };
  }

  /** Each client, in-process (on a task) and through the gateway (with the task's headers). */
  const clients: Array<{ name: string; inProcess: (task: BudgetTask, stream: boolean, h: Record<string, string>) => Promise<Ending>; viaGateway: (h: Record<string, string>, stream: boolean) => Promise<Ending> }> = [
    {
      name: 'Anthropic SDK',
      inProcess: (task, stream, h) => anthropicLoop(task.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url, defaultHeaders: h })), stream),
      viaGateway: (h, stream) => anthropicLoop(new Anthropic({ apiKey: 'k', baseURL: gw.url, defaultHeaders: h }), stream),
    },
    {
      name: 'OpenAI SDK',
      inProcess: (task, stream, h) => openaiLoop(task.wrap(new OpenAI({ apiKey: 'k', baseURL: `${sim.url}/v1`, defaultHeaders: h })), stream),
      viaGateway: (h, stream) => openaiLoop(new OpenAI({ apiKey: 'k', baseURL: `${gw.url}/v1`, defaultHeaders: h }), stream),
    },
    {
      name: 'Vercel AI SDK + @ai-sdk/anthropic',
      inProcess: (task, stream, h) => aiLoop(wrapLanguageModel({ model: createAnthropic({ apiKey: 'k', baseURL: `${sim.url}/v1`, headers: h })('claude-sonnet-4-6'), middleware: task.middleware() }), stream),
      viaGateway: (h, stream) => aiLoop(createAnthropic({ apiKey: 'k', baseURL: `${gw.url}/v1`, headers: h })('claude-sonnet-4-6'), stream),
    },
    {
      name: 'Vercel AI SDK + @ai-sdk/openai',
      inProcess: (task, stream, h) => aiLoop(wrapLanguageModel({ model: createOpenAI({ apiKey: 'k', baseURL: `${sim.url}/v1`, headers: h }).chat('gpt-4.1'), middleware: task.middleware() }), stream),
      viaGateway: (h, stream) => aiLoop(createOpenAI({ apiKey: 'k', baseURL: `${gw.url}/v1`, headers: h }).chat('gpt-4.1'), stream),
    },
  ];

  for (const stream of [false, true]) {
    const how = stream ? 'streaming' : 'JSON';
    for (const c of clients) {
      const slug = c.name.replace(/\W+/g, '-').toLowerCase();

      it(`${c.name}, ${how}, hard budget: the model heeds the countdown and ends with its own report, with the same figures`, async () => {
        const { ending, figures: f } = await both(`heed-${slug}-${how}`, 20_000, (t) => c.inProcess(t, stream, {}), (h) => c.viaGateway(h, stream));
        expectReport(ending, f, 20_000);
      });

      it(`${c.name}, ${how}, hard budget: a model that ignores the countdown is refused past 95 %, with the same figures`, async () => {
        const ignores = { 'x-sim-agent': 'ignores-budget' };
        const { ending, figures: f } = await both(`ignore-${slug}-${how}`, 20_000, (t) => c.inProcess(t, stream, ignores), (h) => c.viaGateway({ ...h, ...ignores }, stream));
        expectRefusal(ending, f, 20_000);
      });
    }
  }
});
