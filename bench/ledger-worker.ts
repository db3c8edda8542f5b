// One process of the ledger benchmark: `pairs` reserve+settle pairs on one task, as fast as it can.
import { Ledger } from '../src/ledger/ledger.js';
import { openStore } from '../src/store/open.js';

const [storeUrl, taskId, pairsText, callersText] = process.argv.slice(2);
const ledger = new Ledger(await openStore(storeUrl!));
const usage = { inputTokens: 10, outputTokens: 10, cacheWriteTokens: 0, cacheReadTokens: 0 };
const perCaller = Math.ceil(Number(pairsText) / Number(callersText ?? 1));
process.send?.('ready');
await new Promise<void>((resolve) => process.once('message', () => resolve()));
const t0 = performance.now();
await Promise.all(
  Array.from({ length: Number(callersText ?? 1) }, async () => {
    for (let i = 0; i < perCaller; i++) {
      const g = await ledger.reserve({ taskId: taskId!, model: null, inputTokens: 10, outputTokensMax: 10 });
      await ledger.settle(g.reservation.id, usage);
    }
  }),
);
process.send?.({ ms: performance.now() - t0 });
await ledger.shutdown();
