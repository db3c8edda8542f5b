// Policy `measure` end to end, with the official Anthropic SDK over loopback to envelope sim: the model is shown
// no countdown and no native task_budget, max_tokens is never lowered, no call is refused past the total; the run
// record is `budgeted: false`, and GET /calibration learns from it first. Set by header, admin API and library.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { Calibration } from '../src/insight/calibrate.js';
import { openEnvelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { startStack, type Stack } from './helpers/serve-stack.js';
import { fromAnthropic, LoopMeter } from './helpers/loop-meter.js';

const MODEL = 'claude-opus-4-7'; // takes native task budgets: a budgeted task would be sent one
const total = (u: Anthropic.Usage): number => u.input_tokens + u.output_tokens + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0);

interface Logged {
  headers: Record<string, string>;
  raw: string;
}
const upstreamLog = async (sim: Sim): Promise<Logged[]> => ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Logged[] }).requests;

/** Nothing of Envelope's reached the provider, and max_tokens is what the client asked for. */
function assertUntold(log: Logged[], maxTokens: number): void {
  for (const r of log) {
    const body = JSON.parse(r.raw) as { max_tokens: number; output_config?: unknown };
    assert.ok(!r.raw.includes('[Envelope task budget]'), 'no countdown');
    assert.equal(body.output_config, undefined, 'no native task_budget');
    assert.ok(!(r.headers['anthropic-beta'] ?? '').includes('task-budgets'), 'no task-budgets beta header');
    assert.equal(body.max_tokens, maxTokens, 'max_tokens not lowered');
  }
}

describe('policy measure', () => {
  let sim: Sim;
  let stack: Stack;
  const admin = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${stack.url}/envelope/v1${path}`, { ...init, headers: { 'content-type': 'application/json', ...init.headers } });

  before(async () => {
    sim = await startSim({ outputTokens: 200 });
    stack = await startStack({ anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1` }, true);
  });
  after(async () => {
    await stack.close();
    await sim.close();
  });

  it('through the gateway: no countdown, nothing lowered or refused, an unbudgeted run that calibration prefers', async () => {
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const claude = new Anthropic({
      apiKey: 'sk-ant-test',
      baseURL: stack.url,
      maxRetries: 0,
      defaultHeaders: { 'x-envelope-task': 'm-run', 'x-envelope-budget': '20000', 'x-envelope-policy': 'measure', 'x-envelope-label': 'triage' },
    });
    const params = { model: MODEL, max_tokens: 21_000, messages: [{ role: 'user' as const, content: 'triage the incident' }] };
    // 12,000 + 12,000 output tokens run past the 20,000 total; a hard or advisory task would refuse the second call.
    // Counted in the loop meter, as budgets are: the same context again adds no input.
    const meter = new LoopMeter();
    for (let i = 0; i < 3; i++) {
      const { data, response } = await claude.messages.create(params, { headers: { 'x-sim-output-tokens': '12000' } }).withResponse();
      meter.charge(fromAnthropic(data.usage));
      assert.equal(response.headers.get('x-envelope-budget-state'), 'active');
    }
    assertUntold(await upstreamLog(sim), 21_000);
    const used = meter.used;
    const row = await stack.ledger.task('m-run');
    assert.deepEqual([row.policy, row.used, row.calls, row.state], ['measure', used, 3, 'active']);
    assert.ok(used > 20_000);

    // The same label with a budget, created by the admin API: calibration still takes the measured run.
    const created = await admin('/tasks', { method: 'POST', body: JSON.stringify({ id: 'b-run', label: 'triage', total: 40_000, policy: 'hard' }) });
    assert.equal(created.status, 201);
    const budgeted = new Anthropic({ apiKey: 'sk-ant-test', baseURL: stack.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'b-run' } });
    await budgeted.messages.create({ ...params, max_tokens: 1_000 });
    for (const id of ['m-run', 'b-run']) assert.equal((await admin(`/tasks/${id}/close`, { method: 'POST', body: '{}' })).status, 200);

    const runs = await stack.ledger.runs({ label: 'triage' });
    assert.deepEqual(
      runs.map((r) => [r.task, r.budgeted, r.used, r.total, r.outcome]).sort(),
      [
        ['b-run', true, (await stack.ledger.task('b-run')).used, 40_000, 'completed'],
        ['m-run', false, used, 20_000, 'completed'],
      ],
    );
    const cal = (await (await admin('/calibration?percentile=90&headroom=0.5')).json()) as Calibration;
    const triage = cal.labels.find((l) => l.label === 'triage')!;
    assert.deepEqual(
      [triage.source, triage.n, triage.runs.unbudgeted, triage.runs.budgeted, triage.p50, triage.recommendedTotal],
      ['unbudgeted', 1, 1, 1, used, Math.ceil((used * 1.5) / 1_000) * 1_000],
    );
  });

  it('adds no output cap an OpenAI client left out', async () => {
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const openai = new OpenAI({
      apiKey: 'sk-test',
      baseURL: `${stack.url}/v1`,
      maxRetries: 0,
      defaultHeaders: { 'x-envelope-task': 'm-openai', 'x-envelope-budget': '20000', 'x-envelope-policy': 'measure' },
    });
    const res = await openai.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'triage' }] });
    const [logged] = await upstreamLog(sim);
    const body = JSON.parse(logged!.raw) as Record<string, unknown>;
    assert.deepEqual([body.max_completion_tokens, body.max_tokens], [undefined, undefined]);
    assert.equal((await stack.ledger.task('m-openai')).used, res.usage!.completion_tokens, 'a first call: its output (loop meter)');
  });

  it('is set by the admin API', async () => {
    const res = await admin('/tasks', { method: 'POST', body: JSON.stringify({ id: 'm-admin', total: 20_000, policy: 'measure' }) });
    assert.equal(res.status, 201);
    assert.equal(((await (await admin('/tasks/m-admin')).json()) as { policy: string }).policy, 'measure');
  });

  it('is set by the library: task.wrap(client) shows the model nothing', async () => {
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const env = await openEnvelope({ store: 'memory:', sweepIntervalMs: 0 });
    const task = await env.task({ id: 'm-lib', label: 'triage', total: 20_000, policy: 'measure' });
    const claude = task.wrap(new Anthropic({ apiKey: 'sk-ant-test', baseURL: sim.url, maxRetries: 0 }));
    const msg = await claude.messages.create({ model: MODEL, max_tokens: 25_000, messages: [{ role: 'user', content: 'triage' }] }, { headers: { 'x-sim-output-tokens': '21000' } });
    assertUntold(await upstreamLog(sim), 25_000);
    assert.deepEqual([(await task.status()).state, (await task.status()).countdown], ['active', '']);
    await task.close();
    const [run] = await env.ledger.runs({});
    assert.deepEqual([run!.budgeted, run!.used, run!.tokensUsed], [false, msg.usage.output_tokens, total(msg.usage)]);
    await env.close();
  });
});
