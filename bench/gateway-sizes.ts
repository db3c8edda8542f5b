// Issue 16: the gateway's cost per call against the size of the context an agent sends. Added latency at 2 KB,
// 100 KB, 500 KB and 1 MB bodies, requests/s at 64 connections with 2 KB and 500 KB bodies (JSON and streams), each
// beside the same request sent straight to the simulator in the same run, and the gateway's memory under 1,000
// concurrent streams, half of them read slowly.
import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { body, pct, sideBySide, startPortkey, throughput, type Target } from './gateway.js';
import { startCli, stopProcess, type RunningProcess } from './processes.js';
import type { BenchOptions, BenchSection } from './section.js';

/** Tool-loop turns that bring the bench request to about `kb` KB. */
function turnsFor(kb: number): number {
  const base = Buffer.byteLength(body(false, 0));
  const perTurn = (Buffer.byteLength(body(false, 100)) - base) / 100;
  return Math.max(0, Math.round((kb * 1024 - base) / perTurn));
}

const SIZES_KB = [2, 100, 500, 1024];

const ms = (x: number): string => x.toFixed(3);
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const sizeLabel = (turns: number): string => {
  const bytes = Buffer.byteLength(body(false, turns));
  return bytes >= 1024 * 1024 ? `${(bytes / 2 ** 20).toFixed(2)} MB` : `${Math.round(bytes / 1024)} KB`;
};

/** The resident set of a process now and at its peak (VmHWM), in MB, from /proc. */
function rssOf(pid: number): { nowMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { nowMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/** CPU time a process has used so far (user + system), in ms, from /proc (clock ticks of 10 ms). */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/**
 * `count` streams through `t` at once, each on its own connection; every other one is read slowly (paused for
 * `slowMs` after its first chunk). Resolves when all have ended, with how many ended well.
 */
async function concurrentStreams(t: Target, count: number, slowMs: number): Promise<number> {
  const u = new URL(t.url);
  const agent = new Agent({ keepAlive: false, maxSockets: count });
  const payload = body(true);
  const one = (i: number): Promise<boolean> =>
    new Promise((resolve) => {
      const req = request(
        { host: u.hostname, port: u.port, method: 'POST', path: '/v1/messages', agent, headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-bench', 'anthropic-version': '2023-06-01', ...t.headers, 'content-length': Buffer.byteLength(payload) } },
        (res) => {
          let paused = false;
          res.on('data', () => {
            if (i % 2 === 1 && !paused) {
              paused = true;
              res.pause();
              setTimeout(() => res.resume(), slowMs);
            }
          });
          res.on('end', () => resolve(res.statusCode === 200));
          res.on('error', () => resolve(false));
        },
      );
      req.on('error', () => resolve(false));
      req.end(payload);
    });
  const done = await Promise.all(Array.from({ length: count }, (_, i) => one(i)));
  agent.destroy();
  return done.filter(Boolean).length;
}

export async function run(opts: BenchOptions): Promise<BenchSection[]> {
  const running: RunningProcess[] = [];
  const seconds = opts.quick ? 2 : 8;
  try {
    const sim = await startCli(['sim', '--port', '0', '--output-tokens', '64']);
    running.push(sim);
    const db = join(mkdtempSync(join(tmpdir(), 'envelope-bench-')), 'gateway.db');
    const gw = await startCli(['serve', '--port', '0', '--store', `sqlite:${db}`, '--anthropic-url', sim.url, '--log-level', 'silent']);
    running.push(gw);
    const direct: Target = { name: 'direct to envelope sim', url: sim.url, headers: {} };
    const gateway: Target = { name: 'through envelope serve', url: gw.url, headers: { 'x-envelope-task': 'bench-sizes', 'x-envelope-budget': '1000000000000', 'x-envelope-policy': 'hard' } };

    process.stderr.write('bench: added latency by body size…\n');
    const latencyRows: (string | number)[][] = [];
    for (const kb of SIZES_KB) {
      const turns = turnsFor(kb);
      // Fewer requests for the large bodies: each takes milliseconds on both sides.
      const n = Math.max(300, Math.round((opts.quick ? 300 : 6_000) / Math.max(1, kb / 50)));
      const warmup = Math.ceil(n / 2);
      // The gateway's own CPU per call, less shaken than latency by what else the machine runs: it is idle while
      // the direct rounds run.
      const cpu0 = cpuMsOf(gw.child.pid!);
      const [d, g] = await sideBySide(direct, gateway, false, n, warmup, turns);
      const cpuUsPerCall = ((cpuMsOf(gw.child.pid!) - cpu0) * 1000) / (warmup + g.totalMs.length);
      const d50 = pct(d.totalMs, 50);
      const g50 = pct(g.totalMs, 50);
      const d99 = pct(d.totalMs, 99);
      const g99 = pct(g.totalMs, 99);
      latencyRows.push([sizeLabel(turns), fmt(n), ms(d50), ms(g50), `**${ms(g50 - d50)}**`, ms(d99), ms(g99), `**${ms(g99 - d99)}**`, fmt(cpuUsPerCall)]);
    }

    process.stderr.write('bench: requests/s by body size…\n');
    const portkey = await startPortkey(sim.url);
    if (portkey) running.push(portkey.process);
    const tputRows: (string | number)[][] = [];
    for (const kb of [2, 500]) {
      const turns = turnsFor(kb);
      for (const stream of [false, true]) {
        const d = await throughput(direct, stream, 64, seconds, turns);
        const g = await throughput(gateway, stream, 64, seconds, turns);
        // Portkey serves the same JSON request; its streaming path fails here.
        const p = portkey && !stream ? await throughput(portkey.target, stream, 64, seconds, turns) : null;
        tputRows.push([
          sizeLabel(turns),
          stream ? 'stream' : 'JSON',
          fmt(d.rps),
          fmt(g.rps),
          `**${((g.rps / d.rps) * 100).toFixed(0)} %**`,
          p ? fmt(p.rps) : '—',
          p ? `${((p.rps / d.rps) * 100).toFixed(0)} %` : '—',
          d.errors + g.errors + (p?.errors ?? 0),
        ]);
      }
    }
    await stopProcess(gw.child);
    if (portkey) await stopProcess(portkey.process.child);

    process.stderr.write('bench: gateway memory under 1,000 streams…\n');
    const streams = opts.quick ? 200 : 1_000;
    const slowSim = await startCli(['sim', '--port', '0', '--output-tokens', '64', '--chunk-delay-ms', '20']);
    running.push(slowSim);
    const memGw = await startCli(['serve', '--port', '0', '--store', `sqlite:${db}`, '--anthropic-url', slowSim.url, '--log-level', 'silent']);
    running.push(memGw);
    const memTarget: Target = { ...gateway, url: memGw.url, headers: { ...gateway.headers, 'x-envelope-task': 'bench-streams' } };
    const idle = rssOf(memGw.child.pid!);
    const t0 = performance.now();
    const ok = await concurrentStreams(memTarget, streams, 2_000);
    const wallS = (performance.now() - t0) / 1000;
    const after = rssOf(memGw.child.pid!);
    const memRows = [[fmt(streams), fmt(ok), `${wallS.toFixed(1)} s`, idle.nowMb.toFixed(0), `**${after.peakMb.toFixed(0)}**`, after.nowMb.toFixed(0)]];

    return [
      {
        title: 'Gateway: added latency by request size',
        method: `Sequential requests on one keep-alive connection with undici, straight to \`envelope sim\` and through \`envelope serve\` (SQLite ledger, one hot hard budget, countdown injected) in alternating rounds after a warm-up of each; the ~2 KB Anthropic request of the sections above with tool-loop turns (~1 KB each) added to reach each size, 64 output tokens. Added = gateway − direct at the same percentile (ms), to the whole response. Gateway CPU: the \`serve\` process's user + system time (/proc) over its warm-up and measured calls, per call.`,
        header: ['request body', 'requests', 'direct p50', 'gateway p50', 'added p50', 'direct p99', 'gateway p99', 'added p99', 'gateway CPU µs/call'],
        rows: latencyRows,
        notes: [
          'Goals (issue 16, SPEC §8): added p50 ≤ 0.5 ms and p99 ≤ 2 ms at 2 KB; flat in body size (added p50 at 1 MB ≤ 2 × at 2 KB). The gateway scans the body for the fields it needs and splices the countdown into the bytes (providers/json-scan.ts) instead of parsing and re-encoding it; the bytes still cross one more loopback hop each way.',
        ],
      },
      {
        title: 'Gateway: requests per second by request size',
        method: `autocannon, 64 connections, ${seconds} s per row, direct, through the gateway and through @portkey-ai/gateway (JSON only: its streaming path fails here; it counts nothing against a budget) one after the other in this run; client, gateway and simulator share the 2 cores.`,
        header: ['request body', 'answer', 'direct req/s', 'gateway req/s', 'gateway / direct', 'portkey req/s', 'portkey / direct', 'errors'],
        rows: tputRows,
        notes: ['Goals (issue 16): ≥ 50 % of direct for JSON, ≥ 45 % for streams.'],
      },
      {
        title: 'Gateway: memory under concurrent streams',
        method: `${fmt(streams)} streaming calls at once through one gateway process (SQLite ledger, one hard budget), each on its own connection, from a simulator that waits 20 ms between stream events (64 output tokens); every other client pauses reading for 2 s after its first chunk. RSS from /proc (MB): before, at its peak during the run (VmHWM), and after.`,
        header: ['streams', 'ended with 200', 'wall time', 'RSS idle', 'RSS peak', 'RSS after'],
        rows: memRows,
        notes: ['Goal (SPEC §8): ≤ 300 MB RSS with 1,000 concurrent streams, slow readers included.'],
      },
    ];
  } finally {
    for (const p of running) await stopProcess(p.child);
  }
}
