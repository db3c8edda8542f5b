// One process of the stores benchmark: `callers` concurrent loops of reserve → settle for a fixed time.
// argv: storeUrl, comma-separated task ids (caller i uses id i mod n), callers, warmupMs, durationMs.
// Tells the parent 'ready', waits for 'go', and answers with the pairs finished inside the measured window.
import { Ledger } from '../src/ledger/ledger.js';
import { openStore } from '../src/store/open.js';

const [storeUrl, taskList, callersText, warmupText, durationText] = process.argv.slice(2);
const taskIds = taskList!.split(',');
const ledger = new Ledger(await openStore(storeUrl!));
const usage = { inputTokens: 10, outputTokens: 10, cacheWriteTokens: 0, cacheReadTokens: 0 };
process.send!('ready');
await new Promise<void>((resolve) => process.once('message', () => resolve()));

const start = performance.now() + Number(warmupText);
const end = start + Number(durationText);
let pairs = 0;
await Promise.all(
  Array.from({ length: Number(callersText) }, async (_, i) => {
    const taskId = taskIds[i % taskIds.length]!;
    for (;;) {
      const g = await ledger.reserve({ taskId, model: null, inputTokens: 10, outputTokensMax: 10 });
      await ledger.settle(g.reservation.id, usage);
      const now = performance.now();
      if (now >= end) return;
      if (now >= start) pairs++;
    }
  }),
);
process.send!({ pairs, seconds: Number(durationText) / 1000 });
await ledger.shutdown();
process.disconnect();
