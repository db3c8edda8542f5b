// Request bodies in flight are bounded in total: `envelope serve --bodies-in-flight-mb 58` takes 8 concurrent 30 MB
// bodies (each under the 32 MB per-request limit) while the provider holds every call it got; exactly two fit, the
// other six are refused at once with 503 in the provider's own shape (Anthropic's `overloaded_error`, retry-after).
// The admin API's bodies and chunked bodies count against the same total. When the held calls finish, their
// memory comes back and large bodies are taken again. The gateway's peak RSS
// (VmHWM, no sampling) is read only as a sanity bound: 8 such bodies took it to 1.12 GB before.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { stopProcess } from '../bench/processes.js';
import { tempDbPath } from './helpers/gateway.js';
import { startCli, type RunningCli } from './helpers/process.js';

const BODY_BYTES = 30_000_000;

/** A provider that answers each call only when told to, so the gateway holds the calls' bodies meanwhile. */
class HoldingProvider {
  readonly server: Server;
  readonly held: ServerResponse[] = [];
  private waiters: Array<() => void> = [];
  url = '';

  constructor() {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => {
        this.held.push(res);
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async holding(n: number): Promise<void> {
    while (this.held.length < n) await new Promise<void>((r) => this.waiters.push(r));
  }

  answerAll(): void {
    const body = JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-6', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', usage: { input_tokens: 10, output_tokens: 2 } });
    for (const res of this.held.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  }
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends `body` (declared with content-length, or chunked) and resolves with the answer, even one that comes early. */
function post(url: string, path: string, body: Buffer, chunked = false, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01', ...(chunked ? {} : { 'content-length': String(body.length) }), ...headers },
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    // A refused upload may be cut off while it is still being written: only an error without an answer counts.
    req.on('error', (e) => answered || reject(e));
    req.end(body);
  });
}

const messageBody = (bytes: number): Buffer => {
  const head = '{"model":"claude-sonnet-4-6","max_tokens":100,"messages":[{"role":"user","content":"';
  const tail = '"}]}';
  return Buffer.from(head + 'x'.repeat(bytes - head.length - tail.length) + tail);
};

const peakRssMib = (pid: number): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

// 58 MiB (60,817,408 bytes) holds two bodies of 30,000,000 bytes with 817,408 to spare: less than one admin body.
const IN_FLIGHT_MIB = 58;

describe('gateway: request bodies in flight are bounded in total', () => {
  const provider = new HoldingProvider();
  let serve: RunningCli;
  before(async () => {
    await provider.start();
    serve = await startCli(['serve', '--port', '0', '--store', `sqlite:${tempDbPath()}`, '--anthropic-url', provider.url, '--bodies-in-flight-mb', String(IN_FLIGHT_MIB)]);
  });
  after(async () => {
    provider.answerAll(); // a failed test may leave calls held: the gateway could not close
    if (serve) await stopProcess(serve.child);
    provider.server.closeAllConnections();
    provider.server.close();
  });

  it('refuses bodies past the total with 503 overloaded, and takes them again once memory is back', async () => {
    const body = messageBody(BODY_BYTES);
    const startRss = peakRssMib(serve.child.pid!);
    const answers = Array.from({ length: 8 }, () => post(serve.url, '/v1/messages', body));
    // Two bodies fit, a third does not: the provider gets exactly two calls, the six others are answered at once.
    await provider.holding(2);
    const answered: Answer[] = [];
    for (const a of answers) void a.then((x) => answered.push(x));
    while (answered.length < 6) await sleep(10);
    assert.deepEqual(answered.map((a) => a.status), [503, 503, 503, 503, 503, 503]);

    // While two are held, the admin API's bodies count against the same total: one over what is left is a 503 too.
    const admin = (bytes: number) => post(serve.url, '/envelope/v1/tasks', Buffer.from(JSON.stringify({ id: 'a'.repeat(8), total: 20_000, label: 'x'.repeat(bytes) })));
    const small = await admin(100);
    const large = await admin(900_000);
    assert.equal(small.status, 201);
    assert.deepEqual([large.status, JSON.parse(large.body).error.code, large.headers['retry-after']], [503, 'overloaded', '1']);
    // A chunked body is counted as it arrives, and refused the moment it passes what is left.
    const chunked = await post(serve.url, '/v1/messages', messageBody(2_000_000), true);
    assert.equal(chunked.status, 503);

    assert.equal(provider.held.length, 2);
    provider.answerAll();
    const all = await Promise.all(answers);
    assert.deepEqual(all.map((a) => a.status).sort(), [200, 200, 503, 503, 503, 503, 503, 503]);
    for (const a of all.filter((x) => x.status === 503).concat(chunked)) {
      const err = JSON.parse(a.body) as { type: string; error: { type: string; message: string } };
      assert.deepEqual([err.type, err.error.type, a.headers['retry-after']], ['error', 'overloaded_error', '1']);
      assert.match(err.error.message, new RegExp(`of request bodies, its limit of ${IN_FLIGHT_MIB}\\.0 MiB; try again shortly$`));
    }

    // The held calls are done: their memory is back, and bodies as large are taken again, chunked or not.
    const again = [post(serve.url, '/v1/messages', body, true), post(serve.url, '/v1/messages', body)];
    await provider.holding(2);
    provider.answerAll();
    assert.deepEqual((await Promise.all(again)).map((a) => a.status), [200, 200]);

    // A sanity bound on memory, not a measurement: without the cap, 8 such bodies took the gateway to 1.12 GB (each
    // body is held about five times over while its call runs); with it the peak grows by about 350-500 MiB.
    const grew = peakRssMib(serve.child.pid!) - startRss;
    assert.ok(grew < 768, `peak RSS grew by ${Math.round(grew)} MiB`);
  });
});
