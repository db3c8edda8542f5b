import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeContract } from './contract/store-contract.js';
import { SqliteStore } from '../src/store/sqlite.js';

storeContract('sqlite', {
  makeStore: async () => new SqliteStore(join(mkdtempSync(join(tmpdir(), 'envelope-')), 'ledger.db')),
});
