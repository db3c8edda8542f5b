// `envelope trial` as a user runs it: a job file at several budgets and policies through the gateway in front of the
// simulator, how each run ended (the model's own report, or a refusal), side by side with the older admission.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import type { TrialResult } from '../src/trial/run.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const DOCS = fileURLToPath(new URL('../../docs/trial/', import.meta.url));

const trial = async (...args: string[]): Promise<{ results: TrialResult[] }> =>
  JSON.parse((await run(process.execPath, [CLI, 'trial', ...args, '--json'])).stdout) as { results: TrialResult[] };

const summary = (r: TrialResult) => [r.budget, r.policy, r.meter, r.admission, r.subtasksDone, r.used, Object.entries(r.ended).filter(([, n]) => n > 0).map(([e]) => e).join(), r.overrun];

describe('envelope trial', () => {
  const dir = mkdtempSync(join(tmpdir(), 'envelope-trial-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the sample job: today the agent ends with its report, under the older admission it was refused', async () => {
    const { results } = await trial('--budgets', '20000,30000', '--policies', 'hard,approval', '--compare');
    assert.deepEqual(results.map(summary), [
      [20_000, 'hard', 'loop', 'projected', 15, 17_872, 'report', 0],
      [20_000, 'approval', 'loop', 'projected', 15, 17_872, 'report', 0],
      [30_000, 'hard', 'loop', 'projected', 22, 26_020, 'report', 0],
      [30_000, 'approval', 'loop', 'projected', 22, 26_020, 'report', 0],
      [20_000, 'hard', 'billed', 'whole-body', 5, 14_123, 'refused', 0],
      [20_000, 'approval', 'billed', 'whole-body', 5, 14_123, 'paused', 0],
      [30_000, 'hard', 'billed', 'whole-body', 7, 27_921, 'refused', 0],
      [30_000, 'approval', 'billed', 'whole-body', 7, 27_921, 'paused', 0],
    ]);
  });

  it('lets an agent that ignores the countdown spend at least 95 % of a hard budget, and refuses only a call that really does not fit', async () => {
    const { results } = await trial('--budgets', '20000,30000,50000', '--policies', 'hard', '--ignore-countdown');
    // The sample job's calls are ~1,200 tokens (4–6 % of these budgets): refused past 95 %, or done within it.
    assert.deepEqual(results.map((r) => [r.budget, Object.entries(r.ended).filter(([, n]) => n > 0).map(([e]) => e).join()]), [[20_000, 'refused'], [30_000, 'report'], [50_000, 'report']]);
    assert.ok(results[0]!.utilization >= 0.95 && results[0]!.used <= 20_000, `used ${results[0]!.used}`);
    // Results that grow by 1 KB a call: near the end one call needs ~12 % of the budget. Whenever it is refused, the
    // call needed more than was left, counted exactly (the provider's count), not estimated.
    const growing = await trial(join(DOCS, 'growing-tools.json'), '--budgets', '20000,30000,50000', '--policies', 'hard', '--ignore-countdown');
    for (const r of growing.results) {
      const refusal = r.agents[0]!;
      assert.equal(refusal.ended, 'refused');
      const need = Number(/this call needs at least ([\d,]+) tokens/.exec(refusal.lastText)![1]!.replaceAll(',', ''));
      assert.ok(r.used <= r.budget && r.used + need > r.budget, `${r.budget}: used ${r.used}, the next call needs ${need}`);
    }
  });

  it('runs sub-agents side by side, each in its own envelope, all ending with their reports', async () => {
    const { results } = await trial(join(DOCS, 'parallel-agents.json'), '--budgets', '90000', '--policies', 'hard');
    const [r] = results;
    assert.deepEqual([r!.agents.map((a) => [a.name, a.ended]), r!.ended.report], [[['research', 'report'], ['drafting', 'report'], ['qa', 'report']], 3]);
    assert.ok(r!.utilization >= 0.7 && r!.used <= 90_000, `used ${r!.used}`);
  });

  it('says which field of a job file is wrong, and prints a table by default', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ name: 'x', prompt: 'p', tools: [{ name: 'has space' }] }));
    await assert.rejects(run(process.execPath, [CLI, 'trial', bad]), (e: { stderr: string }) => /bad\.json: tools\.0\.name: tool names are 1-64 letters/.test(e.stderr));
    const { stdout } = await run(process.execPath, [CLI, 'trial', '--budgets', '20000', '--policies', 'hard']);
    assert.match(stdout, /^bug-fix on the simulator \(anthropic, claude-sonnet-4-6\)\n/);
    assert.match(stdout, /20,000 +hard +loop +15 of 24 +17,872 \(89%\) +report +- +16/);
    const help = await run(process.execPath, [CLI, 'trial', '--help']);
    assert.match(help.stdout, /^Usage: envelope trial \[options\] \[job\]/);
  });
});
