// The Redis store on a real Redis Cluster (three local masters: helpers/redis-cluster.ts) through ioredis's cluster
// client: each task tree, each tenant's rate window and the shared indexes hash to slots of their own, so a tenant's
// admission and its tree's reservation run on different masters.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import { storeContract } from './contract/store-contract.js';
import { replicaContract } from './contract/replica-contract.js';
import { Ledger } from '../src/ledger/ledger.js';
import { envelopeIdOf, parseTenantSpec } from '../src/budget/tenants.js';
import { storeIdOf } from '../src/budget/spec.js';
import { RedisStore, parseRedisUrl } from '../src/store/redis.js';
import { TestStores } from './helpers/stores.js';

const stores = new TestStores();
after(() => stores.cleanup());

storeContract('redis cluster', { makeStore: async () => RedisStore.connect(await stores.redisClusterUrl()) });
replicaContract('redis cluster', { makeUrl: () => stores.redisClusterUrl() });

describe('redis cluster: slots', () => {
  it('a tenant’s rate window and its envelope’s tree on different masters: admitted, reserved and settled on each', async () => {
    const url = await stores.redisClusterUrl();
    const store = await RedisStore.connect(url);
    const ledger = new Ledger(store);
    const cluster = new Cluster(parseRedisUrl(url).cluster!.nodes);
    try {
      await new Promise((resolve) => cluster.once('ready', resolve));
      const k = store.keys;
      const master = async (key: string): Promise<string> => cluster.slots[(await cluster.cluster('KEYSLOT', key)) as number]![0]!;
      const rateKey = (t: string) => k.row(k.rateTree(t), `q:${t}`);
      const envelopeKey = (t: string) => k.row(envelopeIdOf(t), `t:${envelopeIdOf(t)}`);
      let tenant = '';
      for (let i = 0; !tenant && i < 32; i++) if ((await master(rateKey(`slots-${i}`))) !== (await master(envelopeKey(`slots-${i}`)))) tenant = `slots-${i}`;
      assert.ok(tenant, 'some tenant has its rate window on another master than its envelope');
      await ledger.governance.set(parseTenantSpec(tenant, { total: 50_000, rpm: 10, tpm: 100_000 }));
      const scope = { tenant };
      // A task the tenant creates hangs under its envelope, so its rows are in the envelope's tree.
      await ledger.createTask({ id: `${tenant}-task`, total: 20_000 }, scope);
      const g = await ledger.reserve({ taskId: `${tenant}-task`, model: null, inputTokens: 100, outputTokensMax: 100 }, scope);
      await ledger.settle(g.reservation.id, { inputTokens: 100, outputTokens: 50, cacheWriteTokens: 0, cacheReadTokens: 0 });
      // Read from each master itself, not through the cluster's routing.
      const on = (address: string) => cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === address)!;
      const rate = on(await master(rateKey(tenant)));
      const tree = on(await master(envelopeKey(tenant)));
      assert.notEqual(rate, tree);
      const [window, envelope, task] = await Promise.all([
        rate.hgetall(rateKey(tenant)),
        tree.hgetall(envelopeKey(tenant)),
        tree.hgetall(k.row(envelopeIdOf(tenant), `t:${storeIdOf(tenant, `${tenant}-task`)}`)),
      ]);
      assert.deepEqual([Object.keys(window).length > 0, envelope.used, task.used], [true, '150', '150']);
      const [view] = (await ledger.governance.list()).filter((t) => t.tenant === tenant);
      assert.deepEqual([view!.envelope?.used, view!.limits?.window.requests, view!.limits?.window.tokens], [150, 1, 150]);
    } finally {
      cluster.disconnect();
      await ledger.shutdown();
    }
  });
});
