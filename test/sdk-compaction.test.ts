// Compaction and restart: a conversation that is compacted and resumed by a new process with the carry it kept
// spends exactly what the same conversation spends in one process — the budget is never reset — with the text
// countdown and with Anthropic's native task_budget (sent fresh after the compaction, never above the ledger's).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { openEnvelope, type BudgetTask, type Carry, type Envelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { tempDbPath } from './helpers/gateway.js';

const tools: Anthropic.Tool[] = [{ name: 'do_subtask', description: 'does subtask n', input_schema: { type: 'object', properties: { n: { type: 'number' } } } }];

/** Runs `turns` tool-loop turns on `messages` (extended in place). */
async function turns(claude: Anthropic, model: string, messages: Anthropic.MessageParam[], count: number, extra: Partial<Anthropic.MessageCreateParams> = {}): Promise<void> {
  for (let i = 0; i < count; i++) {
    const res = await claude.messages.create({ model, max_tokens: 1_500, tools, messages: [...messages], ...extra } as Anthropic.MessageCreateParamsNonStreaming);
    messages.push({ role: 'assistant', content: res.content });
    const use = res.content.find((b) => b.type === 'tool_use');
    if (!use) return;
    messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'done' }] });
  }
}

/** The conversation after compaction: the job and a summary in place of the history. */
const compacted = (): Anthropic.MessageParam[] => [{ role: 'user', content: 'job: 12 subtasks. Summary so far: subtasks 1 to 4 are done.' }];

describe('compaction and restart with carry', () => {
  let sim: Sim;
  before(async () => {
    sim = await startSim({ outputTokens: 1_000 });
  });
  after(() => sim.close());

  for (const model of ['claude-sonnet-4-6', 'claude-opus-4-7']) {
    it(`${model}: a compacted conversation resumed in a new process ends with the same used as one never interrupted`, async () => {
      const db = tempDbPath();
      const open = (): Promise<Envelope> => openEnvelope({ store: `sqlite:${db}`, sweepIntervalMs: 0 });
      const spec = { total: 60_000, policy: 'hard' as const };
      const client = (task: BudgetTask): Anthropic => task.wrap(new Anthropic({ apiKey: 'k', baseURL: sim.url, maxRetries: 0 }));

      // One process, never interrupted: four turns, the same compaction, four more turns.
      const env1 = await open();
      const whole = await env1.task({ id: `whole-${model}`, ...spec });
      let messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'job: 12 subtasks' }];
      await turns(client(whole), model, messages, 4);
      messages = compacted();
      await turns(client(whole), model, messages, 4);

      // The same work, but the process ends after the compaction, keeping only the summary and the carry.
      const first = await env1.task({ id: `resumed-${model}`, ...spec });
      messages = [{ role: 'user', content: 'job: 12 subtasks' }];
      await turns(client(first), model, messages, 4);
      const carry: Carry = await first.carry();
      const usedBefore = (await first.row()).used;
      await env1.close();

      const env2 = await open();
      const resumed = await env2.resume(`resumed-${model}`, carry);
      assert.deepEqual([carry, (await resumed.row()).used], [{ type: 'tokens', total: 60_000, remaining: 60_000 - usedBefore }, usedBefore]);
      sim.context.log.length = 0;
      messages = compacted();
      // The client may state the carry in the body too, as Anthropic's API takes it; the ledger stays the judge.
      await turns(client(resumed), model, messages, 4, { output_config: { task_budget: carry } } as never);

      // What the model was told on the first call after the compaction: the budget as the ledger has it.
      const sent = JSON.parse(sim.context.log[0]!.raw) as { output_config?: { task_budget?: unknown }; messages: Array<{ content: Array<{ text?: string }> }> };
      if (model === 'claude-opus-4-7') {
        assert.deepEqual(sent.output_config?.task_budget, { type: 'tokens', total: 60_000, remaining: 60_000 - usedBefore });
        assert.equal(sim.context.log[0]!.headers['anthropic-beta'], 'task-budgets-2026-03-13');
      } else {
        assert.equal(sent.output_config, undefined);
        const pct = Math.floor((usedBefore / 60_000) * 100);
        assert.equal(sent.messages[0]!.content.at(-1)!.text, `[Envelope task budget] ${usedBefore.toLocaleString('en-US')} of 60,000 tokens used (${pct}%); ${(60_000 - usedBefore).toLocaleString('en-US')} tokens remaining.`);
      }

      const [a, b] = [await (await env2.resume(`whole-${model}`)).row(), await resumed.row()];
      assert.deepEqual([b.used, b.calls, b.reserved], [a.used, a.calls, 0]);
      assert.equal(b.calls, 8);

      // A stale carry (more left than the ledger says) is ignored; a lower one is charged.
      await env2.resume(`resumed-${model}`, { type: 'tokens', total: 60_000, remaining: 59_000 });
      assert.equal((await resumed.row()).used, a.used);
      await env2.resume(`resumed-${model}`, { type: 'tokens', total: 60_000, remaining: 60_000 - a.used - 500 });
      assert.equal((await resumed.row()).used, a.used + 500);
      await env2.close();
    });
  }
});
