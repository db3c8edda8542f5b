// Prices: the maintained catalog (@pydantic/genai-prices) covers the mainstream models by the names providers really
// use; the user's --prices file wins over it and is checked whole at start-up (fail closed, never NaN budgets);
// `envelope prices ls|show` say what is known.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CLI } from '../bench/processes.js';
import { isEnvelopeError } from '../src/budget/errors.js';
import { Ledger } from '../src/ledger/ledger.js';
import { costMicros, priceFor } from '../src/metering/prices.js';
import { MemoryStore } from '../src/store/memory.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, tempDbPath, type TestGateway } from './helpers/gateway.js';

const run = promisify(execFile);
const rates = (model: string): number[] | undefined => {
  const p = priceFor(model, {});
  return p && [p.inputUsdPerMtok, p.outputUsdPerMtok, p.cacheWriteUsdPerMtok, p.cacheReadUsdPerMtok];
};
const file = (content: unknown): string => {
  const path = join(tempDbPath(), '..', 'prices.json');
  writeFileSync(path, JSON.stringify(content));
  return path;
};

describe('prices: the catalog', () => {
  it('prices Anthropic, OpenAI, Gemini, DeepSeek and Mistral models, dated snapshots and aliases included', () => {
    // [input, output, cache write, cache read] USD per Mtok; no cache-write charge (OpenAI, Gemini) = the input rate.
    assert.deepEqual(rates('claude-sonnet-4-6'), [3, 15, 3.75, 0.3]);
    assert.deepEqual(rates('claude-sonnet-4-5-20250929'), [3, 15, 3.75, 0.3]);
    assert.deepEqual(rates('claude-3-5-haiku-20241022'), [0.8, 4, 1, 0.08]);
    assert.deepEqual(rates('gpt-4o-2024-08-06'), [2.5, 10, 2.5, 1.25]);
    assert.deepEqual(rates('gpt-5-2025-08-07'), [1.25, 10, 1.25, 0.125]);
    assert.deepEqual(rates('gemini-2.5-flash'), [0.3, 2.5, 0.3, 0.03]);
    assert.deepEqual(rates('gemini-2.5-pro'), [1.25, 10, 1.25, 0.125]);
    assert.deepEqual(rates('mistral-medium-2508'), [0.4, 2, 0.4, 0.04]);
    assert.deepEqual(rates('mistral-large-latest'), [2, 6, 2, 2]);
    for (const model of ['deepseek-chat', 'deepseek-reasoner', 'gemini-3-pro-preview', 'grok-4', 'command-r-plus']) {
      assert.ok(priceFor(model, {}), `${model} has a price`);
    }
    assert.equal(priceFor('no-such-model-1', {}), undefined);
  });

  it('bills a long prompt at the long-context rate once its whole input passes the tier', () => {
    const price = priceFor('gemini-2.5-pro', {})!;
    const usage = (input: number) => ({ inputTokens: input, outputTokens: 1_000, cacheWriteTokens: 0, cacheReadTokens: 0 });
    assert.equal(costMicros(usage(200_000), price), 200_000 * 1.25 + 1_000 * 10);
    assert.equal(costMicros(usage(200_001), price), Math.ceil(200_001 * 2.5 + 1_000 * 15));
  });
});

describe('prices: a USD budget through the gateway', () => {
  let sim: Sim;
  let gw: TestGateway;
  before(async () => {
    sim = await startSim({ outputTokens: 1_000 });
    gw = await startGateway({ anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1` }, { prices: { 'my-finetune': { inputUsdPerMtok: 10, outputUsdPerMtok: 100, cacheWriteUsdPerMtok: 10, cacheReadUsdPerMtok: 1 } } });
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });
  const call = (task: string, model: string) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test', 'x-envelope-task': task, 'x-envelope-budget': '1', 'x-envelope-unit': 'usd', 'x-envelope-policy': 'hard' },
      body: JSON.stringify({ model, max_tokens: 2_000, messages: [{ role: 'user', content: 'hi' }] }),
    });

  it('charges a catalog model and a model of the prices file at their rates', async () => {
    for (const [task, model, input, output] of [['usd-mistral', 'mistral-medium-2508', 0.4, 2], ['usd-own', 'my-finetune-v2', 10, 100]] as const) {
      const res = await call(task, model);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
      const micros = Math.ceil(body.usage.prompt_tokens * input + body.usage.completion_tokens * output - 1e-9);
      assert.equal(res.headers.get('x-envelope-budget-used'), String(micros / 1e6));
      assert.equal((await gw.ledger.task(task)).costMicros, micros);
    }
  });

  it('refuses a USD budget on an unpriced model, naming the --prices flag', async () => {
    const res = await call('usd-unknown', 'no-such-model-1');
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { message: string } };
    assert.match(body.error.message, /model no-such-model-1 has no known price; configure one with --prices FILE or ENVELOPE_PRICES/);
  });
});

describe('prices: the prices file fails closed', () => {
  const serveWith = async (content: unknown): Promise<string> => {
    const path = file(content);
    const e = await run(process.execPath, [CLI, 'serve', '--port', '0', '--store', 'memory:', '--prices', path]).then(
      () => assert.fail('serve started'),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(e.code, 1);
    return e.stderr;
  };

  it('refuses at start-up a file that lacks a cache rate, uses another field name, or is not a number', async () => {
    assert.match(await serveWith({ 'm-1': { inputUsdPerMtok: 3, outputUsdPerMtok: 15 } }), /the price file .*prices\.json: "m-1"\."cacheWriteUsdPerMtok" is missing\. Every model needs all four rates/);
    assert.match(await serveWith({ 'm-1': { input: 3, output: 15, cacheWriteUsdPerMtok: 3, cacheReadUsdPerMtok: 1, inputUsdPerMtok: 3, outputUsdPerMtok: 15 } }), /"m-1": unknown field "input", "output"/);
    assert.match(await serveWith({ 'm-1': { inputUsdPerMtok: '3', outputUsdPerMtok: 15, cacheWriteUsdPerMtok: 3, cacheReadUsdPerMtok: 1 } }), /"m-1"\."inputUsdPerMtok" must be a number ≥ 0, got "3"/);
    assert.match(await serveWith([1, 2]), /it must be one JSON object of model names/);
  });

  it('refuses the same table handed to the library', () => {
    assert.throws(
      () => new Ledger(new MemoryStore(), { prices: { 'm-1': { inputUsdPerMtok: 3, outputUsdPerMtok: 15 } as never } }),
      (e: unknown) => isEnvelopeError(e) && e.code === 'invalid_request' && /prices: "m-1"\."cacheWriteUsdPerMtok" is missing/.test(e.message),
    );
  });
});

describe('prices: envelope prices', () => {
  it('shows where a name resolves to, the file over the catalog', async () => {
    const own = file({ 'claude-sonnet-4-6': { inputUsdPerMtok: 1, outputUsdPerMtok: 2, cacheWriteUsdPerMtok: 3, cacheReadUsdPerMtok: 0.5 } });
    const show = async (...args: string[]) => JSON.parse((await run(process.execPath, [CLI, 'prices', 'show', ...args, '--json'])).stdout) as Record<string, unknown>;
    assert.deepEqual(await show('claude-sonnet-4-5-20250929'), {
      model: 'claude-sonnet-4-5-20250929',
      source: 'anthropic',
      entry: 'claude-sonnet-4-5',
      price: {
        inputUsdPerMtok: 3, outputUsdPerMtok: 15, cacheWriteUsdPerMtok: 3.75, cacheReadUsdPerMtok: 0.3,
        tiers: [{ aboveInputTokens: 200_000, inputUsdPerMtok: 6, outputUsdPerMtok: 22.5, cacheWriteUsdPerMtok: 7.5, cacheReadUsdPerMtok: 0.6 }],
      },
    });
    assert.deepEqual(await show('claude-sonnet-4-6', '--prices', own), {
      model: 'claude-sonnet-4-6',
      source: 'prices file',
      entry: 'claude-sonnet-4-6',
      price: { inputUsdPerMtok: 1, outputUsdPerMtok: 2, cacheWriteUsdPerMtok: 3, cacheReadUsdPerMtok: 0.5 },
    });
    await assert.rejects(run(process.execPath, [CLI, 'prices', 'show', 'no-such-model-1']), (e: { stderr: string }) => /no known price for no-such-model-1; a USD budget on it is refused/.test(e.stderr));
  });

  it('lists the catalog by provider, with the file first', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'prices', 'ls', '--provider', 'google', '--json']);
    const rows = JSON.parse(stdout) as Array<{ model: string; source: string }>;
    assert.ok(rows.length >= 20 && rows.every((r) => r.source === 'google'));
    assert.ok(rows.some((r) => r.model === 'gemini-2.5-pro'));
    const all = JSON.parse((await run(process.execPath, [CLI, 'prices', 'ls', '--json', '--prices', file({ 'zz-mine': { inputUsdPerMtok: 1, outputUsdPerMtok: 1, cacheWriteUsdPerMtok: 1, cacheReadUsdPerMtok: 1 } })], { maxBuffer: 64 << 20 })).stdout) as Array<{ model: string; source: string }>;
    assert.deepEqual(all[0], { model: 'zz-mine', source: 'prices file', price: { inputUsdPerMtok: 1, outputUsdPerMtok: 1, cacheWriteUsdPerMtok: 1, cacheReadUsdPerMtok: 1 } });
    assert.ok(all.length > 1_000, `${all.length} priced models`);
  });
});
