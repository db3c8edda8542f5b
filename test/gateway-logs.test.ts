// `envelope serve --log-level info` logs one line per model call (they run outside Fastify, which logs the rest),
// and no line ever holds a caller's API key.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { stopProcess } from '../bench/processes.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { tempDbPath } from './helpers/gateway.js';
import { startCli, type RunningCli } from './helpers/process.js';

const KEYS = ['sk-ant-log-secret-111', 'sk-openai-log-secret-222'];

describe('gateway: request logs', () => {
  let sim: Sim;
  let serve: RunningCli;
  before(async () => {
    sim = await startSim({ outputTokens: 40 });
    serve = await startCli(['serve', '--port', '0', '--store', `sqlite:${tempDbPath()}`, '--anthropic-url', sim.url, '--openai-url', `${sim.url}/v1`, '--log-level', 'info']);
  });
  after(async () => {
    await stopProcess(serve.child);
    await sim.close();
  });

  it('logs each model call with its status and task, and never a key', async () => {
    const claude = new Anthropic({ apiKey: KEYS[0], baseURL: serve.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'logged-1', 'x-envelope-budget': '20000', 'x-envelope-policy': 'hard' } });
    await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    // Past the budget's floor: refused with 402.
    await assert.rejects(claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 4_000, messages: [{ role: 'user', content: 'x'.repeat(60_000) }] }));
    const gpt = new OpenAI({ apiKey: KEYS[1], baseURL: `${serve.url}/v1`, maxRetries: 0 });
    await gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
    await stopProcess(serve.child);

    const lines = serve
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; url?: string; statusCode?: number; task?: string; responseTimeMs?: number });
    const calls = lines.filter((l) => l.msg === 'model call');
    assert.deepEqual(
      calls.map(({ url, statusCode, task }) => ({ url, statusCode, task })),
      [
        { url: '/v1/messages', statusCode: 200, task: 'logged-1' },
        { url: '/v1/messages', statusCode: 402, task: 'logged-1' },
        { url: '/v1/chat/completions', statusCode: 200, task: undefined },
      ],
    );
    assert.ok(calls.every((c) => typeof c.responseTimeMs === 'number' && c.responseTimeMs >= 0));
    for (const key of KEYS) assert.ok(!serve.stdout().includes(key) && !serve.stderr().includes(key), 'no key in any log line');
  });
});
