// A gateway killed with SIGKILL mid-run and started again on the same SQLite file keeps every budget; the stream
// it was serving leaves a reservation that the restarted gateway releases after its time-to-live.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Anthropic from '@anthropic-ai/sdk';
import { Ledger } from '../src/ledger/ledger.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDbPath } from './helpers/gateway.js';
import { fromAnthropic, LoopMeter } from './helpers/loop-meter.js';
import { kill9, startCli, type RunningCli } from './helpers/process.js';

describe('gateway: SIGKILL and restart', () => {
  let sim: Sim;
  let gateway: RunningCli | undefined;
  const db = tempDbPath();
  const serve = () =>
    startCli(['serve', '--port', '0', '--store', `sqlite:${db}`, '--anthropic-url', sim.url, '--reservation-ttl-ms', '1000', '--sweep-interval-ms', '200', '--log-level', 'silent']);
  before(async () => {
    sim = await startSim({ outputTokens: 500, chunkChars: 8, chunkDelayMs: 20 });
  });
  after(async () => {
    if (gateway && gateway.child.exitCode === null) await kill9(gateway.child);
    await sim.close();
  });

  it('keeps every budget and continues the run where it was', async () => {
    gateway = await serve();
    const headers = { 'x-envelope-task': 'run-1', 'x-envelope-budget': '50000', 'x-envelope-policy': 'hard' };
    const turn = (url: string) =>
      new Anthropic({ apiKey: 'k', baseURL: url, maxRetries: 0, defaultHeaders: headers }).messages.create({
        model: 'claude-sonnet-4-6',
        max_tokens: 1_000,
        messages: [{ role: 'user', content: 'next step' }],
      });
    // The loop meter, whose conversation baseline lives in the store and so outlives the process.
    const meter = new LoopMeter();
    for (let i = 0; i < 3; i++) meter.charge(fromAnthropic((await turn(gateway.url)).usage));
    // A stream in flight when the process dies: its reservation stays behind.
    const inflight = fetch(`${gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'k', ...headers },
      body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 1_000, stream: true, messages: [{ role: 'user', content: 'long step' }] }),
    }).then(async (res) => {
      const reader = res.body!.getReader();
      await reader.read();
      return reader;
    });
    await inflight;
    await kill9(gateway.child);

    const reopened = new Ledger(new SqliteStore(db));
    const atKill = await reopened.task('run-1');
    assert.deepEqual([atKill.used, atKill.calls, atKill.callsReserved], [meter.used, 3, 1]);
    assert.ok(atKill.reserved > 0);
    await reopened.shutdown();

    gateway = await serve();
    meter.charge(fromAnthropic((await turn(gateway.url)).usage));
    // After its 1 s time-to-live the dead stream's hold is released by the restarted gateway's sweeper.
    await sleep(1_500);
    const ledger = new Ledger(new SqliteStore(db));
    const row = await ledger.task('run-1');
    assert.deepEqual([row.used, row.reserved, row.calls, row.callsReserved], [meter.used, 0, 4, 0]);
    const expired = (await ledger.events({ taskId: 'run-1' })).filter((e) => e.type === 'reservation_expired');
    assert.equal(expired.length, 1);
    await ledger.shutdown();
  });
});
