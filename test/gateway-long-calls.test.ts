// A call that outlasts the reservation time-to-live (a long stream) keeps its hold: the gateway keeps it alive while it
// works, so the sweeper never releases it mid-call and the settlement lands on a live hold, inside the hard budget.
// A hold whose holder stopped (no keep-alive) is released one time-to-live later.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const TTL_MS = 300;

describe('gateway: calls longer than the reservation time-to-live', () => {
  let sim: Sim;
  let gw: TestGateway;
  let sweeper: NodeJS.Timeout;
  before(async () => {
    // 1,280 output tokens in 64-character deltas, 25 ms apart: a stream of about 2 s, several times the TTL.
    sim = await startSim({ outputTokens: 1_280, chunkDelayMs: 25 });
    gw = await startGateway({ anthropicUrl: sim.url }, { config: { reservationTtlMs: TTL_MS } });
    sweeper = setInterval(() => void gw.ledger.sweep(), 50);
  });
  after(async () => {
    clearInterval(sweeper);
    await gw.close();
    await sim.close();
  });

  it('keeps a streaming call’s hold alive past the TTL and settles it in full', async () => {
    const claude = new Anthropic({ apiKey: 'k', baseURL: gw.url, maxRetries: 0, defaultHeaders: { 'x-envelope-task': 'long-1', 'x-envelope-budget': '20000', 'x-envelope-meter': 'billed', 'x-envelope-policy': 'hard' } });
    const t0 = performance.now();
    const stream = claude.messages.stream({ model: 'claude-sonnet-4-6', max_tokens: 2_000, messages: [{ role: 'user', content: 'write a long report' }] });
    const msg = await stream.finalMessage();
    assert.ok(performance.now() - t0 > 3 * TTL_MS, 'the stream outlasted the TTL several times');
    const row = await gw.ledger.task('long-1');
    assert.deepEqual([row.used, row.reserved, row.callsReserved], [msg.usage.input_tokens + msg.usage.output_tokens, 0, 0]);
    assert.equal(msg.usage.output_tokens, 1_280);
    const expired = (await gw.ledger.events({ taskId: 'long-1' })).filter((e) => e.type === 'reservation_expired');
    assert.deepEqual(expired, []);
  });

  it('releases a hold nobody keeps alive one TTL later', async () => {
    await gw.ledger.createTask({ id: 'long-2', total: 20_000, policy: 'hard', meter: 'billed' });
    const g = await gw.ledger.reserve({ taskId: 'long-2', model: null, inputTokens: 1_000, outputTokensMax: 2_000 });
    const t0 = Date.now();
    let row = await gw.ledger.task('long-2');
    while (row.reserved > 0 && Date.now() - t0 < 10_000) {
      await new Promise((r) => setTimeout(r, 50));
      row = await gw.ledger.task('long-2');
    }
    assert.ok(Date.now() - t0 >= TTL_MS - 5, 'not before its TTL');
    assert.deepEqual([row.reserved, row.callsReserved], [0, 0]);
    const expired = (await gw.ledger.events({ taskId: 'long-2' })).filter((e) => e.type === 'reservation_expired');
    assert.deepEqual(expired.map((e) => e.data.reservation), [g.reservation.id]);
  });
});
