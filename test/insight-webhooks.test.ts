// Webhooks against a real HTTP receiver on loopback: order, retry after a 500, signatures, cursors across a
// restart, and giving up. Events come from a scripted ledger run on the memory store.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StoredEvent } from '../src/budget/types.js';
import { Ledger } from '../src/ledger/ledger.js';
import { MemoryStore } from '../src/store/memory.js';
import { FileCursorStore } from '../src/insight/webhook-cursors.js';
import { sign, verifySignature, WebhookDispatcher, type DeliveryReport } from '../src/insight/webhooks.js';
import { startReceiver } from './helpers/http-receiver.js';

const SECRET = 'whsec-test-0123456789abcdef';
const usage = (output: number) => ({ inputTokens: 1_000, outputTokens: output, cacheWriteTokens: 0, cacheReadTokens: 0 });

/** A task that crosses 70 % and 85 %, is exhausted, overruns, and closes: 5 events. */
async function scriptedRun(ledger: Ledger, id: string): Promise<void> {
  await ledger.createTask({ id, total: 20_000, policy: 'advisory', label: 'bug-fix' });
  for (const output of [13_000, 3_000, 3_500]) {
    const g = await ledger.reserve({ taskId: id, model: null, inputTokens: 1_000, outputTokensMax: output });
    await ledger.settle(g.reservation.id, usage(output));
  }
  await ledger.close(id);
}

describe('webhooks', () => {
  let ledger: Ledger;
  let events: StoredEvent[];
  let dir: string;
  before(async () => {
    ledger = new Ledger(new MemoryStore());
    await scriptedRun(ledger, 'w1');
    events = await ledger.events({});
    dir = await mkdtemp(join(tmpdir(), 'envelope-webhooks-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the scripted run stores five events', () => {
    assert.deepEqual(
      events.map((e) => [e.seq, e.type]),
      [
        [1, 'threshold_crossed'],
        [2, 'threshold_crossed'],
        [3, 'exhausted'],
        [4, 'overrun'],
        [5, 'closed'],
      ],
    );
  });

  it('delivers every event in order, retries after a 500, and signs each attempt', async () => {
    // The second request (event 2, first try) fails once.
    const receiver = await startReceiver((n) => (n === 1 ? 500 : 200));
    const reports: DeliveryReport[] = [];
    const d = new WebhookDispatcher({
      targets: [{ url: `${receiver.url}/hook`, secret: SECRET }],
      source: ledger,
      startAfter: 0,
      backoffMs: 5,
      onDelivery: (r) => reports.push(r),
    });
    try {
      await d.drain();
      assert.deepEqual(
        receiver.received.map((r) => [r.headers['x-envelope-event-id'], r.headers['x-envelope-attempt'], r.headers['x-envelope-event']]),
        [
          ['1', '1', 'threshold_crossed'],
          ['2', '1', 'threshold_crossed'],
          ['2', '2', 'threshold_crossed'],
          ['3', '1', 'exhausted'],
          ['4', '1', 'overrun'],
          ['5', '1', 'closed'],
        ],
      );
      assert.deepEqual(
        reports.map((r) => [r.seq, r.delivered, r.attempts, r.status]),
        [
          [1, true, 1, 200],
          [2, true, 2, 200],
          [3, true, 1, 200],
          [4, true, 1, 200],
          [5, true, 1, 200],
        ],
      );
      for (const r of receiver.received) {
        assert.equal(r.url, '/hook');
        assert.equal(r.headers['content-type'], 'application/json');
        assert.ok(verifySignature({ secret: SECRET, body: r.body, signature: r.headers['x-envelope-signature'], timestamp: r.headers['x-envelope-timestamp'] }));
      }
      // The body is the stored event itself.
      assert.deepEqual(JSON.parse(receiver.received[5]!.body), events[4]);
      assert.deepEqual(JSON.parse(receiver.received[0]!.body).data, { threshold: 0.7, utilization: 0.7, state: 'scoping' });
      assert.deepEqual(d.cursors(), { [`${receiver.url}/hook`]: 5 });
      // Caught up: another pass sends nothing.
      await d.drain();
      assert.equal(receiver.received.length, 6);
    } finally {
      await d.stop();
      await receiver.close();
    }
  });

  it('verifySignature refuses a wrong secret, a changed body, a changed timestamp and an old timestamp', () => {
    const body = JSON.stringify(events[0]);
    const ts = 1_800_000_000;
    const signature = sign(SECRET, ts, body);
    assert.match(signature, /^sha256=[0-9a-f]{64}$/);
    const nowMs = ts * 1000 + 10_000;
    const ok = { secret: SECRET, body, signature, timestamp: String(ts), nowMs };
    assert.equal(verifySignature(ok), true);
    assert.equal(verifySignature({ ...ok, body: Buffer.from(body) }), true);
    assert.equal(verifySignature({ ...ok, secret: `${SECRET}x` }), false);
    assert.equal(verifySignature({ ...ok, body: body.replace('0.7', '0.8') }), false);
    assert.equal(verifySignature({ ...ok, timestamp: String(ts + 1) }), false);
    assert.equal(verifySignature({ ...ok, nowMs: (ts + 301) * 1000 }), false);
    assert.equal(verifySignature({ ...ok, signature: undefined }), false);
    assert.equal(verifySignature({ ...ok, signature: 'sha256=00' }), false);
    assert.equal(verifySignature({ ...ok, timestamp: 'soon' }), false);
  });

  it('keeps its cursor in a file: a restarted dispatcher sends only new events, none twice', async () => {
    const receiver = await startReceiver();
    const cursorFile = join(dir, 'cursors.json');
    const target = { id: 'ops', url: receiver.url, secret: SECRET };
    const first = new WebhookDispatcher({ targets: [target], source: ledger, cursors: new FileCursorStore(cursorFile), startAfter: 0 });
    await first.drain();
    await first.stop();
    assert.deepEqual(JSON.parse(await readFile(cursorFile, 'utf8')), { ops: 5 });

    await scriptedRun(ledger, 'w2'); // events 6..10
    const second = new WebhookDispatcher({ targets: [target], source: ledger, cursors: new FileCursorStore(cursorFile) });
    await second.drain();
    await second.stop();
    assert.deepEqual(
      receiver.received.map((r) => Number(r.headers['x-envelope-event-id'])),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert.deepEqual(JSON.parse(await readFile(cursorFile, 'utf8')), { ops: 10 });
    await receiver.close();
  });

  it('started live, it delivers events as the ledger writes them, filtered by type', async () => {
    let twoArrived!: () => void;
    const got = new Promise<void>((resolve) => (twoArrived = resolve));
    const receiver = await startReceiver((n) => {
      if (n === 1) setImmediate(twoArrived);
      return 200;
    });
    const d = new WebhookDispatcher({
      targets: [{ url: receiver.url, secret: SECRET, types: ['exhausted', 'closed'] }],
      source: ledger,
      pollMs: 60_000, // only the ledger's change signal wakes it
    }).start();
    await d.drain(); // starts from "now": nothing old is sent
    assert.equal(receiver.received.length, 0);
    await scriptedRun(ledger, 'w3');
    await got;
    await d.stop();
    assert.deepEqual(
      receiver.received.map((r) => [r.headers['x-envelope-event'], JSON.parse(r.body).taskId]),
      [
        ['exhausted', 'w3'],
        ['closed', 'w3'],
      ],
    );
    await receiver.close();
  });

  it('gives up after the last attempt on 503, at once on 400, and moves on', async () => {
    const receiver = await startReceiver((_n, r) => (r.headers['x-envelope-event-id'] === '1' ? 503 : r.headers['x-envelope-event-id'] === '2' ? 400 : 200));
    const reports: DeliveryReport[] = [];
    const d = new WebhookDispatcher({
      targets: [{ url: receiver.url, secret: SECRET }],
      source: { events: (q) => ledger.events({ ...q, taskId: undefined }).then((es) => es.filter((e) => e.seq <= 3)) },
      startAfter: 0,
      maxAttempts: 3,
      backoffMs: 1,
      onDelivery: (r) => reports.push(r),
    });
    await d.drain();
    await d.stop();
    await receiver.close();
    assert.deepEqual(
      reports.map((r) => [r.seq, r.delivered, r.attempts, r.status, r.error]),
      [
        [1, false, 3, 503, 'HTTP 503 after 3 attempts; skipped'],
        [2, false, 1, 400, 'HTTP 400 (not retried)'],
        [3, true, 1, 200, undefined],
      ],
    );
    assert.equal(receiver.received.length, 5);
  });

  it('refuses bad targets with a clear error', () => {
    assert.throws(() => new WebhookDispatcher({ targets: [{ url: 'ftp://x', secret: SECRET }], source: ledger }), /must be http or https/);
    assert.throws(() => new WebhookDispatcher({ targets: [{ url: 'http://x', secret: 'short' }], source: ledger }), /at least 16 characters/);
    assert.throws(
      () => new WebhookDispatcher({ targets: [{ url: 'http://x', secret: SECRET }, { url: 'http://x', secret: SECRET }], source: ledger }),
      /share the id/,
    );
  });
});
