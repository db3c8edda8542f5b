// The contract every ledger store must pass. Each store's test file calls storeContract() with a factory.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ledger } from '../../src/ledger/ledger.js';
import type { LedgerStore } from '../../src/store/store.js';
import { EnvelopeError } from '../../src/budget/errors.js';

export interface ContractOptions {
  /** A fresh, empty store each call. */
  makeStore: () => Promise<LedgerStore>;
}

const usage = (input: number, output: number) => ({
  inputTokens: input,
  outputTokens: output,
  cacheWriteTokens: 0,
  cacheReadTokens: 0,
});

export function storeContract(name: string, opts: ContractOptions): void {
  describe(`store contract: ${name}`, () => {
    let store: LedgerStore;
    let ledger: Ledger;
    before(async () => {
      store = await opts.makeStore();
      ledger = new Ledger(store);
    });
    after(async () => {
      await store.close();
    });

    it('reserves, settles, and counts usage on the task and its parent', async () => {
      await ledger.createTask({ id: 'c-parent', total: 100_000, policy: 'hard' });
      await ledger.createTask({ id: 'c-child', total: 40_000, policy: 'hard', parent: 'c-parent' });
      const grant = await ledger.reserve({ taskId: 'c-child', model: null, inputTokens: 1_000, outputTokensMax: 4_000 });
      assert.equal(grant.outputTokens, 4_000);
      assert.deepEqual(grant.reservation.amounts, [5_000, 5_000]);
      const settled = await ledger.settle(grant.reservation.id, usage(900, 1_200));
      assert.equal(settled.charged, true);
      const again = await ledger.settle(grant.reservation.id, usage(900, 1_200));
      assert.equal(again.charged, false);
      const child = await ledger.task('c-child');
      const parent = await ledger.task('c-parent');
      assert.deepEqual([child.used, child.reserved, child.calls], [2_100, 0, 1]);
      assert.deepEqual([parent.used, parent.reserved, parent.calls], [2_100, 0, 1]);
    });

    it('never lets 64 concurrent callers overspend a hard child and its parent', async () => {
      await ledger.createTask({ id: 'h-parent', total: 30_000, policy: 'hard' });
      await ledger.createTask({ id: 'h-child', total: 25_000, policy: 'hard', parent: 'h-parent' });
      let settledTokens = 0;
      let refused = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          try {
            const g = await ledger.reserve({ taskId: 'h-child', model: null, inputTokens: 500, outputTokensMax: 1_500, outputTokensMin: 1_500 });
            await ledger.settle(g.reservation.id, usage(500, 1_500));
            settledTokens += 2_000;
          } catch (e) {
            assert.ok(e instanceof EnvelopeError && e.code === 'budget_exceeded', String(e));
            refused++;
          }
        }),
      );
      const child = await ledger.task('h-child');
      assert.equal(child.used, settledTokens);
      assert.equal(child.used, 24_000);
      assert.equal(refused, 52);
      assert.equal((await ledger.task('h-parent')).used, 24_000);
    });
  });
}
