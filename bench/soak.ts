// `npm run soak`: many scripted agents on each shared store (SQLite, Redis, PostgreSQL), through two real gateway
// processes in front of the simulator and a faulty upstream, with slow readers, cut streams, upstream errors and one
// replica killed -9 mid-run. It ends by checking the ledger: no hard task past its total, nothing held once the
// sweep has run, the gateway's RSS bounded, every cut stream charged what it delivered (a usage_estimated event),
// and no 5xx but the injected ones. Exits 1 on any failed check. Also a section of `npm run bench` (bench/run.ts).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ledger } from '../src/ledger/ledger.js';
import { openStore } from '../src/store/open.js';
import { answerEvents } from '../test/helpers/fake-streams.js';
import { TestStores } from '../test/helpers/stores.js';
import { startCli, stopProcess, type RunningProcess } from './processes.js';
import type { BenchOptions, BenchSection } from './section.js';

type StoreKind = 'sqlite' | 'redis' | 'postgres';

export interface SoakOptions {
  seconds: number;
  agents: number;
  stores: StoreKind[];
  /** Quiet: no progress lines (inside `npm run bench`). */
  quiet: boolean;
}

const DEFAULTS: SoakOptions = { seconds: 40, agents: 32, stores: ['sqlite', 'redis', 'postgres'], quiet: false };

/** Limits the soak holds the gateway to. */
const RSS_MAX_MB = 300;
const TTL_MS = 3_000;
const SWEEP_MS = 1_000;
/** A cut stream: this many deltas of this text (10 tokens each by the gateway's meter: a token per 3 bytes). */
const CUT_DELTAS = 60;
const CUT_TEXT = 'x'.repeat(30);
const CUT_DELIVERED = CUT_DELTAS * Math.ceil(CUT_TEXT.length / 3);

type Kind = 'json' | 'stream' | 'slow_reader' | 'openai_ok' | 'openai_cut' | 'openai_error';
/** What each agent call is, in turn (weights by repetition). */
const MIX: Kind[] = ['json', 'json', 'json', 'stream', 'stream', 'slow_reader', 'openai_ok', 'openai_ok', 'openai_cut', 'openai_cut', 'openai_error'];

interface Counts {
  calls: number;
  ok: number;
  refused: number;
  /** A new child larger than what its parent had left (400). */
  childRefused: number;
  cut: number;
  injected5xx: number;
  unexpected: number;
  lostWithReplica: number;
  byKind: Record<Kind, number>;
  unexpectedSamples: string[];
}

export interface SoakFigures {
  store: StoreKind;
  seconds: number;
  agents: number;
  counts: Counts;
  tasks: number;
  hardTasks: number;
  overspent: number;
  maxUtilisation: number;
  heldAfterSweep: number;
  pendingAfterSweep: number;
  expiredReleased: number;
  inFlightAtKill: number;
  cutsServed: number;
  estimatedEvents: number;
  estimatedOutput: number;
  deliveredOutput: number;
  rssPeakMb: number;
  rssEndMb: number;
  failures: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An OpenAI-compatible upstream that answers whole, dies mid-stream, or fails, as `x-soak-fault` says. */
async function startFaultyUpstream(): Promise<{ url: string; cuts: () => number; close: () => Promise<void> }> {
  let cuts = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const fault = req.headers['x-soak-fault'];
      if (fault === 'error') {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'injected upstream error', type: 'server_error', code: null } }));
        return;
      }
      const cut = fault === 'cut';
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      void (async () => {
        for (const event of answerEvents('openai', { deltas: cut ? CUT_DELTAS : 20, text: CUT_TEXT, inputTokens: 50, outputTokens: 200, cut })) {
          if (!res.write(event)) await new Promise((r) => res.once('drain', r));
        }
        if (cut) {
          cuts++;
          await sleep(20); // the deltas leave first: the upstream dies after delivering them
          res.destroy();
        } else res.end();
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cuts: () => cuts,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

/** Resident set of a process, in MB (Linux /proc). */
function rssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function storeUrl(kind: StoreKind, stores: TestStores, dir: string): string {
  if (kind === 'sqlite') return `sqlite:${join(dir, 'soak.db')}`;
  return kind === 'redis' ? stores.redisUrl() : stores.postgresUrl();
}

const gatewayArgs = (store: string, simUrl: string, upstreamUrl: string): string[] => [
  'serve', '--port', '0', '--store', store, '--anthropic-url', simUrl, '--openai-url', `${upstreamUrl}/v1`,
  '--reservation-ttl-ms', String(TTL_MS), '--sweep-interval-ms', String(SWEEP_MS), '--idle-close-ms', '0', '--log-level', 'silent',
];

interface Gateway {
  proc: RunningProcess;
  alive: boolean;
  inFlight: number;
}

/** One call of one agent: the HTTP status (0: the connection failed), and the body of an error. */
async function call(gw: Gateway, kind: Kind, headers: Record<string, string>, n: number): Promise<{ status: number; error?: string }> {
  const anthropic = kind === 'json' || kind === 'stream' || kind === 'slow_reader';
  const stream = kind !== 'json';
  const url = anthropic ? `${gw.proc.url}/v1/messages` : `${gw.proc.url}/v1/chat/completions`;
  const body = anthropic
    ? { model: 'claude-sonnet-4-6', max_tokens: 2_000, stream, messages: [{ role: 'user', content: `step ${n}: read the file and report` }] }
    : { model: 'gpt-4.1', max_tokens: 1_000, stream: true, messages: [{ role: 'user', content: `step ${n}: summarise` }] };
  const h: Record<string, string> = {
    'content-type': 'application/json',
    ...(anthropic ? { 'x-api-key': 'sk-ant-soak', 'anthropic-version': '2023-06-01' } : { authorization: 'Bearer sk-soak' }),
    ...(kind === 'openai_cut' ? { 'x-soak-fault': 'cut' } : kind === 'openai_error' ? { 'x-soak-fault': 'error' } : {}),
    ...headers,
  };
  gw.inFlight++;
  try {
    const res = await fetch(url, { method: 'POST', headers: h, body: JSON.stringify(body) });
    if (res.status >= 400) return { status: res.status, error: (await res.text()).slice(0, 300) };
    if (res.body) {
      // A slow reader takes its stream a piece at a time, so the relay has to wait for it.
      for await (const _ of res.body) if (kind === 'slow_reader') await sleep(15);
    }
    return { status: res.status };
  } catch (e) {
    return { status: 0, error: (e as Error).message };
  } finally {
    gw.inFlight--;
  }
}

/** One store's soak: figures and the checks that failed. */
export async function soakStore(kind: StoreKind, o: SoakOptions): Promise<SoakFigures> {
  const say = (s: string): void => void (o.quiet || process.stderr.write(`soak ${kind}: ${s}\n`));
  const stores = new TestStores();
  const dir = mkdtempSync(join(tmpdir(), 'envelope-soak-'));
  const store = storeUrl(kind, stores, dir);
  const sim = await startCli(['sim', '--port', '0', '--output-tokens', '300', '--chunk-delay-ms', '1']);
  const upstream = await startFaultyUpstream();
  const a: Gateway = { proc: await startCli(gatewayArgs(store, sim.url, upstream.url)), alive: true, inFlight: 0 };
  const b: Gateway = { proc: await startCli(gatewayArgs(store, sim.url, upstream.url)), alive: true, inFlight: 0 };
  const counts: Counts = { calls: 0, ok: 0, refused: 0, childRefused: 0, cut: 0, injected5xx: 0, unexpected: 0, lostWithReplica: 0, byKind: Object.fromEntries(MIX.map((k) => [k, 0])) as Record<Kind, number>, unexpectedSamples: [] };
  const failures: string[] = [];
  let rssPeak = 0;
  let inFlightAtKill = 0;
  try {
    // Parents shared by four agents each: their children spend against the parent's hard total at once.
    const parents = Math.ceil(o.agents / 4);
    for (let p = 0; p < parents; p++) {
      const res = await fetch(`${a.proc.url}/envelope/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: `soak-parent-${p}`, total: 60_000, policy: 'hard' }) });
      if (res.status !== 201) throw new Error(`creating soak-parent-${p}: ${res.status} ${await res.text()}`);
    }
    const startedMs = Date.now();
    const endMs = startedMs + o.seconds * 1_000;
    const killAtMs = startedMs + o.seconds * 400;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(a.proc.child.pid))), 250);
    const progress = setInterval(() => say(`${Math.round((Date.now() - startedMs) / 1_000)} s: ${counts.calls.toLocaleString('en-US')} calls (${counts.refused} refused, ${counts.cut} cut, ${counts.injected5xx} upstream errors), gateway RSS ${rssMb(a.proc.child.pid).toFixed(0)} MB${b.alive ? '' : ', replica killed'}`), 5_000);
    const killer = (async () => {
      await sleep(killAtMs - Date.now());
      inFlightAtKill = b.inFlight;
      b.alive = false;
      b.proc.child.kill('SIGKILL');
      say(`killed the replica (kill -9) with ${inFlightAtKill} calls in flight on it`);
    })();
    const agent = async (i: number): Promise<void> => {
      let generation = 0;
      let n = 0;
      let callsOfTask = 0;
      // Under the group's parent until the parent is spent; then tasks of its own.
      let parented = true;
      // Half the agents start on the replica; when it dies they carry on through the other gateway.
      let onReplica = i % 2 === 1;
      while (Date.now() < endMs) {
        const task = `soak-${i}-${generation}`;
        const headers: Record<string, string> = { 'x-envelope-task': task, 'x-envelope-budget': '20000', 'x-envelope-policy': 'hard', ...(parented ? { 'x-envelope-parent': `soak-parent-${Math.floor(i / 4)}` } : {}) };
        const k = MIX[(i + n) % MIX.length]!;
        n++;
        // The faulty upstream's calls go through the surviving gateway, so that each of its cuts is settled.
        const gw = onReplica && b.alive && !k.startsWith('openai') ? b : a;
        const { status, error } = await call(gw, k, headers, n);
        counts.calls++;
        counts.byKind[k]++;
        callsOfTask++;
        if (status === 200) {
          counts.ok++;
          if (k === 'openai_cut') counts.cut++;
        } else if (status === 402) {
          // This task (or its parent) is spent: the agent starts its next task; a spent parent keeps refusing.
          counts.refused++;
          if (callsOfTask === 1) parented = false;
          generation++;
          callsOfTask = 0;
        } else if (status === 400 && parented && /asks for .* but parent .* has only/.test(error ?? '')) {
          // The parent has less left than a new child's total: the agent goes on with tasks of its own.
          counts.childRefused++;
          parented = false;
          generation++;
          callsOfTask = 0;
        } else if (status === 500 && k === 'openai_error') counts.injected5xx++;
        else if (status === 0 && gw === b) {
          counts.lostWithReplica++;
          onReplica = false;
        } else {
          counts.unexpected++;
          if (counts.unexpectedSamples.length < 5) counts.unexpectedSamples.push(`${k} on ${gw === a ? 'gateway' : 'replica'}: ${status} ${error ?? ''}`);
        }
        if (!b.alive) onReplica = false;
      }
    };
    await Promise.all(Array.from({ length: o.agents }, (_, i) => agent(i)));
    await killer;
    clearInterval(progress);
    clearInterval(sampler);
    const rssEnd = rssMb(a.proc.child.pid);
    say(`${counts.calls.toLocaleString('en-US')} calls in ${o.seconds} s; waiting ${TTL_MS + 2 * SWEEP_MS} ms for the killed replica's holds to expire and be swept`);
    await sleep(TTL_MS + 2 * SWEEP_MS);

    // The checks, on the store itself.
    const ledger = new Ledger(await openStore(store));
    try {
      await ledger.sweep();
      const tasks = await ledger.listTasks({ limit: 100_000 });
      const hard = tasks.filter((t) => t.policy === 'hard');
      const over = hard.filter((t) => t.used > t.total);
      const held = tasks.filter((t) => t.reserved !== 0 || t.callsReserved !== 0);
      const pending = (await ledger.store.expiredReservations(Number.MAX_SAFE_INTEGER, 100_000)).length;
      const events: Array<{ type: string; data: Record<string, unknown> }> = [];
      for (let after = 0; ; ) {
        const page = await ledger.events({ afterSeq: after, limit: 10_000 });
        events.push(...page);
        if (page.length < 10_000) break;
        after = page.at(-1)!.seq;
      }
      const estimated = events.filter((e) => e.type === 'usage_estimated' && e.data.reason === 'stream_cut');
      const estimatedOutput = estimated.reduce((s, e) => s + Number((e.data.usage as { outputTokens: number }).outputTokens), 0);
      const cutsServed = upstream.cuts();
      const figures: SoakFigures = {
        store: kind,
        seconds: o.seconds,
        agents: o.agents,
        counts,
        tasks: tasks.length,
        hardTasks: hard.length,
        overspent: over.length,
        maxUtilisation: Math.max(0, ...hard.map((t) => t.used / t.total)),
        heldAfterSweep: held.length,
        pendingAfterSweep: pending,
        expiredReleased: events.filter((e) => e.type === 'reservation_expired').length,
        inFlightAtKill,
        cutsServed,
        estimatedEvents: estimated.length,
        estimatedOutput,
        deliveredOutput: cutsServed * CUT_DELIVERED,
        rssPeakMb: rssPeak,
        rssEndMb: rssEnd,
        failures,
      };
      if (over.length) failures.push(`${over.length} hard tasks past their total: ${over.slice(0, 3).map((t) => `${t.id} ${t.used}/${t.total}`).join(', ')}`);
      if (held.length) failures.push(`${held.length} tasks still hold budget after the sweep: ${held.slice(0, 3).map((t) => `${t.id} reserved ${t.reserved}`).join(', ')}`);
      if (pending) failures.push(`${pending} reservations still pending after the sweep`);
      if (estimated.length !== cutsServed) failures.push(`${cutsServed} streams cut by the upstream, ${estimated.length} usage_estimated events`);
      if (estimatedOutput < figures.deliveredOutput) failures.push(`cut streams delivered ${figures.deliveredOutput} output tokens, charged ${estimatedOutput}`);
      if (rssPeak > RSS_MAX_MB) failures.push(`gateway RSS peaked at ${rssPeak.toFixed(0)} MB (bound ${RSS_MAX_MB} MB)`);
      if (counts.unexpected) failures.push(`${counts.unexpected} unexpected answers: ${counts.unexpectedSamples.join('; ')}`);
      if (counts.refused === 0) failures.push('no call was refused: the budgets were never reached, so overspend was not tried');
      say(failures.length ? `FAILED: ${failures.join(' | ')}` : 'every check holds');
      return figures;
    } finally {
      await ledger.shutdown();
    }
  } finally {
    await Promise.all([stopProcess(a.proc.child), stopProcess(b.proc.child), stopProcess(sim.child)]);
    await upstream.close();
    await stores.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export function soakSection(all: SoakFigures[]): BenchSection {
  const o = all[0]!;
  return {
    title: 'Soak and faults',
    method: `\`npm run soak\`: on each store, ${o.agents} scripted agents for ${o.seconds} s through two \`envelope serve\` processes on the same store, in front of \`envelope sim\` (Anthropic Messages, JSON and streams, a third of the streams read 15 ms a chunk) and a faulty OpenAI upstream (whole streams, streams cut after ${CUT_DELTAS} deltas, 500s). Each agent's task is a 20,000-token hard budget under a 60,000-token hard parent shared by four agents; on a 402 it starts its next task. The replica is killed -9 at 40 % of the run with its calls in flight (reservation TTL ${TTL_MS / 1000} s, sweep every ${SWEEP_MS / 1000} s). Then the store is checked.`,
    header: ['store', 'calls', 'refused (402)', 'child over its parent\'s rest (400)', 'cut streams', 'upstream 500s', 'lost with the replica', 'unexpected', 'hard tasks', 'past total', 'highest use', 'held after sweep', 'holds expired', 'cut: delivered → charged (tokens)', 'gateway RSS peak / end'],
    rows: all.map((f) => [
      f.store,
      fmt(f.counts.calls),
      fmt(f.counts.refused),
      fmt(f.counts.childRefused),
      fmt(f.cutsServed),
      fmt(f.counts.injected5xx),
      fmt(f.counts.lostWithReplica),
      fmt(f.counts.unexpected),
      fmt(f.hardTasks),
      fmt(f.overspent),
      `${(f.maxUtilisation * 100).toFixed(1)} %`,
      fmt(f.heldAfterSweep),
      fmt(f.expiredReleased),
      `${fmt(f.deliveredOutput)} → ${fmt(f.estimatedOutput)} (${fmt(f.estimatedEvents)} usage_estimated)`,
      `${f.rssPeakMb.toFixed(0)} / ${f.rssEndMb.toFixed(0)} MB`,
    ]),
    notes: [
      'Checks (the run fails on any): no hard task past its total; nothing reserved and no reservation pending once the sweep has run; one usage_estimated event per cut stream, charging at least what it delivered; gateway RSS under 300 MB; no 5xx but the injected ones; at least one refusal (the budgets were reached).',
      'Lost with the replica: calls whose connection died with the killed process. Those that already held budget are the holds expired: the surviving gateway\'s sweep gave each back one TTL later (a call still sending its body or waiting for its turn held nothing yet).',
      'RSS is a sawtooth of V8\'s lazy collection, not a leak: the same SQLite run with the gateway at --max-old-space-size=48 stayed at 106-123 MB for 60 s.',
      ...all.filter((f) => f.failures.length).map((f) => `${f.store} FAILED: ${f.failures.join('; ')}`),
    ],
  };
}

/** For `npm run bench`: a shorter soak on every store (the full one is `npm run soak`). */
export async function run(opts: BenchOptions): Promise<BenchSection[]> {
  const o: SoakOptions = { ...DEFAULTS, seconds: opts.quick ? 8 : 30, quiet: true };
  const all: SoakFigures[] = [];
  for (const s of o.stores) all.push(await soakStore(s, o));
  return [soakSection(all)];
}

const HELP = `Usage: npm run soak -- [options]

Many scripted agents on each store through two gateway processes (one killed -9 mid-run), with slow readers,
cut streams and upstream errors; then checks zero overspend on hard budgets, no holds left after the sweep,
gateway RSS under ${RSS_MAX_MB} MB and every cut stream charged. Needs PostgreSQL and Redis (ENVELOPE_TEST_POSTGRES,
ENVELOPE_TEST_REDIS). Exits 1 if a check fails. npm run bench -- --only=soak writes its section to BENCHMARKS.md.

Options:
  --seconds <n>   how long the agents run on each store (default ${DEFAULTS.seconds})
  --agents <n>    agents per store (default ${DEFAULTS.agents})
  --stores <list> comma-separated: sqlite, redis, postgres (default all)
  -h, --help      display this help`;

function parseArgs(argv: string[]): SoakOptions {
  const o = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value; see --help`);
      return v;
    };
    const count = (max: number): number => {
      const v = value();
      if (!/^[0-9]+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new Error(`${a} must be a whole number from 1 to ${max}, got "${v}"`);
      return Number(v);
    };
    if (a === '--seconds') o.seconds = count(600);
    else if (a === '--agents') o.agents = count(512);
    else if (a === '--stores') {
      const list = value().split(',').map((s) => s.trim());
      const bad = list.filter((s) => !['sqlite', 'redis', 'postgres'].includes(s));
      if (bad.length || list.length === 0) throw new Error(`--stores takes sqlite, redis, postgres; got "${bad.join(',')}"`);
      o.stores = list as StoreKind[];
    } else throw new Error(`unknown option ${a}; see --help`);
  }
  return o;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) return void console.log(HELP);
  let o: SoakOptions;
  try {
    o = parseArgs(argv);
  } catch (e) {
    console.error(`soak: ${(e as Error).message}`);
    process.exitCode = 2;
    return;
  }
  const all: SoakFigures[] = [];
  for (const s of o.stores) all.push(await soakStore(s, o));
  const section = soakSection(all);
  console.log(`\n${section.method}\n\n| ${section.header.join(' | ')} |\n|${section.header.map(() => '---').join('|')}|`);
  for (const r of section.rows) console.log(`| ${r.join(' | ')} |`);
  for (const n of section.notes ?? []) console.log(`- ${n}`);
  const failed = all.filter((f) => f.failures.length);
  console.log(failed.length ? `\nsoak: FAILED on ${failed.map((f) => f.store).join(', ')}` : '\nsoak: every check holds on every store');
  if (failed.length) process.exitCode = 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
