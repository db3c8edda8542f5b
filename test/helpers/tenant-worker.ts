// A separate process calling on behalf of one tenant: `callers` concurrent loops of reserve → settle, each call exactly
// 1,000 tokens, on tasks created on first sight under the tenant's envelope. `attempts` calls per caller (0: until
// the budget refuses). With `switchAfter` the process's clock is 23:59 on 2029-12-31 until that many calls have been
// made, then 00:01 the next day: a period boundary crossed under load. Prints one JSON line of what it saw.
import { EnvelopeError } from '../../src/budget/errors.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { openStore } from '../../src/store/open.js';

const [storeUrl, tenant, tasksText, callersText, attemptsText, switchText] = process.argv.slice(2);
const callers = Number(callersText);
const attempts = Number(attemptsText);
const switchAfter = switchText === undefined ? null : Number(switchText);
const midnight = Date.UTC(2030, 0, 1);
let made = 0;
const started = performance.now();
const clock =
  switchAfter === null ? Date.now : () => (made < switchAfter ? midnight - 60_000 : midnight + 60_000) + Math.round(performance.now() - started);
const ledger = new Ledger(await openStore(storeUrl!), { clock });
const tasks = tasksText!.split(',');
const seen = { settled: 0, limited: 0, refused: 0 };
const scope = { tenant: tenant! };

async function caller(index: number): Promise<void> {
  for (let i = 0; attempts === 0 || i < attempts; i++) {
    const taskId = tasks[(index + i) % tasks.length]!;
    try {
      const g = await ledger.reserve({ taskId, model: null, inputTokens: 400, outputTokensMax: 600, outputTokensMin: 600 }, scope, {
        create: { id: taskId, total: 1e9, meter: 'billed' },
      });
      made++;
      await ledger.settle(g.reservation.id, { inputTokens: 400, outputTokens: 600, cacheWriteTokens: 0, cacheReadTokens: 0 });
      seen.settled += 1_000;
    } catch (e) {
      if (!(e instanceof EnvelopeError)) throw e;
      if (e.code === 'rate_limited') seen.limited++;
      else if (e.code === 'budget_exceeded') {
        seen.refused++;
        if (attempts === 0) return;
      } else throw e;
    }
  }
}

await Promise.all(Array.from({ length: callers }, (_, i) => caller(i)));
process.stdout.write(`${JSON.stringify(seen)}\n`);
await ledger.shutdown();
