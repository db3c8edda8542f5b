// Multipliers of the output (SPEC §1a, issue 14 item 2): OpenAI bills `n` answers of up to max_tokens each, Gemini
// `candidateCount`; the reservation holds every one of them, so a hard budget is never overspent, and a multiplier
// Envelope cannot hold for is refused on hard and approval budgets before anything is reserved.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { sendJson, sse, startFakeProvider, type FakeProvider } from './helpers/fake-provider.js';

const PROMPT_TOKENS = 10;

/** OpenAI chat as it bills: `n` answers, each using the whole max_tokens it was given. */
async function billsEveryChoice(): Promise<FakeProvider> {
  return startFakeProvider((req, res) => {
    const n: number = req.body.n ?? 1;
    const max: number = req.body.max_completion_tokens ?? req.body.max_tokens ?? 4_096;
    const usage = { prompt_tokens: PROMPT_TOKENS, completion_tokens: n * max, total_tokens: PROMPT_TOKENS + n * max };
    const choices = Array.from({ length: n }, (_, index) => ({ index, message: { role: 'assistant', content: 'x'.repeat(max * 4) }, finish_reason: 'length' }));
    if (req.body.stream !== true) return sendJson(res, 200, { id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: req.body.model, choices, usage });
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const c of choices) res.write(sse({ id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [{ index: c.index, delta: { content: c.message.content }, finish_reason: 'length' }] }));
    res.write(sse({ id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [], usage }));
    res.end(sse('[DONE]'));
  });
}

describe('gateway: answers a request multiplies its output by', () => {
  let fake: FakeProvider;
  let sim: Sim;
  let gw: TestGateway;
  before(async () => {
    fake = await billsEveryChoice();
    sim = await startSim({ outputTokens: 100 });
    gw = await startGateway({ openaiUrl: `${fake.url}/v1`, geminiUrl: sim.url });
  });
  after(async () => {
    await gw.close();
    await sim.close();
    await fake.close();
  });

  const client = (task: string, policy = 'hard', budget = '50000'): OpenAI =>
    new OpenAI({ apiKey: 'sk', baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: { 'x-envelope-task': task, 'x-envelope-budget': budget, 'x-envelope-policy': policy, 'x-envelope-meter': 'billed' } });

  it('holds n answers: n 8 with max_tokens 25,000 on a 50,000 hard budget gets each answer only what fits', async () => {
    const messages = [{ role: 'user' as const, content: 'write eight poems' }];
    const json = await client('n-json').chat.completions.create({ model: 'gpt-4.1', messages, n: 8, max_tokens: 25_000 });
    assert.equal(json.choices.length, 8);
    const sent = fake.received.at(-1)!.body as { max_tokens: number; n: number };
    // The hold: the input estimate + 8 × the output cap; the cap lowered so that it fits 50,000.
    const row = await gw.ledger.task('n-json');
    const input = Math.ceil((JSON.stringify({ model: 'gpt-4.1', messages, n: 8, max_tokens: 25_000 }).length + 320) / 3);
    assert.equal(sent.max_tokens, Math.floor((50_000 - input) / 8));
    assert.deepEqual([row.used, row.reserved, row.calls], [PROMPT_TOKENS + 8 * sent.max_tokens, 0, 1]);
    assert.ok(row.used <= 50_000, `used ${row.used} (it was 200,010 when one answer was held)`);
    // Streamed alike: the usage chunk counts every choice.
    const stream = await client('n-stream').chat.completions.create({ model: 'gpt-4.1', messages, n: 4, max_completion_tokens: 25_000, stream: true });
    for await (const _ of stream);
    const streamed = fake.received.at(-1)!.body as { max_completion_tokens: number };
    const srow = await gw.ledger.task('n-stream');
    assert.deepEqual([srow.used, srow.reserved], [PROMPT_TOKENS + 4 * streamed.max_completion_tokens, 0]);
    assert.ok(srow.used <= 50_000);
  });

  it('refuses an n it cannot hold for on hard and approval budgets, before anything is reserved', async () => {
    const before = fake.received.length;
    for (const [policy, n] of [['hard', 1.5], ['hard', '8'], ['approval', 129], ['hard', 0], ['approval', [2]]] as const) {
      const task = `n-bad-${policy}-${String(n)}`;
      await assert.rejects(
        client(task, policy).chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], n: n as number }),
        (e: any) => e.status === 400 && e.error?.type === 'invalid_request_error' && new RegExp(`task ${task} has an? ${policy} budget, and this request's n .* is not a whole number from 1 to 128`).test(e.message),
        `${policy} n=${JSON.stringify(n)}`,
      );
      assert.equal(await gw.ledger.findTask(task), undefined, 'no task is created');
    }
    // best_of (OpenAI-compatible servers) generates answers that are never returned: no hold can follow it.
    await assert.rejects(
      client('best-of').chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], best_of: 4 } as never),
      (e: any) => e.status === 400 && /best_of 4 generates answers that are not returned/.test(e.message),
    );
    assert.equal(fake.received.length, before, 'nothing reached the provider');
    // An advisory budget holds one answer and lets the provider judge the field (OpenAI refuses it in its own words).
    await client('n-advisory', 'advisory').chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], n: '2' as never, max_tokens: 100 });
    assert.equal(fake.received.at(-1)!.body.n, '2');
  });

  it('refuses an n on the Responses API (no such field) on a hard budget', async () => {
    await assert.rejects(
      client('resp-n').responses.create({ model: 'gpt-5', input: 'hi', n: 2 } as never),
      (e: any) => e.status === 400 && /this request's n 2 is no field of the Responses API/.test(e.message),
    );
    assert.equal(await gw.ledger.findTask('resp-n'), undefined);
  });

  it('holds Gemini candidateCount answers and refuses a count out of range on hard budgets', async () => {
    const headers = { 'content-type': 'application/json', 'x-goog-api-key': 'g', 'x-envelope-budget': '20000', 'x-envelope-policy': 'hard', 'x-envelope-meter': 'billed' };
    const body = { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { candidateCount: 8, maxOutputTokens: 8_000 } };
    const res = await fetch(`${gw.url}/v1beta/models/gemini-2.5-flash:generateContent`, { method: 'POST', headers: { ...headers, 'x-envelope-task': 'cand-8' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200);
    const log = ((await (await fetch(`${sim.url}/sim/requests`)).json()) as { requests: Array<{ raw: string }> }).requests;
    const sent = JSON.parse(log.at(-1)!.raw) as { generationConfig: { maxOutputTokens: number } };
    const input = Math.ceil((JSON.stringify(body).length + 320) / 3);
    assert.equal(sent.generationConfig.maxOutputTokens, Math.floor((20_000 - input) / 8));
    const bad = await fetch(`${gw.url}/v1beta/models/gemini-2.5-flash:generateContent`, {
      method: 'POST',
      headers: { ...headers, 'x-envelope-task': 'cand-9' },
      body: JSON.stringify({ ...body, generationConfig: { candidateCount: 9 } }),
    });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as any).error.message, /candidateCount 9 is not a whole number from 1 to 8/);
    assert.equal(await gw.ledger.findTask('cand-9'), undefined);
  });
});
