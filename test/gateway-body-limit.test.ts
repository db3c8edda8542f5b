// Requests the gateway will not take whole (over its body limit) are answered in the provider's own error shape,
// with 413, before anything is reserved or forwarded; a client that leaves mid-upload changes nothing. The gateway
// keeps serving.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const LIMIT = 4_096;

describe('gateway: a request over the body limit', () => {
  let sim: Sim;
  let gw: TestGateway;
  before(async () => {
    sim = await startSim({ outputTokens: 50 });
    gw = await startGateway({ anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1`, bodyLimitBytes: LIMIT });
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  it('is refused with 413 in each provider’s shape, nothing reserved or forwarded', async () => {
    const big = 'x'.repeat(LIMIT * 2);
    const headers = { 'x-envelope-task': 'big-1', 'x-envelope-budget': '50000', 'x-envelope-meter': 'billed', 'x-envelope-policy': 'hard' };
    const claude = new Anthropic({ apiKey: 'sk-ant-test', baseURL: gw.url, maxRetries: 0, defaultHeaders: headers });
    const message = `the request body is over this gateway's limit of ${LIMIT.toLocaleString('en-US')} bytes`;
    await assert.rejects(
      claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: big }] }),
      (e: unknown) => e instanceof Anthropic.APIError && e.status === 413 && JSON.stringify(e.error) === JSON.stringify({ type: 'error', error: { type: 'request_too_large', message } }),
    );
    const gpt = new OpenAI({ apiKey: 'sk-test', baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: headers });
    await assert.rejects(
      gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: big }] }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 413 && (e.error as { type?: string }).type === 'invalid_request_error' && e.message.includes(message),
    );
    assert.equal(await gw.ledger.findTask('big-1'), undefined, 'nothing created or reserved');
    assert.deepEqual(((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: unknown[] }).requests, []);
    // And it keeps serving calls that fit.
    const ok = await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal((await gw.ledger.task('big-1')).used, ok.usage.input_tokens + ok.usage.output_tokens);
  });

  it('changes nothing when a client leaves in the middle of sending its request', async () => {
    const url = new URL(gw.url);
    const socket = connect(Number(url.port), url.hostname);
    await new Promise((r) => socket.once('connect', r));
    const part = '{"model":"claude-sonnet-4-6","max_tokens":100,"messages":[';
    socket.write(
      `POST /v1/messages HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\nx-api-key: k\r\n` +
        `x-envelope-task: left-1\r\nx-envelope-budget: 50000\r\nx-envelope-meter: billed\r\ncontent-length: 2000\r\n\r\n${part}`,
    );
    await sleep(50);
    socket.destroy();
    await sleep(50);
    assert.equal(await gw.ledger.findTask('left-1'), undefined, 'nothing created or reserved');
    assert.deepEqual(((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: unknown[] }).requests.length, 1, 'only the call of the test before');
    const claude = new Anthropic({ apiKey: 'sk-ant-test', baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'left-1', 'x-envelope-budget': '50000', 'x-envelope-meter': 'billed' } });
    const ok = await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal((await gw.ledger.task('left-1')).used, ok.usage.input_tokens + ok.usage.output_tokens);
  });
});
