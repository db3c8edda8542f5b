// Starts a real gateway on loopback over a real SQLite file, for tests.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ledger, type LedgerOptions } from '../../src/ledger/ledger.js';
import { buildGateway, type Gateway, type GatewayParts } from '../../src/gateway/server.js';
import type { GatewayOptions } from '../../src/gateway/options.js';
import { SqliteStore } from '../../src/store/sqlite.js';

export interface TestGateway {
  url: string;
  ledger: Ledger;
  gateway: Gateway;
  dbPath: string;
  close(): Promise<void>;
}

export function tempDbPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'envelope-test-')), 'ledger.db');
}

export async function startGateway(
  options: Partial<GatewayOptions>,
  ledgerOptions: LedgerOptions = {},
  parts: GatewayParts = {},
  dbPath = tempDbPath(),
): Promise<TestGateway> {
  const ledger = new Ledger(new SqliteStore(dbPath), ledgerOptions);
  const gateway = buildGateway(ledger, { logLevel: 'silent', ...options }, parts);
  const url = await gateway.listen(0, '127.0.0.1');
  return {
    url,
    ledger,
    gateway,
    dbPath,
    async close() {
      await gateway.close();
      await ledger.shutdown();
    },
  };
}
