// A separate process hammering one ledger file: `callers` concurrent loops of reserve → settle on one task.
// Prints one line per settlement ("settled N") as it happens, and "done <sum>" at the end.
import { EnvelopeError } from '../../src/budget/errors.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { openStore } from '../../src/store/open.js';

const [storeUrl, taskId, callersText, mode] = process.argv.slice(2);
const callers = Number(callersText);
const ledger = new Ledger(await openStore(storeUrl!));
const usage = { inputTokens: 400, outputTokens: 600, cacheWriteTokens: 0, cacheReadTokens: 0 };
let settled = 0;

async function caller(index: number): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      const g = await ledger.reserve({ taskId: taskId!, model: null, inputTokens: 400, outputTokensMax: 600, outputTokensMin: 600, ttlMs: 2_000 });
      // In burst mode every third reservation is left open, as a crash would leave it.
      if (mode === 'burst' && (index + i) % 3 === 0) continue;
      await ledger.settle(g.reservation.id, usage);
      settled += 1_000;
      process.stdout.write('settled 1000\n');
    } catch (e) {
      if (e instanceof EnvelopeError && e.code === 'budget_exceeded') return;
      throw e;
    }
  }
}

await Promise.all(Array.from({ length: callers }, (_, i) => caller(i)));
process.stdout.write(`done ${settled}\n`);
await ledger.shutdown();
