// `envelope serve --log-level info` logs one line per model call (they run outside Fastify, which logs the rest)
// with what the call was and cost, and no line ever holds a caller's API key or a query string.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { stopProcess } from '../bench/processes.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { tempDbPath } from './helpers/gateway.js';
import { startCli, type RunningCli } from './helpers/process.js';

const KEYS = ['sk-ant-log-secret-111', 'sk-openai-log-secret-222', 'AIza-query-secret-333'];

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

  it('logs each model call with its status, task, model, tokens, cost and outcome, and never a key or a query', async () => {
    const claude = new Anthropic({ apiKey: KEYS[0], baseURL: serve.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'logged-1', 'x-envelope-budget': '20000', 'x-envelope-policy': 'hard', 'x-envelope-meter': 'billed' } });
    await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    // Past the budget's floor: refused with 402.
    await assert.rejects(claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 4_000, messages: [{ role: 'user', content: 'x'.repeat(90_000) }] }));
    const gpt = new OpenAI({ apiKey: KEYS[1], baseURL: `${serve.url}/v1`, maxRetries: 0 });
    await gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
    // A stream, and a query string holding a secret (as Gemini's ?key= does): the line has the path alone.
    const streamed = await fetch(`${serve.url}/v1/chat/completions?key=${KEYS[2]}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS[1]}`, 'x-envelope-task': 'logged-2', 'x-envelope-budget': '20000' },
      body: JSON.stringify({ model: 'gpt-4.1', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    await streamed.text();
    await stopProcess(serve.child);

    const out = serve.stdout().split('\n').filter(Boolean);
    // Logging is JSON: the start-up lines too.
    assert.ok(out.every((l) => l.startsWith('{')), out.filter((l) => !l.startsWith('{')).join('\n'));
    const lines = out.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.filter((l) => l.msg === 'envelope started').map((l) => Object.keys(l).filter((k) => ['store', 'dashboard', 'admin'].includes(k))), [['store', 'dashboard', 'admin']]);
    assert.equal(lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('listening on http://127.0.0.1:')).length, 1);
    const calls = lines.filter((l) => l.msg === 'model call');
    // The simulator answers with 40 output tokens and counts the prompt the gateway sent, countdown text included
    // (a task's call carries one). Costs: claude-sonnet-4-6 at $3/$15, gpt-4.1 at $2/$8 per Mtok.
    assert.deepEqual(
      calls.map(({ url, statusCode, task, model, tokens, inputTokens, outputTokens, costUsd, outcome }) => ({ url, statusCode, task, model, tokens, inputTokens, outputTokens, costUsd, outcome })),
      [
        { url: '/v1/messages', statusCode: 200, task: 'logged-1', model: 'claude-sonnet-4-6', tokens: 64, inputTokens: 24, outputTokens: 40, costUsd: 0.000672, outcome: 'ok' },
        { url: '/v1/messages', statusCode: 402, task: 'logged-1', model: 'claude-sonnet-4-6', tokens: null, inputTokens: undefined, outputTokens: undefined, costUsd: null, outcome: 'refused' },
        { url: '/v1/chat/completions', statusCode: 200, task: undefined, model: 'gpt-4.1', tokens: 44, inputTokens: 4, outputTokens: 40, costUsd: 0.000328, outcome: 'ok' },
        { url: '/v1/chat/completions?[redacted]', statusCode: 200, task: 'logged-2', model: 'gpt-4.1', tokens: 64, inputTokens: 24, outputTokens: 40, costUsd: 0.000368, outcome: 'ok' },
      ],
    );
    assert.ok(calls.every((c) => typeof c.responseTimeMs === 'number' && c.responseTimeMs >= 0));
    for (const key of KEYS) assert.ok(!serve.stdout().includes(key) && !serve.stderr().includes(key), 'no key in any log line');
  });
});
