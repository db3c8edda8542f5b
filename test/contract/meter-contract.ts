// The meters and admission of SPEC §1a, on every store: what a call is charged (`loop`, `billed`), how the next call
// is estimated from its conversation's baseline, and a countdown that says "stop and report" while a final call
// still fits. Called from storeContract(), so every store's test file runs it.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { EnvelopeError } from '../../src/budget/errors.js';
import type { Usage } from '../../src/budget/types.js';
import { Ledger } from '../../src/ledger/ledger.js';

const use = (input: number, output: number, cacheRead = 0, cacheWrite = 0): Usage => ({
  inputTokens: input,
  outputTokens: output,
  cacheReadTokens: cacheRead,
  cacheWriteTokens: cacheWrite,
});

/** One call on a conversation: reserve from the request's size, settle with the provider's usage. */
async function call(ledger: Ledger, taskId: string, conversation: string | null, bodyBytes: number, usage: Usage, outputTokensMax = 2_000) {
  const grant = await ledger.reserve({ taskId, model: null, bodyBytes, conversation, outputTokensMax });
  const before = (await ledger.task(taskId)).used;
  const settled = await ledger.settle(grant.reservation.id, usage);
  return { grant, charged: settled.path.at(-1)!.used - before };
}

const isCode = (code: string) => (e: unknown) => e instanceof EnvelopeError && e.code === code;

export function meterContract(ledgerOf: () => Ledger): void {
  it('loop meter: a conversation’s first call charges its output only, later calls what they add, a compaction no input', async () => {
    const ledger = ledgerOf();
    const created = await ledger.createTask({ id: 'm-loop', total: 50_000, policy: 'hard' });
    assert.equal(created.meter, 'loop');
    // 1: a 60 KB first call (system prompt and tools, 20,000 tokens written to the cache): its input is free.
    const first = await call(ledger, 'm-loop', 'c1', 60_000, use(100, 500, 0, 19_900));
    assert.deepEqual([first.grant.reservation.amounts, first.charged], [[2_000], 500]);
    // 2: 3,000 bytes more. Estimated: ceil((3,000 + 320) / 3) − the 500-token reply among them = 607 fresh tokens.
    const second = await call(ledger, 'm-loop', 'c1', 63_000, use(900, 400, 20_000));
    assert.deepEqual([second.grant.reservation.amounts, second.charged], [[607 + 2_000], 400 + 400]); // 20,900 − (20,000 + 500)
    // 3: a compaction (a smaller request; whole input 8,000 < the 21,300 baseline): no input charged, baseline reset.
    const third = await call(ledger, 'm-loop', 'c1', 30_000, use(8_000, 300));
    assert.deepEqual([third.grant.reservation.amounts, third.charged], [[2_000], 300]);
    // 4: 1,000 bytes past the compacted call: ceil(1,320 / 3) − 300 = 140 estimated; charged 8,500 − 8,300 + 200.
    const fourth = await call(ledger, 'm-loop', 'c1', 31_000, use(8_500, 200));
    assert.deepEqual([fourth.grant.reservation.amounts, fourth.charged], [[140 + 2_000], 200 + 200]);
    const row = await ledger.task('m-loop');
    assert.deepEqual([row.used, row.reserved, row.calls, row.tokensUsed], [500 + 800 + 300 + 400, 0, 4, 20_500 + 21_300 + 8_300 + 8_700]);
    assert.deepEqual(row.conversations.map((c) => [c.key, c.inputTokens, c.outputTokens, c.bodyBytes, c.recent.map((r) => r.loop)]), [['c1', 8_500, 200, 31_000, [800, 300, 400]]]);
  });

  it('loop meter: two conversations interleaved in one task keep their own baselines; billed counts every token', async () => {
    const ledger = ledgerOf();
    for (const meter of ['loop', 'billed'] as const) {
      const id = `m-two-${meter}`;
      await ledger.createTask({ id, total: 50_000, meter });
      const charged: number[] = [];
      for (const [conv, bytes, usage] of [
        ['a', 30_000, use(10_000, 200)],
        ['b', 15_000, use(5_000, 100)],
        ['a', 31_000, use(10_400, 200)],
        ['b', 16_000, use(5_300, 100)],
      ] as const) {
        charged.push((await call(ledger, id, conv, bytes, usage)).charged);
      }
      const expected = meter === 'loop' ? [200, 100, 200 + 200, 200 + 100] : [10_200, 5_100, 10_600, 5_400];
      assert.deepEqual(charged, expected, meter);
      assert.equal((await ledger.task(id)).used, expected.reduce((a, b) => a + b));
    }
    // A call that names no conversation has no baseline: the loop meter charges all of it.
    const none = await call(ledger, 'm-two-loop', null, 3_000, use(1_000, 50));
    assert.equal(none.charged, 1_050);
  });

  it('loop meter: keeps the baselines of 8 conversations per task, the least recent dropped', async () => {
    const ledger = ledgerOf();
    await ledger.createTask({ id: 'm-many', total: 200_000 });
    for (let i = 0; i < 10; i++) await call(ledger, 'm-many', `k${i}`, 9_000, use(3_000, 10));
    const row = await ledger.task('m-many');
    assert.deepEqual(row.conversations.map((c) => c.key), ['k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8', 'k9']);
    // k0 was dropped: its next call is a first call again (output only); k9 is still known (what it added).
    assert.equal((await call(ledger, 'm-many', 'k0', 9_000, use(3_000, 10))).charged, 10);
    assert.equal((await call(ledger, 'm-many', 'k9', 9_100, use(3_050, 10))).charged, 40 + 10);
  });

  it('never lets 64 concurrent callers overspend a hard child and its parent, in either meter', async () => {
    const ledger = ledgerOf();
    for (const meter of ['loop', 'billed'] as const) {
      await ledger.createTask({ id: `m-h-parent-${meter}`, total: 30_000, policy: 'hard', meter });
      await ledger.createTask({ id: `m-h-child-${meter}`, total: 25_000, parent: `m-h-parent-${meter}` });
      let settled = 0;
      let refused = 0;
      await Promise.all(
        Array.from({ length: 64 }, async (_, i) => {
          try {
            // Each caller its own conversation: under `loop` its input (500) is free, under `billed` it is held.
            const g = await ledger.reserve({ taskId: `m-h-child-${meter}`, model: null, bodyBytes: 1_180, conversation: `c${i}`, outputTokensMax: 1_500, outputTokensMin: 1_500 });
            const s = await ledger.settle(g.reservation.id, use(500, 1_500));
            settled += s.reservation.settledAmounts!.at(-1)!;
          } catch (e) {
            assert.ok(isCode('budget_exceeded')(e), String(e));
            refused++;
          }
        }),
      );
      const [child, parent] = [await ledger.task(`m-h-child-${meter}`), await ledger.task(`m-h-parent-${meter}`)];
      assert.equal(child.used, settled);
      const perCall = meter === 'loop' ? 1_500 : 2_000;
      assert.deepEqual([child.used, parent.used, child.reserved, parent.reserved, refused], [Math.floor(25_000 / perCall) * perCall, child.used, 0, 0, 64 - Math.floor(25_000 / perCall)], meter);
      assert.deepEqual([child.policy, child.meter], ['hard', meter], 'a child takes its parent’s policy and meter');
    }
  });

  it('children take their parent’s policy, unit and meter unless they name their own', async () => {
    const ledger = ledgerOf();
    await ledger.createTask({ id: 'i-hard', total: 100_000, policy: 'hard', meter: 'billed' });
    const child = await ledger.createTask({ id: 'i-hard/a', total: 20_000, parent: 'i-hard' });
    assert.deepEqual([child.policy, child.unit, child.meter], ['hard', 'tokens', 'billed']);
    const own = await ledger.createTask({ id: 'i-hard/b', total: 20_000, parent: 'i-hard', policy: 'approval', meter: 'loop' });
    assert.deepEqual([own.policy, own.meter], ['approval', 'loop']);
    await ledger.createTask({ id: 'i-usd', total: 5, unit: 'usd', policy: 'approval' });
    const usdChild = await ledger.createTask({ id: 'i-usd/a', total: 1.5, parent: 'i-usd' });
    assert.deepEqual([usdChild.policy, usdChild.unit, usdChild.meter, usdChild.total], ['approval', 'usd', 'billed', 1_500_000]);
    const tokenChild = await ledger.createTask({ id: 'i-usd/b', total: 20_000, parent: 'i-usd', unit: 'tokens' });
    assert.deepEqual([tokenChild.unit, tokenChild.meter], ['tokens', 'loop']);
    // The same id again without the settings it inherited is the same task.
    assert.equal((await ledger.createTask({ id: 'i-hard/a', total: 20_000, parent: 'i-hard' })).version, child.version);
  });

  it('refuses a meter that does not apply, and changes nothing', async () => {
    const ledger = ledgerOf();
    const before = (await ledger.listTasks({ limit: 10_000 })).length;
    await assert.rejects(ledger.createTask({ id: 'bad-m1', total: 5, unit: 'usd', meter: 'loop' }), (e: unknown) => isCode('invalid_request')(e) && /USD task is always billed/.test((e as Error).message));
    await assert.rejects(ledger.createTask({ id: 'bad-m2', total: 20_000, meter: 'fresh' }), (e: unknown) => isCode('invalid_request')(e) && /meter/.test((e as Error).message));
    await ledger.createTask({ id: 'bad-usd', total: 5, unit: 'usd' });
    await assert.rejects(ledger.createTask({ id: 'bad-m3', total: 1, parent: 'bad-usd', meter: 'loop' }), (e: unknown) => isCode('invalid_request')(e) && /always billed/.test((e as Error).message));
    assert.equal((await ledger.listTasks({ limit: 10_000 })).length, before + 1);
  });

  it('creates a task with its first call’s hold in one step, and not at all when that call is refused', async () => {
    const ledger = ledgerOf();
    const spec = { id: 'cr-1', total: 20_000, policy: 'hard', meter: 'billed' };
    // 90,000 bytes: about 30,107 tokens in the worst case, more than the whole budget.
    await assert.rejects(ledger.reserve({ taskId: 'cr-1', model: null, bodyBytes: 90_000, conversation: 'c', outputTokensMax: 1_000 }, {}, { create: spec }), isCode('budget_exceeded'));
    assert.equal(await ledger.findTask('cr-1'), undefined);
    await assert.rejects(
      ledger.reserve({ taskId: 'cr-2', model: 'mystery-model-9', bodyBytes: 100, conversation: 'c', outputTokensMax: 1_000 }, {}, { create: { id: 'cr-2', total: 1, unit: 'usd' } }),
      isCode('price_unknown'),
    );
    assert.equal(await ledger.findTask('cr-2'), undefined);
    const g = await ledger.reserve({ taskId: 'cr-1', model: null, bodyBytes: 2_680, conversation: 'c', outputTokensMax: 1_000 }, {}, { create: spec });
    assert.deepEqual(g.reservation.amounts, [1_000 + 1_000]);
    const row = await ledger.task('cr-1');
    assert.deepEqual([row.reserved, row.callsReserved, row.policy, row.meter], [2_000, 1, 'hard', 'billed']);
    // Known now: the same spec reserves on it, a carried remaining lowers it in the same step.
    const again = await ledger.reserve({ taskId: 'cr-1', model: null, bodyBytes: 2_680, conversation: 'c', outputTokensMax: 1_000, remainingCarried: 15_000 }, {}, { create: spec });
    assert.equal(again.path.at(-1)!.used, 3_000);
  });

  it('says "stop and report" while a final call still fits, and refuses only the call after it', async () => {
    const ledger = ledgerOf();
    await ledger.createTask({ id: 'edge', total: 30_000, policy: 'hard' });
    // An agent on a 20,000-token cached prompt: each turn adds its 400-token reply (1,700 bytes) and a 3 KB tool
    // result (800 tokens). Counted exactly, when the ledger asks, the whole input is what the provider would say.
    let bytes = 60_000;
    let whole = 20_000;
    let counted = 0;
    const levels: string[] = [];
    let refusedAt = 0;
    for (let n = 1; n <= 40; n++) {
      let g;
      try {
        g = await ledger.reserve({ taskId: 'edge', model: null, bodyBytes: bytes, conversation: 'c', outputTokensMax: 4_000 }, {}, { countInputTokens: async () => (counted++, whole) });
      } catch (e) {
        assert.ok(isCode('budget_exceeded')(e), String(e));
        refusedAt = n;
        break;
      }
      levels.push(g.countdown.level);
      await ledger.settle(g.reservation.id, use(100, 400, whole - 100));
      whole += 400 + 800;
      bytes += 1_700 + 3_000;
    }
    const row = await ledger.task('edge');
    // Call 1 charges its 400-token output, every later call 1,200; scoping from a projected 70 %, wrapping up from 85 %.
    assert.deepEqual([levels.indexOf('scope') + 1, levels.indexOf('wrap_up') + 1, levels.indexOf('stop') + 1, levels.length, refusedAt], [19, 22, 25, 25, 26]);
    assert.deepEqual([row.used, row.reserved], [400 + 24 * 1_200, 0]);
    assert.ok(row.used / row.total >= 0.95 && row.used <= row.total, `used ${row.used}`);
    // The exact count is asked only where the estimate would cut or refuse: call 25 (let through) and call 26.
    assert.equal(counted, 2);
  });

  it('takes a call that continues a provider-held answer as that answer’s conversation, on any replica', async () => {
    const ledger = ledgerOf();
    const replica = new Ledger(ledger.store);
    await ledger.createTask({ id: 'm-cont', total: 50_000 });
    const first = await ledger.reserve({ taskId: 'm-cont', model: null, bodyBytes: 30_000, conversation: 'r', outputTokensMax: 2_000 });
    await ledger.settle(first.reservation.id, use(10_000, 300), 'resp_1');
    // The next call sends only its new input (a 1,500-byte tool output): all of it fresh, on top of the baseline.
    const second = await replica.reserve({ taskId: 'm-cont', model: null, bodyBytes: 1_500, conversation: null, continues: 'resp_1', outputTokensMax: 2_000 });
    assert.deepEqual([second.reservation.conversation, second.reservation.amounts], ['r', [607 + 2_000]]);
    const s2 = await replica.settle(second.reservation.id, use(10_800, 200), 'resp_2');
    assert.equal(s2.reservation.settledAmounts![0], 200 + (10_800 - 10_300));
    const third = await ledger.reserve({ taskId: 'm-cont', model: null, bodyBytes: 900, conversation: null, continues: 'resp_2', outputTokensMax: 2_000 });
    const s3 = await ledger.settle(third.reservation.id, use(11_100, 100), 'resp_3');
    assert.equal(s3.reservation.settledAmounts![0], 100 + (11_100 - 11_000));
    // An answer the task does not know (another task's, or a conversation it dropped): a conversation of its own.
    const other = await ledger.reserve({ taskId: 'm-cont', model: null, bodyBytes: 900, conversation: null, continues: 'resp_elsewhere', outputTokensMax: 2_000 });
    const s4 = await ledger.settle(other.reservation.id, use(40_000, 100), 'resp_4');
    assert.deepEqual([other.reservation.conversation, s4.reservation.settledAmounts![0]], ['continues:resp_elsewhere', 100]);
  });

  it('holds the output of every answer a request asks for (OpenAI n)', async () => {
    const ledger = ledgerOf();
    await ledger.createTask({ id: 'n-8', total: 50_000, policy: 'hard', meter: 'billed' });
    const g = await ledger.reserve({ taskId: 'n-8', model: null, inputTokens: 2_000, outputTokensMax: 25_000, choices: 8 });
    assert.deepEqual([g.outputTokens, g.reservation.amounts], [6_000, [2_000 + 8 * 6_000]]);
    await assert.rejects(ledger.reserve({ taskId: 'n-8', model: null, inputTokens: 1, outputTokensMax: 1, choices: 0 }), isCode('invalid_request'));
  });
}
