// The pipeline's invariant (pipeline/run-call.ts): every step after a reservation runs under one try/finally, so a
// failure anywhere between reserve and settle gives the hold back at once — whatever fails and however.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EnvelopeError } from '../src/budget/errors.js';
import type { Decision, Snapshot } from '../src/budget/rules.js';
import type { TaskRow, Usage } from '../src/budget/types.js';
import { Ledger } from '../src/ledger/ledger.js';
import { DEFAULT_CALL_POLICY } from '../src/pipeline/budgeted-call.js';
import { BudgetedCall, newCallEnv, runCall, type Answer, type Carrier } from '../src/pipeline/run-call.js';
import { openai } from '../src/providers/openai.js';
import type { Provider } from '../src/providers/provider.js';
import { MemoryStore } from '../src/store/memory.js';
import type { Need } from '../src/store/store.js';

const USAGE: Usage = { inputTokens: 40, outputTokens: 60, cacheWriteTokens: 0, cacheReadTokens: 0 };
const body = { model: 'gpt-4.1', max_tokens: 500, messages: [{ role: 'user', content: 'hello' }] };

/** A memory store whose settle (a write on a reservation that is not a release) fails while `failSettle` is set. */
class FlakyStore extends MemoryStore {
  failSettle = false;
  override atomically<T>(need: Need, decide: (snap: Snapshot) => Decision<T>): Promise<T> {
    if (this.failSettle && need.reservation !== undefined) {
      this.failSettle = false;
      return Promise.reject(new Error('the store went away'));
    }
    return super.atomically(need, decide);
  }
}

interface Faults {
  prepare?: boolean;
  forward?: () => never;
  usage?: Usage;
  finish?: boolean;
}

/** A carrier whose forward answers USAGE (or fails as told), recording what the caller was told. */
function carrierFor(faults: Faults, told: { failed: unknown[]; answered: number }): Carrier<unknown> {
  return {
    name: 'library',
    identify: () => ({ id: 'inv-1', create: null }),
    async forward(): Promise<Answer> {
      faults.forward?.();
      return {
        usage: faults.usage ?? USAGE,
        finish: () => {
          if (faults.finish) throw new Error('the client went away while the answer was written');
          told.answered++;
        },
      };
    },
    fail: (_call, e) => void told.failed.push(e),
  };
}

async function run(ledger: Ledger, faults: Faults): Promise<{ row: TaskRow; failed: unknown[]; answered: number }> {
  const told = { failed: [] as unknown[], answered: 0 };
  const dialect: Provider = faults.prepare
    ? {
        ...openai,
        prepare: () => {
          throw new TypeError("Cannot read properties of undefined (reading 'content')");
        },
      }
    : openai;
  const call = new BudgetedCall<unknown>(newCallEnv(ledger, DEFAULT_CALL_POLICY), dialect, body, JSON.stringify(body).length, '/v1/chat/completions', {});
  await runCall(call, carrierFor(faults, told));
  return { row: await ledger.task('inv-1'), ...told };
}

describe('pipeline: no failure after a reservation leaves its hold behind', () => {
  it('releases the hold whatever fails between reserve and settle, and charges a call that was settled', async () => {
    const store = new FlakyStore();
    const ledger = new Ledger(store);
    await ledger.createTask({ id: 'inv-1', total: 50_000, policy: 'hard', meter: 'billed' });
    const cases: Array<[string, Faults]> = [
      ['the countdown cannot go in (a bug in a dialect)', { prepare: true }],
      ['the upstream cannot be reached', { forward: () => { throw new EnvelopeError('upstream_error', 'upstream did not answer'); } }],
      ['the carrier throws something unexpected', { forward: () => { throw new RangeError('Maximum call stack size exceeded'); } }],
      ['the usage is not a whole number (the ledger refuses it)', { usage: { ...USAGE, outputTokens: 1.5 } }],
    ];
    for (const [why, faults] of cases) {
      const { row, failed, answered } = await run(ledger, faults);
      assert.deepEqual([row.used, row.reserved, row.callsReserved, row.calls], [0, 0, 0, 0], why);
      assert.deepEqual([failed.length, answered], [1, 0], why);
    }
    // The store fails on the settle itself: the release that follows finds it back and gives the hold back.
    store.failSettle = true;
    const lost = await run(ledger, {});
    assert.deepEqual([lost.row.used, lost.row.reserved, lost.row.callsReserved, lost.failed.length], [0, 0, 0, 1]);
    // Settled, then the answer could not be written: the call is charged, and nothing stays held.
    const late = await run(ledger, { finish: true });
    assert.deepEqual([late.row.used, late.row.reserved, late.row.callsReserved, late.row.calls, late.failed.length], [100, 0, 0, 1, 1]);
    // And a call with nothing wrong is charged exactly its usage.
    const fine = await run(ledger, {});
    assert.deepEqual([fine.row.used, fine.row.reserved, fine.row.calls, fine.answered], [200, 0, 2, 1]);
    await ledger.shutdown();
  });
});
