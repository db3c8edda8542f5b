// The meter through the gateway's headers: chosen with x-envelope-meter, inherited by a sub-agent's task, and bad
// values refused in the provider's own shape with nothing created or forwarded.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

describe('gateway: meters', () => {
  let sim: Sim;
  let gw: TestGateway;
  const forwarded = async (): Promise<number> => ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: unknown[] }).requests.length;
  before(async () => {
    sim = await startSim({ outputTokens: 100 });
    gw = await startGateway({ anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1` });
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  it('refuses an unknown meter, or a loop meter on a USD task, in the provider’s shape, creating and forwarding nothing', async () => {
    const params = { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user' as const, content: 'hi' }] };
    const claude = (headers: Record<string, string>) => new Anthropic({ apiKey: 'k', baseURL: gw.url, maxRetries: 0, defaultHeaders: headers });
    await assert.rejects(claude({ 'x-envelope-task': 'm-bad-1', 'x-envelope-budget': '30000', 'x-envelope-meter': 'fresh' }).messages.create(params), (e: unknown) =>
      e instanceof Anthropic.APIError && e.status === 400 && (e.error as { error: { type: string } }).error.type === 'invalid_request_error' && /meter/.test(e.message),
    );
    await assert.rejects(claude({ 'x-envelope-task': 'm-bad-2', 'x-envelope-budget': '5', 'x-envelope-unit': 'usd', 'x-envelope-meter': 'loop' }).messages.create(params), (e: unknown) =>
      e instanceof Anthropic.APIError && e.status === 400 && /USD task is always billed/.test(e.message),
    );
    const gpt = new OpenAI({ apiKey: 'k', baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'm-bad-3', 'x-envelope-budget': '30000', 'x-envelope-meter': 'BILLED' } });
    await assert.rejects(gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }), (e: unknown) =>
      e instanceof OpenAI.APIError && e.status === 400 && (e.error as { type: string }).type === 'invalid_request_error' && /meter/.test(e.message),
    );
    for (const id of ['m-bad-1', 'm-bad-2', 'm-bad-3']) assert.equal(await gw.ledger.findTask(id), undefined, id);
    assert.equal(await forwarded(), 0);
  });

  it('never refuses on an estimate a call that really fits: at the edge it asks the provider’s exact count', async () => {
    // 57,000 characters: ~19,100 tokens estimated (÷ 3 bytes), too many for a 20,000 hard budget with the 1,024-token
    // floor; counted by the provider (the simulator: 4 characters a token), 14,253: the call goes through as asked.
    const claude = new Anthropic({ apiKey: 'k', baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'm-edge', 'x-envelope-budget': '20000', 'x-envelope-policy': 'hard', 'x-envelope-meter': 'billed' } });
    await fetch(`${sim.url}/sim/requests`, { method: 'DELETE' });
    const res = await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 4_000, messages: [{ role: 'user', content: 'x'.repeat(57_000) }] });
    const log = ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Array<{ path: string; raw: string }> }).requests;
    assert.deepEqual(log.map((r) => r.path), ['/v1/messages/count_tokens', '/v1/messages']);
    const sent = JSON.parse(log[1]!.raw) as { max_tokens: number };
    const row = await gw.ledger.task('m-edge');
    assert.deepEqual([row.used, row.reserved], [res.usage.input_tokens + res.usage.output_tokens, 0]);
    assert.deepEqual([sent.max_tokens, row.used <= 20_000], [4_000, true]);
  });

  it('counts in the meter the headers name, and a sub-agent’s task takes its parent’s policy and meter', async () => {
    await gw.ledger.createTask({ id: 'm-parent', total: 100_000, policy: 'hard', meter: 'billed' });
    const child = new Anthropic({ apiKey: 'k', baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'm-parent/sub', 'x-envelope-parent': 'm-parent', 'x-envelope-budget': '20000' } });
    const res = await child.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'find the cause' }] });
    const sub = await gw.ledger.task('m-parent/sub');
    assert.deepEqual([sub.policy, sub.meter, sub.used], ['hard', 'billed', res.usage.input_tokens + res.usage.output_tokens]);
    const loop = new Anthropic({ apiKey: 'k', baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'm-loop', 'x-envelope-budget': '20000', 'x-envelope-meter': 'loop' } });
    const first = await loop.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'find the cause' }] });
    assert.deepEqual([(await gw.ledger.task('m-loop')).meter, (await gw.ledger.task('m-loop')).used], ['loop', first.usage.output_tokens]);
  });
});
