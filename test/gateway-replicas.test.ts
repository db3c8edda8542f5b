// Three `envelope serve` processes on one shared store (Redis, PostgreSQL, a SQLite file), with 300 SDK agents spread
// over them, each looping calls on one child of a hard tree until refused. Whatever replica answered, the ledger
// never overspends any level, the parent is the sum of its children, and every task's `used` is exactly what its
// clients were told, and exactly what its settled reservations hold. Then the same with one replica SIGKILLed
// mid-run: the agents on it move to the survivors, and the only difference left between the ledger and the clients
// is bounded by the calls the dead replica cut off, counted one by one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskView } from '../src/budget/view.js';
import { Ledger } from '../src/ledger/ledger.js';
import { openStore } from '../src/store/open.js';
import { tempDbPath } from './helpers/gateway.js';
import { kill9, startCli, type RunningCli } from './helpers/process.js';
import { startFleet, type AgentSpec, type FleetResult } from './helpers/replica-agents.js';
import { reservationRows } from './helpers/reservation-rows.js';
import { TestStores } from './helpers/stores.js';

const REPLICAS = 3;
const AGENTS_PER_CHILD = 30;
/** Output tokens of every answer (the sim's --output-tokens and every call's max_tokens): calls stay small. */
const OUTPUT_TOKENS = 200;
const PARENT_TOTAL = 300_000;
// Children 0-4 run out on their own; 5-9 could each take far more than the parent has left, so the parent stops them.
const CHILD_TOTALS = [15_000, 15_000, 15_000, 15_000, 15_000, 200_000, 200_000, 200_000, 200_000, 200_000];
const CHILDREN = CHILD_TOTALS.map((_, i) => `child-${i}`);
/**
 * The provider's time to first byte: keeps calls waiting inside the gateways, where a kill cuts them off. Well above
 * the event-loop lag of this process's 300 agents on a busy machine (at 50 ms, a run once found every answer already
 * in its sockets when the kill landed, and nothing was cut off).
 */
const SIM_LATENCY_MS = 200;
/** About a third of the ~1,300 calls the tree holds. */
const KILL_AFTER = 450;
/** Long next to any call here, so a live call is never expired under it; short enough to wait for. */
const RESERVATION_TTL_MS = 4_000;

type TaskDetail = TaskView & { children: TaskView[] };

async function admin<T>(url: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${url}/envelope/v1${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.ok(res.ok, `${path}: ${res.status} ${await res.clone().text()}`);
  return (await res.json()) as T;
}

/** Waits for a condition that other processes bring about (the sweeper, Redis's event publication). */
async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> {
  for (let i = 0; ; i++) {
    const v = await read();
    if (ok(v)) return v;
    if (i === 150) assert.fail(`${what}: still ${JSON.stringify(v)}`);
    await sleep(200);
  }
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

/** What is left of `all` once each element of `some` is taken out of it once; fails if one is not there. */
function without(all: number[], some: number[], what: string): number[] {
  const left = new Map<number, number>();
  for (const x of all) left.set(x, (left.get(x) ?? 0) + 1);
  for (const x of some) {
    const n = left.get(x) ?? 0;
    assert.ok(n > 0, `${what}: a client was told of a ${x}-token call that the ledger did not settle`);
    left.set(x, n - 1);
  }
  return [...left].flatMap(([x, n]) => Array<number>(n).fill(x));
}

describe('gateway: 3 replicas of envelope serve on one shared store', () => {
  const stores = new TestStores();
  let sim: RunningCli;
  before(async () => {
    sim = await startCli(['sim', '--port', '0', '--output-tokens', String(OUTPUT_TOKENS), '--latency-ms', String(SIM_LATENCY_MS)]);
  });
  after(async () => {
    await kill9(sim.child);
    await stores.cleanup();
  });

  const kinds: Array<[string, () => string]> = [
    ['redis', () => stores.redisUrl()],
    ['postgres', () => stores.postgresUrl()],
    ['sqlite', () => `sqlite:${tempDbPath()}`],
  ];

  for (const [kind, makeUrl] of kinds) {
    for (const killOne of [false, true]) {
      it(`${kind}: 300 agents${killOne ? ', one replica SIGKILLed after a third of the calls' : ''}: no level overspends, used is what was settled`, async () => {
        const storeUrl = makeUrl();
        const replicas = await Promise.all(
          Array.from({ length: REPLICAS }, () =>
            startCli([
              'serve', '--port', '0', '--store', storeUrl, '--anthropic-url', sim.url, '--openai-url', `${sim.url}/v1`,
              '--minimum-tokens', '1000', '--reservation-ttl-ms', String(RESERVATION_TTL_MS), '--sweep-interval-ms', '250', '--log-level', 'silent',
            ]),
          ),
        );
        const urls = replicas.map((r) => r.url);
        const ledger = new Ledger(await openStore(storeUrl));
        try {
          // The tree, created through a different replica each time.
          // Billed, so each client can add up what it was charged from the usage it saw (children inherit it).
          await admin(urls[0]!, '/tasks', { id: 'parent', total: PARENT_TOTAL, policy: 'hard', meter: 'billed' });
          for (const [i, total] of CHILD_TOTALS.entries()) {
            await admin(urls[i % REPLICAS]!, '/tasks', { id: CHILDREN[i], total, policy: 'hard', parent: 'parent' });
          }
          // Agent n: child n % 10 (30 each), replica n % 3, every fifth on the OpenAI SDK.
          const agents: AgentSpec[] = Array.from({ length: CHILDREN.length * AGENTS_PER_CHILD }, (_, n) => ({
            task: CHILDREN[n % CHILDREN.length]!,
            replica: n % REPLICAS,
            sdk: n % 5 === 4 ? 'openai' : 'anthropic',
          }));
          const dead = REPLICAS - 1;
          let killed: Promise<void> | null = null;
          let inFlightAtKill = 0;
          const fleet = startFleet(urls, agents, {
            outputTokens: OUTPUT_TOKENS,
            onAnswer: (n) => {
              if (!killOne || n !== KILL_AFTER) return;
              // Calls answered before the kill may still sit unread in this busy process's buffers, so the kill is
              // made sure to find some inside: the replica's next calls take 1.5 s at the provider, and it dies
              // 300 ms later. From then on no new call goes there, and the ones on their way are cut off.
              fleet.slowDown(dead);
              killed = sleep(300).then(() => {
                inFlightAtKill = fleet.avoid(dead);
                return kill9(replicas[dead]!.child);
              });
            },
          });
          const got: FleetResult = await fleet.done;
          await killed;
          if (killOne) assert.equal(replicas[dead]!.child.signalCode, 'SIGKILL');
          const survivor = urls[0]!;

          // Every agent ended on a refusal; both kinds of limit refused some: children 0-4 themselves, the parent the rest.
          assert.equal(sum([...got.refusedBy.values()]), agents.length);
          assert.ok(CHILDREN.slice(0, 5).some((c) => got.refusedBy.has(c)), JSON.stringify([...got.refusedBy]));
          assert.ok((got.refusedBy.get('parent') ?? 0) > 0, JSON.stringify([...got.refusedBy]));
          if (!killOne) assert.equal(got.lost.size, 0);

          // Once the dead replica's holds have expired and a survivor's sweeper released them, nothing is reserved.
          const tree = await until(
            () => admin<TaskDetail>(survivor, '/tasks/parent'),
            (t) => t.reserved === 0 && t.children.every((c) => c.reserved === 0),
            'reservations left on the tree',
          );
          const children = new Map(tree.children.map((c) => [c.id, c]));
          assert.equal(children.size, CHILDREN.length);

          // Zero overspend at every level; the parent is exactly the sum of its children.
          for (const t of [tree, ...tree.children]) {
            assert.ok(t.used <= t.total, `${t.id} used ${t.used} of ${t.total}`);
            assert.deepEqual([t.reserved, t.callsInFlight], [0, 0], t.id);
          }
          assert.equal(tree.used, sum(tree.children.map((c) => c.used)));
          assert.equal(tree.calls, sum(tree.children.map((c) => c.calls)));

          // The ledger's second view: its reservation rows. Every settled amount adds up to `used`, on the child
          // and on the parent, and nothing is left pending.
          const rows = await reservationRows(storeUrl, 'parent');
          assert.ok(rows.every((r) => r.status !== 'pending'));
          const settled = rows.filter((r) => r.status === 'settled');
          assert.equal(sum(settled.map((r) => r.settledAmounts![0]!)), tree.used);
          const expiredRows = rows.filter((r) => r.status === 'expired');
          // The sweepers of the replicas released each expired hold once, with one event each.
          const expiredEvents = await until(
            async () => (await ledger.events({ limit: 100_000 })).filter((e) => e.type === 'reservation_expired'),
            (es) => es.length >= expiredRows.length,
            'reservation_expired events published',
          );
          assert.deepEqual(expiredEvents.map((e) => e.data.reservation).sort(), expiredRows.map((r) => r.id).sort());
          assert.equal(rows.filter((r) => r.status === 'released').length, 0);

          for (const [i, id] of CHILDREN.entries()) {
            const child = children.get(id)!;
            const ledgerCalls = settled.filter((r) => r.taskId === id).map((r) => r.settledAmounts!.at(-1)!);
            const clientCalls = got.usage.get(id) ?? [];
            assert.equal(sum(ledgerCalls), child.used, id);
            assert.equal(ledgerCalls.length, child.calls, id);
            const lost = got.lost.get(id) ?? 0;
            const expired = expiredRows.filter((r) => r.taskId === id).length;
            // Calls the ledger settled but whose answer the client never got: only calls cut off by the kill.
            const unseen = without(ledgerCalls, clientCalls, id);
            assert.equal(child.used, sum(clientCalls) + sum(unseen), id);
            if (!killOne) {
              assert.deepEqual([unseen.length, expired], [0, 0], id);
              assert.equal(child.used, sum(clientCalls), id);
            } else {
              // Each cut-off call held at most one reservation: settled (answer lost), expired (never settled) or none.
              assert.ok(unseen.length + expired <= lost, `${id}: ${unseen.length} unseen + ${expired} expired > ${lost} cut off`);
            }
            assert.equal(child.total, CHILD_TOTALS[i]);
          }
          if (killOne) {
            // The calls cut off were all on their way to the dead replica when it was killed, and there were some.
            const lost = sum([...got.lost.values()]);
            assert.ok(lost > 0 && lost <= inFlightAtKill, `${lost} cut off, ${inFlightAtKill} in flight at the kill`);
          }
        } finally {
          await ledger.shutdown();
          for (const r of replicas) await kill9(r.child);
        }
      });
    }
  }
});
