// The gateway as `envelope serve` assembles it, on a fresh SQLite file: the insight layer (GET /calibration,
// /report, /metrics) mounted, or left out to see what the dashboard does without it.
import type { GatewayOptions } from '../../src/gateway/options.js';
import { buildGateway } from '../../src/gateway/server.js';
import { createInsight } from '../../src/insight/gateway-insight.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tempDbPath } from './gateway.js';

export interface Stack {
  url: string;
  ledger: Ledger;
  close(): Promise<void>;
}

export async function startStack(options: Partial<GatewayOptions>, withInsight: boolean): Promise<Stack> {
  const ledger = new Ledger(new SqliteStore(tempDbPath()));
  const insight = withInsight ? createInsight(ledger) : null;
  const gateway = buildGateway(ledger, { logLevel: 'silent', ...options }, insight ? { routes: insight.routes, observe: insight.observe } : {});
  insight?.start();
  const url = await gateway.listen(0, '127.0.0.1');
  return {
    url,
    ledger,
    async close() {
      await insight?.close();
      await gateway.close();
      await ledger.shutdown();
    },
  };
}
