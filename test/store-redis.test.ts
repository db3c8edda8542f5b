import { after } from 'node:test';
import { storeContract } from './contract/store-contract.js';
import { RedisStore } from '../src/store/redis.js';
import { TestStores } from './helpers/stores.js';
import { replicaContract } from './contract/replica-contract.js';

const stores = new TestStores();
after(() => stores.cleanup());

storeContract('redis', { makeStore: () => RedisStore.connect(stores.redisUrl()) });
replicaContract('redis', { makeUrl: () => stores.redisUrl() });
