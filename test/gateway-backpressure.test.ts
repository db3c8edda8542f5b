// Backpressure in the stream relay (SPEC §2): the gateway reads the provider no faster than its client takes, within a
// bounded buffer; a client that takes nothing for the drain timeout is cut off, and the rest is still read and charged.
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type TestGateway } from './helpers/gateway.js';

/** Output tokens the fake provider reports for its whole answer. */
const OUTPUT_TOKENS = 50_000;
/** What the provider would send in all: far more than any socket buffers hold. */
const STREAM_BYTES = 192 * 1024 * 1024;
const DELTA = `event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'x'.repeat(16_000) } })}\n\n`;

/** An Anthropic-shaped provider that streams as fast as its socket takes, and counts what it got written. */
class FastProvider {
  server: Server;
  written = 0;
  url = '';

  constructor() {
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => void this.stream(res, Number(req.headers['x-test-bytes'] ?? STREAM_BYTES)));
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async stream(res: ServerResponse, bytes: number): Promise<void> {
    this.written = 0;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const send = async (text: string): Promise<void> => {
      this.written += text.length;
      if (!res.write(text)) await new Promise((r) => res.once('drain', r));
    };
    await send(`event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { id: 'msg_1', usage: { input_tokens: 10, output_tokens: 1 } } })}\n\n`);
    while (this.written < bytes && !res.destroyed) await send(DELTA);
    await send(`event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', usage: { output_tokens: OUTPUT_TOKENS } })}\n\n`);
    await send('event: message_stop\ndata: {"type":"message_stop"}\n\n');
    res.end();
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A raw HTTP/1.1 client, so the test decides when (and whether) the answer is read. */
function request(gatewayUrl: string, taskId: string, streamBytes = STREAM_BYTES): Socket {
  const { port } = new URL(gatewayUrl);
  const body = JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 60_000, stream: true, messages: [{ role: 'user', content: 'go' }] });
  const socket = connect(Number(port), '127.0.0.1');
  socket.write(
    [
      'POST /v1/messages HTTP/1.1',
      `host: 127.0.0.1:${port}`,
      'content-type: application/json',
      'x-api-key: k',
      'anthropic-version: 2023-06-01',
      `x-envelope-task: ${taskId}`,
      'x-envelope-budget: 1000000',
      'x-envelope-meter: billed',
      `x-test-bytes: ${streamBytes}`,
      `content-length: ${Buffer.byteLength(body)}`,
      'connection: close',
      '',
      body,
    ].join('\r\n'),
  );
  return socket;
}

/** Waits until `value()` has not changed for `quietMs` (what a stalled pipe looks like). */
async function whenStill(value: () => number, quietMs = 400): Promise<number> {
  let last = -1;
  let since = Date.now();
  for (;;) {
    const now = value();
    if (now !== last) [last, since] = [now, Date.now()];
    else if (Date.now() - since >= quietMs) return now;
    await sleep(50);
  }
}

describe('gateway: backpressure in the stream relay', () => {
  let provider: FastProvider;
  let gw: TestGateway;
  before(async () => {
    provider = new FastProvider();
    await provider.start();
    gw = await startGateway({ anthropicUrl: provider.url, drainTimeoutMs: 60_000 });
  });
  after(async () => {
    await gw.close();
    await provider.close();
  });

  it('reads the provider no faster than the client takes', async () => {
    const socket = request(gw.url, 'bp-1');
    await new Promise((r) => socket.once('data', r));
    socket.pause();
    // The client reads nothing: the provider gets only as far as the socket buffers on the way take.
    const stalledAt = await whenStill(() => provider.written);
    assert.ok(stalledAt < STREAM_BYTES / 3, `the provider wrote ${stalledAt} bytes to a client that read nothing`);
    // Once the client reads again, everything arrives, and the call is charged in full.
    let tail = '';
    let received = 0;
    socket.on('data', (d: Buffer) => {
      received += d.length;
      tail = (tail + d.toString('latin1')).slice(-300);
    });
    socket.resume();
    await new Promise((r) => socket.once('end', r));
    assert.ok(received >= STREAM_BYTES, `received ${received}`);
    assert.match(tail, /: envelope \{"task":"bp-1","used":50010,/);
    const row = await gw.ledger.task('bp-1');
    assert.deepEqual([row.used, row.reserved], [10 + OUTPUT_TOKENS, 0]);
  });

  it('cuts off a client that takes nothing for the drain timeout, and still charges what the provider sent', async () => {
    const quick = await startGateway({ anthropicUrl: provider.url, drainTimeoutMs: 2_000 });
    try {
      const streamBytes = 64 * 1024 * 1024;
      const socket = request(quick.url, 'bp-2', streamBytes);
      let received = 0;
      socket.on('data', (d: Buffer) => (received += d.length));
      await new Promise((r) => socket.once('data', r));
      socket.pause();
      // Cut off by the gateway (the socket closes) long before the whole answer could have reached it.
      const closed = new Promise((r) => socket.once('close', r));
      socket.resume();
      socket.pause();
      const row = await (async () => {
        for (;;) {
          const t = await quick.ledger.task('bp-2').catch(() => null);
          if (t?.calls === 1) return t;
          await sleep(50);
        }
      })();
      // The provider's whole answer was read after the client was gone, and charged.
      assert.deepEqual([row.used, row.reserved, row.calls], [10 + OUTPUT_TOKENS, 0, 1]);
      assert.ok(provider.written >= streamBytes, `the provider wrote ${provider.written}`);
      socket.resume();
      await closed;
      assert.ok(received < streamBytes, `the client received ${received} bytes`);
    } finally {
      await quick.close();
    }
  });
});
