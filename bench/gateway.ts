// Gateway vs direct-to-upstream, side by side in one run: added latency (1 connection) and requests/s
// (autocannon, 10 and 64 connections), JSON and streaming, with @portkey-ai/gateway as a reference.
import autocannon from 'autocannon';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'undici';
import { freePort, startCli, startProcess, stopProcess, type RunningProcess } from './processes.js';
import { TestStores } from '../test/helpers/stores.js';
import type { BenchOptions, BenchSection } from './section.js';

const PORTKEY = fileURLToPath(new URL('../../node_modules/@portkey-ai/gateway/build/start-server.js', import.meta.url));

export interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
}

/**
 * @portkey-ai/gateway in front of the simulator's Anthropic API, as a reference (JSON only: its streaming path fails
 * here), or null when it does not start.
 */
export async function startPortkey(simUrl: string): Promise<{ process: RunningProcess; target: Target } | null> {
  const port = await freePort();
  const process = await startProcess([PORTKEY, '--headless', `--port=${port}`], /(Server is running|listening|:\d+)/i).catch(() => null);
  if (!process) return null;
  return { process, target: { name: '@portkey-ai/gateway', url: `http://127.0.0.1:${port}`, headers: { 'x-portkey-provider': 'anthropic', 'x-portkey-custom-host': `${simUrl}/v1` } } };
}

/** The ~2 KB request of every row; `turns` more tool-loop turns of ~1 KB each make an agent's larger context. */
export const body = (stream: boolean, turns = 0): string =>
  JSON.stringify({
    model: 'claude-sonnet-4-6',
    max_tokens: 1_024,
    stream,
    system: 'You are a helpful assistant. '.repeat(20),
    messages: [
      { role: 'user', content: 'Summarise the following notes. '.repeat(30) },
      ...Array.from({ length: turns }, (_, i) => [
        { role: 'assistant', content: [{ type: 'tool_use', id: `toolu_${i}`, name: 'read_file', input: { path: `src/module-${i}.ts` } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: `toolu_${i}`, content: `export const value${i} = 1; // notes\n`.repeat(24) }] },
      ]).flat(),
      { role: 'assistant', content: 'Here is a summary. '.repeat(20) },
      { role: 'user', content: 'Shorter, please.' },
    ],
  });

/** Alternating direct/gateway rounds of each latency row. */
const ROUNDS = 6;

/** Tool-loop turns that make the large request about 100 KB. */
const LARGE_TURNS = 100;

export const baseHeaders = { 'content-type': 'application/json', 'x-api-key': 'sk-ant-bench', 'anthropic-version': '2023-06-01' };

export interface Latencies {
  firstMs: number[];
  totalMs: number[];
}

/** Sequential requests on one keep-alive connection; per-request time to first byte and to last byte. */
async function latency(t: Target, stream: boolean, n: number, into: Latencies = { firstMs: [], totalMs: [] }, turns = 0): Promise<Latencies> {
  const u = new URL(t.url);
  const client = new Client(u.origin, { keepAliveTimeout: 30_000 });
  const payload = body(stream, turns);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await client.request({ method: 'POST', path: `${u.pathname}/v1/messages`.replace('//', '/'), headers: { ...baseHeaders, ...t.headers }, body: payload });
    let first = 0;
    for await (const _chunk of res.body) if (!first) first = performance.now();
    const t1 = performance.now();
    if (res.statusCode !== 200) throw new Error(`${t.name}: HTTP ${res.statusCode}`);
    into.firstMs.push(first - t0);
    into.totalMs.push(t1 - t0);
  }
  await client.close();
  return into;
}

/**
 * Direct and gateway latencies measured in alternating rounds after a warm-up of both (the JIT of three processes
 * settles only after a few thousand requests), so that whatever else the machine does falls on both alike.
 */
export async function sideBySide(direct: Target, gateway: Target, stream: boolean, n: number, warmup: number, turns = 0): Promise<[Latencies, Latencies]> {
  await latency(direct, stream, warmup, undefined, turns);
  await latency(gateway, stream, warmup, undefined, turns);
  const d: Latencies = { firstMs: [], totalMs: [] };
  const g: Latencies = { firstMs: [], totalMs: [] };
  for (let r = 0; r < ROUNDS; r++) {
    await latency(direct, stream, Math.ceil(n / ROUNDS), d, turns);
    await latency(gateway, stream, Math.ceil(n / ROUNDS), g, turns);
  }
  return [d, g];
}

export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

export async function throughput(t: Target, stream: boolean, connections: number, seconds: number, turns = 0): Promise<{ rps: number; errors: number }> {
  const u = new URL(t.url);
  const result = await autocannon({
    url: `${u.origin}${u.pathname.replace(/\/$/, '')}/v1/messages`,
    method: 'POST',
    connections,
    duration: seconds,
    headers: { ...baseHeaders, ...t.headers },
    body: body(stream, turns),
  });
  return { rps: result.requests.average, errors: result.errors + result.non2xx + result.timeouts };
}

const ms = (x: number): string => x.toFixed(3);
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export async function run(opts: BenchOptions): Promise<BenchSection[]> {
  const n = opts.quick ? 300 : 6_000;
  const warmup = opts.quick ? 300 : 3_000;
  const seconds = opts.quick ? 2 : 8;
  const running: RunningProcess[] = [];
  try {
    const sim = await startCli(['sim', '--port', '0', '--output-tokens', '64']);
    running.push(sim);
    const db = join(mkdtempSync(join(tmpdir(), 'envelope-bench-')), 'gateway.db');
    const serve = async (store: string): Promise<RunningProcess> => {
      const p = await startCli(['serve', '--port', '0', '--store', store, '--anthropic-url', sim.url, '--log-level', 'silent']);
      running.push(p);
      return p;
    };
    const gw = await serve(`sqlite:${db}`);
    const portkey = await startPortkey(sim.url);
    if (portkey) running.push(portkey.process);

    const direct: Target = { name: 'direct to envelope sim', url: sim.url, headers: {} };
    const gateway: Target = {
      name: 'through envelope serve (SQLite ledger)',
      url: gw.url,
      headers: { 'x-envelope-task': 'bench-hot', 'x-envelope-budget': '1000000000000', 'x-envelope-policy': 'hard' },
    };

    process.stderr.write('bench: gateway latency, 1 connection…\n');
    const lat: Array<[string, boolean, Latencies, Latencies]> = [];
    const storeRows: (string | number)[][] = [];
    for (const stream of [false, true]) lat.push([stream ? 'stream' : 'JSON', stream, ...(await sideBySide(direct, gateway, stream, n, warmup))]);
    // An agent deep in a tool loop sends its whole context on every call: the gateway reads and re-encodes it.
    const largeKb = Math.round(Buffer.byteLength(body(false, LARGE_TURNS)) / 1024);
    lat.push([`JSON, ${largeKb} KB request`, false, ...(await sideBySide(direct, gateway, false, Math.ceil(n / 3), Math.ceil(warmup / 3), LARGE_TURNS))]);
    // The shared stores, one gateway each on the same simulator: JSON only.
    const stores = new TestStores();
    try {
      for (const [name, url] of [['Redis', stores.redisUrl()], ['PostgreSQL', stores.postgresUrl()]] as const) {
        const shared = await serve(url);
        const target: Target = { ...gateway, name: `through envelope serve (${name} ledger)`, url: shared.url };
        lat.push([`JSON, ${name} ledger`, false, ...(await sideBySide(direct, target, false, n, warmup))]);
        const t = await throughput(target, false, 64, seconds);
        storeRows.push([name, fmt(t.rps), t.errors]);
        await stopProcess(shared.child);
      }
    } finally {
      await stores.cleanup();
    }
    const latencyRows = lat.map(([kind, stream, d, g]) => {
      const key = stream ? 'firstMs' : 'totalMs';
      return [
        kind,
        stream ? 'first byte' : 'whole response',
        ms(pct(d[key], 50)),
        ms(pct(g[key], 50)),
        `**${ms(pct(g[key], 50) - pct(d[key], 50))}**`,
        ms(pct(d[key], 99)),
        ms(pct(g[key], 99)),
        `**${ms(pct(g[key], 99) - pct(d[key], 99))}**`,
      ];
    });

    process.stderr.write('bench: gateway throughput…\n');
    const tput: (string | number)[][] = [];
    for (const [stream, connections] of [[false, 1], [false, 64], [true, 64]] as const) {
      const d = await throughput(direct, stream, connections, seconds);
      const g = await throughput(gateway, stream, connections, seconds);
      tput.push([stream ? 'stream' : 'JSON', connections, fmt(d.rps), fmt(g.rps), `${((g.rps / d.rps) * 100).toFixed(0)} %`, d.errors + g.errors]);
    }
    const ref: (string | number)[][] = [];
    {
      const d = await throughput(direct, false, 10, seconds);
      const g = await throughput(gateway, false, 10, seconds);
      const p = portkey ? await throughput(portkey.target, false, 10, seconds) : null;
      ref.push(['JSON', 10, fmt(d.rps), fmt(g.rps), p ? fmt(p.rps) : 'did not start', p ? `**${(g.rps / p.rps).toFixed(1)}×**` : '—', d.errors + g.errors + (p?.errors ?? 0)]);
    }
    return [
      {
        title: 'Gateway: added latency, 1 connection',
        method: `${fmt(n)} sequential requests on one keep-alive connection with undici, each timed with performance.now(), after ${fmt(warmup)} warm-up requests to each target: straight to \`envelope sim\` and through \`envelope serve\` in ${ROUNDS} alternating rounds, on a SQLite ledger unless the row names Redis or PostgreSQL (local servers, same machine) (every call reserves and settles on one hot hard budget, and gets the countdown injected). The same ~2 KB Anthropic request (the large row: the same with 100 tool-loop turns, a third as many requests), 64 output tokens; sim, gateway and client are separate processes on this machine. Added = gateway − direct at the same percentile (ms).`,
        header: ['body', 'measured to', 'direct p50', 'gateway p50', 'added p50', 'direct p99', 'gateway p99', 'added p99'],
        rows: latencyRows,
        notes: ['Goal (issue 3): added p50 under 0.5 ms and p99 under 3 ms; SPEC target for first byte added on streams ≤ 0.5 ms p50.'],
      },
      {
        title: 'Gateway: requests per second',
        method: `autocannon, ${seconds} s per row, the same request; direct and through the gateway measured one after the other in this run. The client, the gateway and the simulator share the machine's 2 cores, so the gateway row also pays for the CPU the extra process takes.`,
        header: ['body', 'connections', 'direct req/s', 'gateway req/s', 'gateway / direct', 'errors'],
        rows: tput,
        notes: ['Goal (issue 3): at least 2,000 req/s through the gateway (SPEC target 4,000 at 64 connections).'],
      },
      {
        title: 'Gateway on the shared stores: requests per second',
        method: `autocannon, 64 connections, ${seconds} s, JSON, every call reserving and settling on one hot hard budget in Redis or PostgreSQL (one gateway process; the servers run on the same 2 cores).`,
        header: ['ledger', 'gateway req/s', 'errors'],
        rows: storeRows,
      },
      {
        title: 'Reference: @portkey-ai/gateway on the same upstream',
        method: `autocannon, 10 connections, ${seconds} s, JSON only (its streaming path fails here); Portkey started with \`--headless\` and the headers x-portkey-provider: anthropic, x-portkey-custom-host: the simulator. Portkey counts nothing against a budget; Envelope reserves and settles every call.`,
        header: ['body', 'connections', 'direct req/s', 'envelope req/s', 'portkey req/s', 'envelope / portkey', 'errors'],
        rows: ref,
        notes: ['Goal (issue 3): at least 3× Portkey’s requests/s at 10 connections.'],
      },
    ];
  } finally {
    for (const p of running) await stopProcess(p.child);
  }
}
