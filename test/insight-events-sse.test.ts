// GET /envelope/v1/events (Server-Sent Events) on the real gateway: a client that drops its connection and comes
// back with Last-Event-ID gets every event written meanwhile, none twice and none lost.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { StoredEvent } from '../src/budget/types.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const ADMIN = 'admin-token-sse';
const usage = (output: number) => ({ inputTokens: 1_000, outputTokens: output, cacheWriteTokens: 0, cacheReadTokens: 0 });

interface SseEvent {
  id: number;
  event: string;
  data: StoredEvent;
}

/** Reads SSE frames from a live response until `want` events arrived, then drops the connection (anything more is lost). */
async function readEvents(url: string, lastEventId: number | null, want: number): Promise<SseEvent[]> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${ADMIN}`, accept: 'text/event-stream', ...(lastEventId !== null ? { 'last-event-id': String(lastEventId) } : {}) },
    signal: abort.signal,
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const out: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  const reader = res.body!.getReader();
  try {
    while (out.length < want) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while (out.length < want && (end = buffer.indexOf('\n\n')) !== -1) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = new Map<string, string>();
        for (const line of frame.split('\n')) {
          if (line.startsWith(':')) continue; // comments: the greeting and keep-alives
          const colon = line.indexOf(':');
          fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
        }
        if (fields.has('data')) out.push({ id: Number(fields.get('id')), event: fields.get('event')!, data: JSON.parse(fields.get('data')!) as StoredEvent });
      }
    }
  } finally {
    abort.abort(); // the dropped connection
    await reader.cancel().catch(() => undefined);
  }
  return out;
}

/** Crosses 70 % and 85 %, runs out and over, and closes: five events. */
async function burn(gw: TestGateway, id: string): Promise<void> {
  await gw.ledger.createTask({ id, total: 20_000, label: 'sse' });
  for (const output of [13_000, 3_000, 3_500]) {
    const g = await gw.ledger.reserve({ taskId: id, model: null, inputTokens: 1_000, outputTokensMax: output });
    await gw.ledger.settle(g.reservation.id, usage(output));
  }
  await gw.ledger.close(id);
}

describe('event stream resume', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ adminToken: ADMIN, anthropicUrl: 'http://127.0.0.1:9', openaiUrl: 'http://127.0.0.1:9/v1' });
  });
  after(() => gw.close());

  it('loses no event across a dropped connection and sends none twice', async () => {
    const url = `${gw.url}/envelope/v1/events`;
    await burn(gw, 'sse-1'); // events 1..5
    // Live: read three of them, then drop the connection.
    const first = await readEvents(url, null, 3);
    assert.deepEqual(first.map((e) => e.id), [1, 2, 3]);
    // While the client is away, more events are written.
    await burn(gw, 'sse-2'); // events 6..10
    const rest = await readEvents(url, first.at(-1)!.id, 7);
    assert.deepEqual(rest.map((e) => e.id), [4, 5, 6, 7, 8, 9, 10]);

    const stored = await gw.ledger.events({});
    const seen = [...first, ...rest];
    assert.deepEqual(seen.map((e) => e.data), stored);
    assert.deepEqual(seen.map((e) => e.event), stored.map((e) => e.type));
    assert.deepEqual(seen.map((e) => e.event), [
      'threshold_crossed', 'threshold_crossed', 'exhausted', 'overrun', 'closed',
      'threshold_crossed', 'threshold_crossed', 'exhausted', 'overrun', 'closed',
    ]);

    // Resuming while events are being written live: the stream picks them up without a reconnect.
    const live = readEvents(url, 10, 5);
    await burn(gw, 'sse-3');
    assert.deepEqual((await live).map((e) => e.id), [11, 12, 13, 14, 15]);
  });
});
