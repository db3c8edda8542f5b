import { after } from 'node:test';
import { storeContract } from './contract/store-contract.js';
import { replicaContract } from './contract/replica-contract.js';
import { PostgresStore } from '../src/store/postgres.js';
import { TestStores } from './helpers/stores.js';

const stores = new TestStores();
after(() => stores.cleanup());

storeContract('postgres', { makeStore: () => PostgresStore.connect(stores.postgresUrl()) });
replicaContract('postgres', { makeUrl: () => stores.postgresUrl() });
