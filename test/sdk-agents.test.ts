// Budgeted agents in code: presets, sub-agents held to their own envelopes, compaction and restarts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { openEnvelope, type Envelope, type BudgetTask } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { tempDbPath } from './helpers/gateway.js';

const AGENT = fileURLToPath(new URL('./helpers/agent-worker.js', import.meta.url));
/** Each call below is a one-message conversation: the loop meter charges a conversation's first call its output. */
const spent = (u: Anthropic.Usage): number => u.output_tokens;

async function call(client: Anthropic, text: string): Promise<number> {
  const r = await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 3_000, messages: [{ role: 'user', content: text }] });
  return spent(r.usage);
}

describe('budgeted agents in code', () => {
  let sim: Sim;
  let env: Envelope;
  let db: string;
  before(async () => {
    sim = await startSim({ outputTokens: 2_500 });
    db = tempDbPath();
    env = await openEnvelope({ store: `sqlite:${db}`, sweepIntervalMs: 0 });
  });
  after(async () => {
    await env.close();
    await sim.close();
  });

  it('creates tasks from presets per task type, overridable', async () => {
    const fix = await env.task({ id: 'preset-fix', preset: 'bug-fix' });
    const big = await env.task({ id: 'preset-refactor', preset: 'refactor', total: 500_000, policy: 'hard' });
    const [a, b] = [await fix.row(), await big.row()];
    assert.deepEqual([a.label, a.total, a.policy], ['bug-fix', 50_000, 'advisory']);
    assert.deepEqual([b.label, b.total, b.policy], ['refactor', 500_000, 'hard']);
    await assert.rejects(env.task({ id: 'no-total' }), /needs a total, or a preset/);
  });

  it('stops a sub-agent that tries to overspend while its siblings continue', async () => {
    const orchestrator = await env.task({ id: 'orch', total: 100_000, policy: 'hard' });
    const greedy = await orchestrator.child({ id: 'orch/greedy', total: 20_000, policy: 'hard' });
    const steady = await orchestrator.child({ id: 'orch/steady', total: 20_000, policy: 'hard' });
    const greedyClient = greedy.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url, maxRetries: 0 }));
    const steadyClient = steady.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url, maxRetries: 0 }));
    let greedyUsed = 0;
    let refused = false;
    for (let i = 0; i < 20 && !refused; i++) {
      try {
        greedyUsed += await call(greedyClient, `more work ${i}`);
      } catch (e) {
        assert.ok(e instanceof Anthropic.APIError && e.status === 402 && /orch\/greedy/.test(e.message), String(e));
        refused = true;
      }
    }
    assert.ok(refused);
    const steadyUsed = (await call(steadyClient, 'one step')) + (await call(steadyClient, 'another step'));
    const [g, s, o] = [await greedy.row(), await steady.row(), await orchestrator.row()];
    assert.deepEqual([g.used, s.used, o.used], [greedyUsed, steadyUsed, greedyUsed + steadyUsed]);
    assert.ok(g.used <= 20_000);
  });

  it('carries the budget through a compaction: nothing is reset', async () => {
    const full = await env.task({ id: 'uncompacted', total: 60_000, policy: 'hard' });
    const compacted = await env.task({ id: 'compacted', total: 60_000, policy: 'hard' });
    const a = full.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url }));
    const b = compacted.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url }));
    for (const step of ['plan', 'research', 'draft']) {
      await call(a, step);
      await call(b, step);
    }
    // The conversation is summarised and a new process resumes the task with the carry it kept.
    const carry = await compacted.carry();
    const usedBefore = (await compacted.row()).used;
    assert.deepEqual(carry, { type: 'tokens', total: 60_000, remaining: 60_000 - usedBefore });
    const resumed = await env.resume('compacted', carry);
    const b2 = resumed.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url }));
    assert.equal((await resumed.row()).used, usedBefore);
    await call(a, 'review');
    await call(b2, 'review');
    assert.equal((await resumed.row()).used, (await full.row()).used);
    // A client whose own count says less is left: the ledger takes the lower figure, never a higher one.
    await resumed.applyCarry({ type: 'tokens', total: 60_000, remaining: 10_000 });
    assert.equal((await resumed.row()).used, 50_000);
    await resumed.applyCarry({ type: 'tokens', total: 60_000, remaining: 59_000 });
    assert.equal((await resumed.row()).used, 50_000);
  });

  it('resumes from the store when the agent process is killed and started again', async () => {
    const file = tempDbPath();
    const first = spawn(process.execPath, [AGENT, file, sim.url, 'restart-1', '1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const seen: number[] = [];
    await new Promise<void>((resolve) => {
      let buf = '';
      first.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) if (l.startsWith('turn ')) seen.push(Number(l.slice(5)));
        if (seen.length >= 3 && first.exitCode === null) first.kill('SIGKILL');
      });
      first.on('exit', () => resolve());
    });
    const second = spawn(process.execPath, [AGENT, file, sim.url, 'restart-1', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    second.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => second.on('exit', r));
    const later = out.trim().split('\n').map((l) => Number(l.slice(5)));
    assert.equal(later.length, 2);
    const check = await openEnvelope({ store: `sqlite:${file}`, sweepIntervalMs: 0 });
    const row = await (await check.resume('restart-1')).row();
    // Calls the first process settled after its last printed line are in the ledger too.
    const printed = [...seen, ...later].reduce((x, y) => x + y, 0);
    assert.ok(row.used >= printed && row.calls >= 5, `used ${row.used}, printed ${printed}, calls ${row.calls}`);
    assert.equal(row.used % 1, 0);
    assert.equal(row.total, 200_000);
    await check.close();
  });
});
