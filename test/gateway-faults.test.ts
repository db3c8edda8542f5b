// Concurrency and upstream faults: 50 parallel calls never overspend; every fault releases its reservation,
// answers in the provider's shape, and the gateway keeps serving.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort } from '../bench/processes.js';

const params = { model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user' as const, content: 'hello world!' }] };

describe('gateway: concurrency and upstream faults', () => {
  let sim: Sim;
  let gw: TestGateway;
  before(async () => {
    sim = await startSim({ outputTokens: 1_000 });
    gw = await startGateway({ anthropicUrl: sim.url, upstreamTimeoutMs: 400 });
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  it('never overspends a hard budget under 50 parallel calls', async () => {
    const claude = new Anthropic({ apiKey: 'k', baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'par-1', 'x-envelope-budget': '25000', 'x-envelope-meter': 'billed', 'x-envelope-policy': 'hard' } });
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => claude.messages.create(params)));
    const ok = results.filter((r): r is PromiseFulfilledResult<Anthropic.Message> => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    assert.ok(refused.every((r) => (r as PromiseRejectedResult).reason.status === 402));
    const sum = ok.reduce((s, r) => s + r.value.usage.input_tokens + r.value.usage.output_tokens, 0);
    const row = await gw.ledger.task('par-1');
    assert.equal(row.used, sum);
    assert.ok(row.used <= 25_000, `used ${row.used}`);
    assert.deepEqual([row.reserved, row.calls, ok.length + refused.length], [0, ok.length, 50]);
    // Each call reserves at least its 1,000 output tokens; at most 25 fit, and refusals happen only when full.
    assert.ok(ok.length >= 20 && ok.length <= 25, `${ok.length} calls succeeded`);
  });

  it('releases the reservation on every kind of upstream fault and keeps serving', async () => {
    const claude = new Anthropic({ apiKey: 'k', baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'fault-1', 'x-envelope-budget': '30000', 'x-envelope-meter': 'billed', 'x-envelope-policy': 'hard' } });
    const cases: Array<[string, number, RegExp]> = [
      ['500', 500, /simulated internal error/],
      ['529', 529, /simulated overload/],
      ['malformed', 502, /malformed response/],
      ['hang', 502, /did not answer/],
      ['reset', 502, /upstream/],
    ];
    for (const [fault, status, message] of cases) {
      await assert.rejects(
        claude.messages.create(params, { headers: { 'x-sim-fault': fault } }),
        (e: any) => e.status === status && message.test(e.message) && typeof e.error?.error?.type === 'string',
        `fault ${fault}`,
      );
      const row = await gw.ledger.task('fault-1');
      assert.deepEqual([row.used, row.reserved, row.calls, row.callsReserved], [0, 0, 0, 0], `after fault ${fault}`);
    }
    const fine = await claude.messages.create(params);
    assert.equal((await gw.ledger.task('fault-1')).used, fine.usage.input_tokens + fine.usage.output_tokens);
  });

  it('answers a refused connection with 502 in the provider shape and releases', async () => {
    const dead = await startGateway({ anthropicUrl: `http://127.0.0.1:${await freePort()}` });
    try {
      const claude = new Anthropic({ apiKey: 'k', baseURL: dead.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'dead-1', 'x-envelope-budget': '20000', 'x-envelope-meter': 'billed' } });
      await assert.rejects(claude.messages.create(params), (e: any) => e.status === 502 && e.error?.error?.type === 'api_error' && /did not answer/.test(e.message));
      const row = await dead.ledger.task('dead-1');
      assert.deepEqual([row.used, row.reserved], [0, 0]);
    } finally {
      await dead.close();
    }
  });
});
