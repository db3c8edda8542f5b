// Starts a real gateway on loopback over a real SQLite file, for tests.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ledger, type LedgerOptions } from '../../src/ledger/ledger.js';
import { buildGateway, type Gateway, type GatewayParts } from '../../src/gateway/server.js';
import type { GatewayOptions } from '../../src/gateway/options.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { createInsight, type Insight } from '../../src/insight/gateway-insight.js';

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

/** A gateway with the insight layer mounted (GET /envelope/v1/metrics and the rest), started; `close` stops both. */
export async function startInsightGateway(options: Partial<GatewayOptions>, ledgerOptions: LedgerOptions = {}): Promise<TestGateway & { insight: Insight }> {
  const ledger = new Ledger(new SqliteStore(tempDbPath()), ledgerOptions);
  const insight = createInsight(ledger);
  const gateway = buildGateway(ledger, { logLevel: 'silent', ...options }, { routes: insight.routes, observe: insight.observe });
  const url = await gateway.listen(0, '127.0.0.1');
  insight.start();
  return { url, ledger, gateway, dbPath: '', insight, close: async () => (await insight.close(), await gateway.close(), await ledger.shutdown()) };
}
