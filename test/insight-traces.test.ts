// OpenTelemetry spans of budgeted calls. `envelope serve` as a real child process, with OTEL_EXPORTER_OTLP_ENDPOINT
// pointed at a real loopback receiver standing in for a collector, proxies the official Anthropic and OpenAI SDKs
// to envelope sim: the OTLP/HTTP JSON it sends holds exactly one `envelope.call` span per call with the usage the
// sim returned, ledger child spans, a refusal as ERROR, a stream cut by its client ended once settled. Then the
// library: task.wrap(client) in-process with an in-memory exporter, its span a child of the caller's.
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { context, ROOT_CONTEXT, trace, type Context, type ContextManager } from '@opentelemetry/api';
import { generateText, wrapLanguageModel } from 'ai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { openEnvelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { tempDbPath } from './helpers/gateway.js';
import { startReceiver, type Receiver } from './helpers/http-receiver.js';
import { startCli, type RunningCli } from './helpers/process.js';
import { stopProcess } from '../bench/processes.js';

type Value = { stringValue?: string; intValue?: number | string; doubleValue?: number; boolValue?: boolean };
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: Value }[];
  status?: { code?: number; message?: string };
}
interface Span {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  attrs: Record<string, string | number | boolean>;
  status: number;
}
const STATUS_ERROR = 2;

const valueOf = (v: Value): string | number | boolean =>
  v.stringValue ?? v.boolValue ?? v.doubleValue ?? (v.intValue !== undefined ? Number(v.intValue) : '');

/** Every span of every OTLP/HTTP JSON trace export the receiver got, with the resource's service.name. */
function spansOf(receiver: Receiver): { spans: Span[]; services: Set<string> } {
  const spans: Span[] = [];
  const services = new Set<string>();
  for (const r of receiver.received.filter((x) => x.url === '/v1/traces')) {
    assert.match(String(r.headers['content-type']), /^application\/json/);
    const body = JSON.parse(r.body) as { resourceSpans: { resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: { scope: { name: string }; spans: OtlpSpan[] }[] }[] };
    for (const rs of body.resourceSpans) {
      for (const a of rs.resource.attributes) if (a.key === 'service.name') services.add(String(valueOf(a.value)));
      for (const ss of rs.scopeSpans) {
        assert.equal(ss.scope.name, 'envelope');
        for (const s of ss.spans) {
          spans.push({
            name: s.name,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId || undefined,
            attrs: Object.fromEntries(s.attributes.map((a) => [a.key, valueOf(a.value)])),
            status: s.status?.code ?? 0,
          });
        }
      }
    }
  }
  return { spans, services };
}

const count = (spans: Span[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const s of spans) out[s.name] = (out[s.name] ?? 0) + 1;
  return out;
};

describe('traces from envelope serve over OTLP/HTTP', () => {
  let sim: Sim;
  let slow: Sim;
  let receiver: Receiver;
  let serve: RunningCli;

  before(async () => {
    sim = await startSim({ outputTokens: 300 });
    // The OpenAI upstream streams slowly, so a client can leave in the middle.
    slow = await startSim({ outputTokens: 300, chunkChars: 16, chunkDelayMs: 5 });
    receiver = await startReceiver();
    serve = await startCli(
      ['serve', '--port', '0', '--store', `sqlite:${tempDbPath()}`, '--anthropic-url', sim.url, '--openai-url', `${slow.url}/v1`, '--log-level', 'silent'],
      { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
    );
  });
  after(async () => {
    await stopProcess(serve.child);
    await sim.close();
    await slow.close();
    await receiver.close();
  });

  it('exports one envelope.call span per call with the sim’s usage, the budget, a refusal and a cut stream', async () => {
    const task = async (id: string) => (await (await fetch(`${serve.url}/envelope/v1/tasks/${id}`)).json()) as { used: number; remaining: number; state: string; tokensUsed: number; calls: number };
    const claude = new Anthropic({
      apiKey: 'sk-ant-test',
      baseURL: serve.url,
      maxRetries: 0,
      // Billed, so the first call's input is held and the stream's max_tokens has to be lowered.
      defaultHeaders: { 'x-envelope-task': 't-fix', 'x-envelope-budget': '20000', 'x-envelope-policy': 'hard', 'x-envelope-label': 'bug-fix', 'x-envelope-meter': 'billed' },
    });
    const model = 'claude-sonnet-4-6';
    // 1. JSON, 300 output tokens.
    const jsonParams = { model, max_tokens: 19_400, messages: [{ role: 'user' as const, content: 'fix the flaky test' }] };
    const json = await claude.messages.create(jsonParams).withResponse();
    // 2. A stream asking for more than fits: max_tokens is lowered; 19,000 output tokens.
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const stream = claude.messages.stream({ model, max_tokens: 19_600, messages: [{ role: 'user', content: 'now write the fix' }] }, { headers: { 'x-sim-output-tokens': '19000' } });
    const streamed = await stream.finalMessage();
    const [streamRequest] = ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: { raw: string; headers: Record<string, string> }[] }).requests;
    const sent = JSON.parse(streamRequest!.raw) as { max_tokens: number };
    const afterStream = await task('t-fix');
    // 3. Less than the 1,024-token floor is left: refused.
    let refusal: InstanceType<typeof Anthropic.APIError> | undefined;
    await claude.messages.create({ model, max_tokens: 4_000, messages: [{ role: 'user', content: 'one more' }] }).catch((e: unknown) => {
      refusal = e as InstanceType<typeof Anthropic.APIError>;
    });
    assert.equal(refusal?.status, 402);
    // 4. OpenAI, JSON.
    const gpt = new OpenAI({ apiKey: 'sk-test', baseURL: `${serve.url}/v1`, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 't-oa', 'x-envelope-budget': '30000', 'x-envelope-label': 'triage' } });
    const completion = await gpt.chat.completions.create({ model: 'gpt-5-mini', max_completion_tokens: 500, messages: [{ role: 'user', content: 'triage this' }] }, { headers: { 'x-sim-output-tokens': '120' } });
    // 5. OpenAI stream, cut by its client after the first chunk: the gateway drains it, settles, then ends the span.
    const cut = new OpenAI({ apiKey: 'sk-test', baseURL: `${serve.url}/v1`, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 't-cut', 'x-envelope-budget': '30000' } });
    const chunks = await cut.chat.completions.create({ model: 'gpt-5-mini', max_completion_tokens: 1_000, stream: true, messages: [{ role: 'user', content: 'write a long story' }] });
    for await (const _ of chunks) break;
    for (let i = 0; i < 400 && (await task('t-cut')).calls === 0; i++) await sleep(25);
    const cutRow = await task('t-cut');
    assert.equal(cutRow.calls, 1);

    // SIGTERM: the gateway closes, then the batch processor exports what is left.
    await stopProcess(serve.child);
    const { spans, services } = spansOf(receiver);
    assert.deepEqual([...services], ['envelope']);
    // One reserve per call, also for the three tasks created on first sight (created with their first call's hold).
    assert.deepEqual(count(spans), { 'envelope.call': 5, 'envelope.ledger.reserve': 5, 'envelope.ledger.settle': 4 });
    const calls = spans.filter((s) => s.name === 'envelope.call');
    for (const s of spans.filter((x) => x.name !== 'envelope.call')) {
      const parent = calls.find((c) => c.spanId === s.parentSpanId);
      assert.ok(parent && parent.traceId === s.traceId, `${s.name} is a child of a call span`);
    }
    // Spans are exported in the order they ended: the calls' order.
    const byTask = (id: string) => calls.filter((c) => c.attrs['envelope.task.id'] === id);
    const [first, second, refused] = byTask('t-fix');
    assert.ok(first && second && refused);
    // The provider got the gateway span's context, not the client's (it sent none).
    assert.equal(streamRequest!.headers.traceparent, `00-${second.traceId}-${second.spanId}-01`);

    const u = json.data.usage;
    assert.deepEqual(first.attrs, {
      'gen_ai.operation.name': 'chat',
      'gen_ai.system': 'anthropic',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': model,
      'gen_ai.request.stream': false,
      'gen_ai.request.max_tokens': 19_400,
      'envelope.carrier': 'gateway',
      'envelope.task.id': 't-fix',
      'envelope.task.label': 'bug-fix',
      'envelope.task.policy': 'hard',
      'envelope.tokens.reserved': Math.ceil((Buffer.byteLength(JSON.stringify(jsonParams)) + 320) / 3) + 19_400,
      'envelope.max_tokens.lowered': false,
      'envelope.budget.told': 'countdown',
      'http.response.status_code': 200,
      'gen_ai.usage.input_tokens': u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
      'gen_ai.usage.output_tokens': 300,
      'gen_ai.usage.cache_read.input_tokens': u.cache_read_input_tokens ?? 0,
      'gen_ai.usage.cache_creation.input_tokens': u.cache_creation_input_tokens ?? 0,
      'envelope.usage.input_tokens': u.input_tokens,
      'envelope.usage.tokens': u.input_tokens + u.output_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
      'envelope.budget.unit': 'tokens',
      'envelope.budget.total': 20_000,
      'envelope.budget.used': Number(json.response.headers.get('x-envelope-budget-used')),
      'envelope.budget.remaining': Number(json.response.headers.get('x-envelope-budget-remaining')),
      'envelope.budget.state': json.response.headers.get('x-envelope-budget-state')!,
    });
    assert.equal(first.status, 0);

    assert.deepEqual(
      [second.attrs['gen_ai.request.stream'], second.attrs['envelope.max_tokens.lowered'], second.attrs['gen_ai.request.max_tokens'], second.attrs['gen_ai.usage.output_tokens'], second.attrs['gen_ai.usage.input_tokens']],
      [true, true, sent.max_tokens, 19_000, streamed.usage.input_tokens],
    );
    assert.ok(sent.max_tokens < 19_600);
    assert.deepEqual(
      [second.attrs['envelope.budget.used'], second.attrs['envelope.budget.remaining'], second.attrs['envelope.budget.state'], second.status],
      [afterStream.used, afterStream.remaining, afterStream.state, 0],
    );

    assert.equal(refused.status, STATUS_ERROR);
    assert.deepEqual(
      [refused.attrs['envelope.refused'], refused.attrs['envelope.refusal.code'], refused.attrs['envelope.refusal.reason'], refused.attrs['error.type'], refused.attrs['envelope.budget.used'], refused.attrs['envelope.budget.state']],
      [true, 'budget_exceeded', 'spend', 'budget_exceeded', afterStream.used, refusal!.headers?.get('x-envelope-budget-state')],
    );
    assert.equal(refused.attrs['gen_ai.usage.output_tokens'], undefined);
    assert.equal(refused.attrs['http.response.status_code'], undefined, 'never sent upstream');
    const refusedReserve = spans.find((s) => s.name === 'envelope.ledger.reserve' && s.parentSpanId === refused.spanId)!;
    assert.equal(refusedReserve.status, STATUS_ERROR);

    const [oa] = byTask('t-oa');
    assert.deepEqual(
      [oa!.attrs['gen_ai.system'], oa!.attrs['gen_ai.request.model'], oa!.attrs['gen_ai.usage.input_tokens'], oa!.attrs['gen_ai.usage.output_tokens'], oa!.attrs['envelope.task.label'], oa!.attrs['envelope.task.policy']],
      ['openai', 'gpt-5-mini', completion.usage!.prompt_tokens, completion.usage!.completion_tokens, 'triage', 'advisory'],
    );
    assert.equal(completion.usage!.completion_tokens, 120);

    const [cutSpan] = byTask('t-cut');
    assert.deepEqual(
      [cutSpan!.attrs['envelope.client_disconnected'], cutSpan!.attrs['gen_ai.usage.output_tokens'], cutSpan!.attrs['envelope.usage.tokens'], cutSpan!.attrs['envelope.budget.used'], cutSpan!.status],
      [true, 300, cutRow.tokensUsed, cutRow.used, 0],
    );
  });
});

/** The AsyncLocalStorage context manager an application's OpenTelemetry setup registers (as the Node SDK does). */
class StorageContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.storage.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}

describe('traces from the library', () => {
  // One provider for the process, as an application registers it once.
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  before(() => {
    trace.setGlobalTracerProvider(provider);
    context.setGlobalContextManager(new StorageContextManager());
  });
  after(() => provider.shutdown());

  it('task.wrap(client): one span per call, a child of the caller’s span, on the application’s own provider', async () => {
    exporter.reset();
    const sim = await startSim({ outputTokens: 250 });
    const env = await openEnvelope({ store: 'memory:', sweepIntervalMs: 0 });
    try {
      const task = await env.task({ id: 'lib-1', label: 'docs', total: 20_000, policy: 'hard', limits: { calls: 1 } });
      const claude = task.wrap(new Anthropic({ apiKey: 'sk-ant-test', baseURL: sim.url, maxRetries: 0 }));
      const app = trace.getTracer('my-agent');
      const msg = await app.startActiveSpan('agent.step', async (step) => {
        try {
          return await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user', content: 'write the docs' }] });
        } finally {
          step.end();
        }
      });
      const refused = await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user', content: 'more' }] }).catch((e: unknown) => e);
      assert.ok(refused instanceof Anthropic.APIError && refused.status === 402);
      const row = await task.row();

      const spans = exporter.getFinishedSpans();
      // The Anthropic SDK traces its own calls when a provider is registered: Envelope's span nests inside its one.
      assert.deepEqual(spans.map((s) => s.name).sort(), [
        'agent.step',
        'anthropic.messages.create',
        'anthropic.messages.create',
        'envelope.call',
        'envelope.call',
        'envelope.ledger.reserve',
        'envelope.ledger.reserve',
        'envelope.ledger.settle',
      ]);
      const parentOf = (s: (typeof spans)[number]) => spans.find((p) => p.spanContext().spanId === s.parentSpanContext?.spanId);
      const step = spans.find((s) => s.name === 'agent.step')!;
      const [call, refusedCall] = spans.filter((s) => s.name === 'envelope.call');
      const sdkSpan = parentOf(call!)!;
      assert.equal(sdkSpan.name, 'anthropic.messages.create');
      assert.equal(parentOf(sdkSpan), step);
      assert.equal(call!.spanContext().traceId, step.spanContext().traceId);
      assert.deepEqual(
        [call!.attributes['envelope.carrier'], call!.attributes['gen_ai.usage.output_tokens'], call!.attributes['gen_ai.usage.input_tokens'], call!.attributes['envelope.budget.used'], call!.attributes['envelope.budget.state'], call!.status.code],
        ['library', 250, msg.usage.input_tokens, row.used, row.state, 0],
      );
      assert.notEqual(refusedCall!.spanContext().traceId, step.spanContext().traceId, 'outside the step: another trace');
      assert.deepEqual(
        [refusedCall!.attributes['envelope.refused'], refusedCall!.attributes['envelope.refusal.code'], refusedCall!.attributes['envelope.refusal.reason'], refusedCall!.status.code],
        [true, 'budget_exceeded', 'calls', STATUS_ERROR],
      );
    } finally {
      await env.close();
      await sim.close();
    }
  });
  it('task.middleware() (Vercel AI SDK): one span per model call of a generateText loop', async () => {
    exporter.reset();
    const sim = await startSim({ outputTokens: 180 });
    const env = await openEnvelope({ store: 'memory:', sweepIntervalMs: 0 });
    try {
      const task = await env.task({ id: 'ai-1', label: 'docs', total: 20_000, policy: 'hard' });
      const model = wrapLanguageModel({ model: createAnthropic({ apiKey: 'k', baseURL: `${sim.url}/v1` })('claude-sonnet-4-6'), middleware: task.middleware() });
      const first = await generateText({ model, prompt: 'write the docs', maxOutputTokens: 1_000 });
      const second = await generateText({ model, prompt: 'and the changelog', maxOutputTokens: 1_000 });
      const row = await task.row();
      const calls = exporter.getFinishedSpans().filter((s) => s.name === 'envelope.call');
      assert.equal(calls.length, 2);
      const tokens = (u: typeof first.usage): number => u.inputTokens! + u.outputTokens!;
      assert.deepEqual(
        calls.map((c) => [c.attributes['envelope.carrier'], c.attributes['gen_ai.system'], c.attributes['gen_ai.request.model'], c.attributes['gen_ai.usage.output_tokens'], c.attributes['envelope.usage.tokens'], c.attributes['envelope.budget.told'], c.status.code]),
        [
          ['library', 'anthropic', 'claude-sonnet-4-6', 180, tokens(first.usage), 'countdown', 0],
          ['library', 'anthropic', 'claude-sonnet-4-6', 180, tokens(second.usage), 'countdown', 0],
        ],
      );
      // Two prompts, two conversations: each a first call, charged its output (loop meter).
      assert.deepEqual([calls[1]!.attributes['envelope.budget.used'], row.used], [first.usage.outputTokens! + second.usage.outputTokens!, row.used]);
      assert.equal(exporter.getFinishedSpans().filter((s) => s.name === 'envelope.ledger.settle').length, 2);
    } finally {
      await env.close();
      await sim.close();
    }
  });
});
