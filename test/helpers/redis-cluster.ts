// A real Redis Cluster for the tests: three local masters on ports of their own (7391-7393, cluster bus +10000),
// started once and shared by every test run on the machine, as the local Redis on 6379 is. Starting is idempotent:
// a master that answers is kept, one that does not is started (it rejoins from its nodes.conf), three fresh masters
// are joined with `redis-cli --cluster create`, and a cluster that does not come up whole is reset and created again.
// ENVELOPE_TEST_REDIS_CLUSTER=HOST:PORT,… names a cluster that already runs instead.
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';

const run = promisify(execFile);
const HOST = '127.0.0.1';
const PORTS = [7391, 7392, 7393];
const DIR = join(tmpdir(), 'envelope-redis-cluster');
/** A start lock older than this belongs to a starter that died. */
const LOCK_STALE_MS = 60_000;
const READY_WAIT_MS = 20_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The seed nodes of the test cluster (`HOST:PORT,…`), started if need be. */
export async function redisClusterNodes(): Promise<string> {
  const given = process.env.ENVELOPE_TEST_REDIS_CLUSTER;
  if (given) return given;
  mkdirSync(DIR, { recursive: true });
  await withLock(join(DIR, 'start.lock'), async () => {
    for (const port of PORTS) if (!(await answers(port))) await startMaster(port);
    await waitFor('the masters to answer', async () => (await Promise.all(PORTS.map(answers))).every(Boolean));
    if (await healthy()) return;
    const infos = await Promise.all(PORTS.map((port) => clusterInfo(port)));
    // Fresh masters (or a cluster taken apart): join them. Masters that know each other get time to agree first.
    if (!infos.every((i) => i.cluster_slots_assigned === '0')) {
      if (await waitFor('the cluster to agree', healthy, 5_000).then(() => true, () => false)) return;
      await Promise.all(PORTS.map((port) => withNode(port, async (r) => { await r.flushall(); await r.cluster('RESET', 'HARD'); })));
    }
    await run('redis-cli', ['--cluster', 'create', ...PORTS.map((p) => `${HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    await waitFor('the cluster to be ok on every master', healthy);
  });
  return PORTS.map((p) => `${HOST}:${p}`).join(',');
}

function startMaster(port: number): Promise<unknown> {
  const dir = join(DIR, String(port));
  mkdirSync(dir, { recursive: true });
  return run('redis-server', [
    '--port', String(port), '--bind', HOST, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', '5000', '--daemonize', 'yes', '--save', '', '--appendonly', 'no', '--dir', dir,
    '--logfile', join(dir, 'redis.log'),
  ]);
}

async function withNode<T>(port: number, use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ host: HOST, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

const answers = (port: number): Promise<boolean> => withNode(port, async (r) => (await r.ping()) === 'PONG').catch(() => false);

async function clusterInfo(port: number): Promise<Record<string, string>> {
  const text = await withNode(port, (r) => r.cluster('INFO') as Promise<string>);
  return Object.fromEntries(text.split('\r\n').filter(Boolean).map((line) => line.split(':') as [string, string]));
}

/** Every master sees the whole cluster: all slots served, three masters known. */
async function healthy(): Promise<boolean> {
  const infos = await Promise.all(PORTS.map((port) => clusterInfo(port).catch(() => ({}) as Record<string, string>)));
  return infos.every((i) => i.cluster_state === 'ok' && i.cluster_known_nodes === String(PORTS.length) && i.cluster_slots_ok === '16384');
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = READY_WAIT_MS): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`redis cluster: gave up waiting for ${what} after ${ms} ms (logs in ${DIR})`);
    await sleep(100);
  }
}

/** One starter at a time on this machine (test files and helpers run at once): a lock directory. */
async function withLock(path: string, body: () => Promise<void>): Promise<void> {
  for (;;) {
    try {
      mkdirSync(path);
      break;
    } catch {
      const ageMs = Date.now() - (statSafe(path) ?? Date.now());
      if (ageMs > LOCK_STALE_MS) rmSync(path, { recursive: true, force: true });
      else await sleep(100);
    }
  }
  try {
    await body();
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
}

function statSafe(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}
