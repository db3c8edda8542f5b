// Tasks created from headers close themselves once quiet (`--idle-close-ms`), so their run records reach calibrate
// and report without anyone running `tasks close`; a task header without a budget is told how to create the task.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import Anthropic from '@anthropic-ai/sdk';
import { CLI, stopProcess } from '../bench/processes.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { tempDbPath } from './helpers/gateway.js';
import { startCli, type RunningCli } from './helpers/process.js';

const run = promisify(execFile);

describe('gateway: idle close', () => {
  let sim: Sim;
  let serve: RunningCli;
  const store = `sqlite:${tempDbPath()}`;
  before(async () => {
    sim = await startSim({ outputTokens: 300 });
    serve = await startCli(['serve', '--port', '0', '--store', store, '--anthropic-url', sim.url, '--idle-close-ms', '400', '--sweep-interval-ms', '100']);
  });
  after(async () => {
    await stopProcess(serve.child);
    await sim.close();
  });

  it('closes a header-created task after its quiet period, and calibrate sees its run', async () => {
    const claude = new Anthropic({ apiKey: 'sk-ant-test', baseURL: serve.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'idle-1', 'x-envelope-budget': '50000', 'x-envelope-label': 'idle-label' } });
    for (let i = 0; i < 3; i++) await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user', content: 'next step' }] });
    let closed: { state: string; outcome: string } | undefined;
    for (let waited = 0; waited < 15_000 && closed?.state !== 'closed'; waited += 100) {
      await sleep(100);
      closed = (await (await fetch(`${serve.url}/envelope/v1/tasks/idle-1`)).json()) as { state: string; outcome: string };
    }
    assert.deepEqual([closed?.state, closed?.outcome], ['closed', 'completed']);
    const { runs } = (await (await fetch(`${serve.url}/envelope/v1/runs?label=idle-label`)).json()) as { runs: Array<{ task: string; calls: number; outcome: string }> };
    assert.deepEqual(runs.map((r) => [r.task, r.calls, r.outcome]), [['idle-1', 3, 'completed']]);
    const { stdout } = await run(process.execPath, [CLI, 'calibrate', '--store', store, '--json']);
    const labels = (JSON.parse(stdout) as { labels: Array<{ label: string; n: number }> }).labels;
    assert.deepEqual(labels.filter((l) => l.label === 'idle-label').map((l) => l.n), [1]);
  });

  it('answers a task header without a budget with how to create the task', async () => {
    const claude = new Anthropic({ apiKey: 'sk-ant-test', baseURL: serve.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'no-such-task' } });
    await assert.rejects(claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }), (e: { status: number; message: string }) => {
      assert.equal(e.status, 404);
      assert.match(e.message, /task no-such-task does not exist; to create it on first sight send x-envelope-budget: <total> \(and x-envelope-policy, x-envelope-label\) with it/);
      return true;
    });
  });
});
