// The fuzz suite (issue 14): generated bodies for every dialect the gateway reads (Anthropic, OpenAI chat, Responses,
// Gemini), the AI SDK's prompt and the admin API's inputs, sent through the real gateway on loopback (the AI SDK's
// through the middleware in process). For any of them the answer is 2xx or 4xx in the provider's own error shape,
// never a 5xx, and afterwards the ledger's invariants hold: nothing held, no reservation pending, no hard or
// approval task past its total. `npm test` runs a fixed seed, a few hundred cases; `npm run fuzz` many more, with a
// new seed each time (FUZZ_RUNS cases a property, FUZZ_SEED=<n> to replay one; a failure prints its seed and path).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { wrapLanguageModel } from 'ai';
import { openEnvelope, type Envelope } from '../src/sdk/envelope.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { adminRequest, aiParams, anthropicBody, chatBody, envelopeHeaders, geminiBody, geminiPath, responsesBody, wire } from './helpers/fuzz-arbitraries.js';
import { assertLedgerInvariants } from './helpers/ledger-invariants.js';

/** Cases a property; the suite has six. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 70);
const SEED = process.env.FUZZ_SEED === undefined ? 1414 : process.env.FUZZ_SEED === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED);
const params = { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true };

type Shape = 'anthropic' | 'openai' | 'gemini' | 'admin';

/** The error body as each provider's SDK expects it (and the admin API's own). */
function errorShaped(shape: Shape, body: any): boolean {
  switch (shape) {
    case 'anthropic':
      return body?.type === 'error' && typeof body.error?.type === 'string' && typeof body.error?.message === 'string';
    case 'openai':
      return typeof body?.error?.message === 'string' && typeof body.error?.type === 'string';
    case 'gemini':
      return typeof body?.error?.code === 'number' && typeof body.error?.status === 'string' && typeof body.error?.message === 'string';
    case 'admin':
      return typeof body?.error?.code === 'string' && typeof body.error?.message === 'string';
  }
}

function assertAnswer(shape: Shape, status: number, text: string, what: string): void {
  assert.ok(status < 500, `${what}: ${status} ${text.slice(0, 400)}`);
  if (status < 400) return;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${what}: ${status} is not JSON: ${text.slice(0, 200)}`);
  }
  assert.ok(errorShaped(shape, body), `${what}: ${status} not in the ${shape} error shape: ${text.slice(0, 300)}`);
}

describe(`fuzz: the gateway answers any body in the provider's shape, never 5xx, and the ledger holds (seed ${SEED}, ${RUNS} cases a property)`, () => {
  let sim: Sim;
  let gw: TestGateway;
  let env: Envelope;
  before(async () => {
    sim = await startSim({ outputTokens: 40 });
    gw = await startGateway({
      adminToken: 'fuzz-admin',
      tenantKeys: new Map([
        ['key-acme', 'acme'],
        ['key-globex', 'globex'],
      ]),
      anthropicUrl: sim.url,
      openaiUrl: `${sim.url}/v1`,
      geminiUrl: sim.url,
    });
    env = await openEnvelope({ store: 'memory:', sweepIntervalMs: 0 });
    await gw.ledger.createTask({ id: 'fz-parent', total: 200_000, policy: 'hard' });
    // Tasks at the edge, so that refusals (402), the last call's lowered cap and pauses are fuzzed too.
    for (const [id, policy] of [['fz-spent', 'hard'], ['fz-paused', 'approval']] as const) {
      await gw.ledger.createTask({ id, total: 20_000, policy, meter: 'billed' });
      const g = await gw.ledger.reserve({ taskId: id, model: null, inputTokens: 18_000, outputTokensMax: 900 });
      await gw.ledger.settle(g.reservation.id, { inputTokens: 18_000, outputTokens: 900, cacheReadTokens: 0, cacheWriteTokens: 0 });
    }
  });
  after(async () => {
    await env.close();
    await gw.close();
    await sim.close();
  });

  /** Answers by status class, per property: the suite must reach the provider as well as refuse. */
  const seen = new Map<string, Record<string, number>>();
  const tally = (property: string, status: number): void => {
    const counts = seen.get(property) ?? {};
    const key = status === 402 ? '402' : `${Math.floor(status / 100)}xx`;
    counts[key] = (counts[key] ?? 0) + 1;
    seen.set(property, counts);
  };

  const post = async (property: string, shape: Shape, path: string, headers: Record<string, string>, body: string): Promise<void> => {
    const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    tally(property, res.status);
    const text = await res.text();
    if (process.env.FUZZ_DEBUG && res.status >= 400) process.stderr.write(`${property} ${res.status} ${text.slice(0, 160)}\n`);
    assertAnswer(shape, res.status, text, `POST ${path} ${body.slice(0, 200)}`);
    await assertLedgerInvariants(gw.ledger, `after POST ${path} ${body.slice(0, 200)}`);
  };

  const dialects: Array<[string, Shape, fc.Arbitrary<{ path: string; body: string; headers: Record<string, string> }>]> = [
    ['Anthropic Messages', 'anthropic', fc.record({ path: fc.constantFrom('/v1/messages', '/v1/messages/count_tokens'), body: wire(anthropicBody), headers: envelopeHeaders.map((h) => ({ ...h, 'anthropic-version': '2023-06-01', 'x-api-key': 'k' })) })],
    ['OpenAI chat', 'openai', fc.record({ path: fc.constant('/v1/chat/completions'), body: wire(chatBody), headers: envelopeHeaders.map((h) => ({ ...h, authorization: 'Bearer k' })) })],
    ['OpenAI Responses', 'openai', fc.record({ path: fc.constant('/v1/responses'), body: wire(responsesBody), headers: envelopeHeaders.map((h) => ({ ...h, authorization: 'Bearer k' })) })],
    ['Gemini', 'gemini', fc.record({ path: geminiPath, body: wire(geminiBody), headers: envelopeHeaders.map((h) => ({ ...h, 'x-goog-api-key': 'k' })) })],
  ];
  for (const [name, shape, arbitrary] of dialects) {
    it(`${name}: any body`, async (t) => {
      await fc.assert(fc.asyncProperty(arbitrary, (c) => post(name, shape, c.path, c.headers, c.body)), params);
      const counts = seen.get(name) ?? {};
      t.diagnostic(`answers: ${JSON.stringify(counts)}`);
      assert.ok((counts['2xx'] ?? 0) >= RUNS / 20 && (counts['4xx'] ?? 0) >= RUNS / 10, `the cases reach the provider and are refused alike: ${JSON.stringify(counts)}`);
    });
  }

  it('the AI SDK prompt: the middleware answers or refuses with a 4xx, never fails itself', async () => {
    const hard = await env.task({ id: 'fz-ai-hard', total: 50_000, policy: 'hard' });
    const advisory = await env.task({ id: 'fz-ai-adv', total: 20_000, policy: 'advisory' });
    const usage = { inputTokens: { total: 12, noCache: 12 }, outputTokens: { total: 5 } };
    const model = {
      specificationVersion: 'v3' as const,
      provider: 'openai.chat',
      modelId: 'gpt-4.1',
      supportedUrls: {},
      doGenerate: async () => ({ content: [{ type: 'text', text: 'ok' }], finishReason: 'stop', usage, warnings: [] }),
      doStream: async () => ({
        stream: new ReadableStream({
          start(c) {
            for (const part of [{ type: 'text-delta', id: 't', delta: 'ok' }, { type: 'finish', finishReason: 'stop', usage }]) c.enqueue(part);
            c.close();
          },
        }),
      }),
    };
    await fc.assert(
      fc.asyncProperty(aiParams, fc.boolean(), fc.boolean(), async (p, stream, onHard) => {
        const wrapped = wrapLanguageModel({ model: model as never, middleware: (onHard ? hard : advisory).middleware() });
        try {
          if (stream) {
            const { stream: parts } = await wrapped.doStream(p as never);
            for await (const _ of parts as unknown as AsyncIterable<unknown>);
          } else await wrapped.doGenerate(p as never);
        } catch (e) {
          const status = (e as { httpStatus?: number; statusCode?: number }).httpStatus ?? (e as { statusCode?: number }).statusCode;
          assert.ok(status !== undefined && status >= 400 && status < 500, `the middleware failed itself: ${String(e)}`);
        }
        await assertLedgerInvariants(env.ledger, `after the prompt ${JSON.stringify(p).slice(0, 200)}`);
      }),
      params,
    );
  });

  it('the admin API: any route, body, content type, key and origin', async () => {
    await fc.assert(
      fc.asyncProperty(adminRequest, async (r) => {
        const headers: Record<string, string> = {};
        if (r.auth) headers.authorization = r.auth;
        if (r.contentType) headers['content-type'] = r.contentType;
        if (r.origin) headers.origin = r.origin;
        const res = await fetch(`${gw.url}/envelope/v1${r.path}`, { method: r.method, headers, body: r.body });
        const text = await res.text();
        assertAnswer('admin', res.status, text, `${r.method} ${r.path} ${r.body?.slice(0, 200) ?? ''}`);
        await assertLedgerInvariants(gw.ledger, `after ${r.method} ${r.path}`);
      }),
      params,
    );
  });

  it('leaves the ledger whole after every case', async () => {
    const figures = await assertLedgerInvariants(gw.ledger, 'at the end');
    // The fixed ids the headers name (and the admin API's), created by whichever case came first.
    assert.ok(figures.tasks >= 3, `the cases made tasks (${figures.tasks})`);
    await assertLedgerInvariants(env.ledger, 'at the end, in process');
  });
});
