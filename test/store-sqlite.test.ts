import { storeContract } from './contract/store-contract.js';
import { replicaContract } from './contract/replica-contract.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDbPath } from './helpers/gateway.js';

storeContract('sqlite', { makeStore: async () => new SqliteStore(tempDbPath()) });
// Several processes on one file: the embedded store's "replicas".
replicaContract('sqlite', { makeUrl: () => `sqlite:${tempDbPath()}` });
