// task.status(): what a running agent and its operator see — state, % used, calls, subtasks done and left,
// the tokens to finish estimated from the burn rate, the countdown line, events and sub-agents.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { openEnvelope, type Envelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { tempDbPath } from './helpers/gateway.js';
import { fromAnthropic, LoopMeter } from './helpers/loop-meter.js';

describe('task.status()', () => {
  let sim: Sim;
  let env: Envelope;
  before(async () => {
    sim = await startSim({ outputTokens: 7_000 });
    env = await openEnvelope({ store: `sqlite:${tempDbPath()}`, sweepIntervalMs: 0 });
  });
  after(async () => {
    await env.close();
    await sim.close();
  });

  it('reports state, % used, calls, subtasks left and the estimate to finish from the burn rate', async () => {
    const task = await env.task({ id: 'status-1', label: 'docs', total: 30_000, policy: 'hard' });
    const reviewer = await task.child({ id: 'status-1/review', total: 20_000 });
    const claude = task.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url }));
    const tools: Anthropic.Tool[] = [{ name: 'do_subtask', description: 'does subtask n', input_schema: { type: 'object', properties: { n: { type: 'number' } } } }];
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'job: 6 subtasks' }];

    const fresh = await task.status();
    assert.deepEqual([fresh.state, fresh.percentUsed, fresh.calls, fresh.subtasks, fresh.estimateToFinish], ['active', 0, 0, null, null]);
    assert.equal(fresh.countdown, '[Envelope task budget] 0 of 30,000 tokens used (0%); 30,000 tokens remaining.');

    const meter = new LoopMeter();
    for (let done = 1; done <= 3; done++) {
      const res = await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 8_000, tools, messages: [...messages] });
      meter.charge(fromAnthropic(res.usage));
      const use = res.content.find((b) => b.type === 'tool_use')!;
      messages.push({ role: 'assistant', content: res.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'done' }] });
      await task.progress(done, 6);
    }

    const s = await task.status();
    const spent = meter.used;
    // Three calls of 7,000 output tokens each plus what each added (loop meter): past 70 % of 30,000.
    assert.ok(spent > 21_000 && spent < 25_500, `spent ${spent}`);
    assert.deepEqual(
      [s.state, s.used, s.remaining, s.reserved, s.calls, s.percentUsed, s.subtasks],
      ['scoping', spent, 30_000 - spent, 0, 3, Math.floor((spent / 30_000) * 1_000) / 10, { done: 3, left: 3, total: 6 }],
    );
    // Three subtasks cost `spent`: the three left are estimated at the same rate.
    assert.equal(s.estimateToFinish, spent);
    assert.equal(s.countdown, `[Envelope task budget] ${spent.toLocaleString('en-US')} of 30,000 tokens used (${Math.floor(s.percentUsed)}%); ${(30_000 - spent).toLocaleString('en-US')} tokens remaining. Scope remaining work tightly.`);
    assert.deepEqual(s.events.map((e) => [e.type, e.data.threshold]), [['threshold_crossed', 0.7]]);
    assert.deepEqual(s.children.map((c) => [c.id, c.total, c.used, c.state]), [[reviewer.id, 20_000, 0, 'active']]);
  });

  it('shows a small share of a budget to one decimal, never as 0', async () => {
    const task = await env.task({ id: 'status-2', total: 50_000 });
    const grant = await env.ledger.reserve({ taskId: 'status-2', model: null, inputTokens: 0, outputTokensMax: 1_000 });
    await env.ledger.settle(grant.reservation.id, { inputTokens: 0, outputTokens: 227, cacheWriteTokens: 0, cacheReadTokens: 0 });
    const s = await task.status();
    assert.deepEqual([s.used, s.percentUsed], [227, 0.4]);
  });
});
