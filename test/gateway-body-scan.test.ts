// The gateway forwards the client's own bytes with the countdown spliced in (issue 16): what reaches the provider is
// the request as sent, byte for byte up to the last user turn (spacing, escapes and all), with the lowered output cap
// and the countdown block in place; a body the scan does not read is parsed whole as before and counted under
// envelope_body_scan_fallbacks_total{dialect,reason}.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { sendJson, startFakeProvider, type FakeProvider } from './helpers/fake-provider.js';
import { startInsightGateway, type TestGateway } from './helpers/gateway.js';

const ADMIN = 'admin-scan';

describe('gateway: request bodies spliced, not re-encoded', () => {
  let provider: FakeProvider;
  let gw: TestGateway;
  before(async () => {
    provider = await startFakeProvider((_req, res) =>
      sendJson(res, 200, { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-6', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', usage: { input_tokens: 100, output_tokens: 10 } }),
    );
    gw = await startInsightGateway({ adminToken: ADMIN, anthropicUrl: provider.url });
  });
  after(async () => {
    await gw.close();
    await provider.close();
  });

  const send = (body: string, task: string, budget = 30_000): Promise<Response> =>
    fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'x-api-key': 'sk-ant-x', 'x-envelope-task': task, 'x-envelope-budget': String(budget), 'x-envelope-policy': 'hard' },
      body,
    });

  it('sends the client’s bytes with the countdown appended to the last user turn and max_tokens lowered in place', async () => {
    const prefix = '{ "model" : "claude-sonnet-4-6", "max_tokens": ';
    const turns = '"messages": [ {"role":"user","content":"caf\\u00e9 \\/ \\"quoted\\""}, {"role":"assistant","content":"ok"}, {"role":"user","content":[{"type":"text","text":"next","cache_control":{"type":"ephemeral"}}';
    const body = `${prefix}64000,\n  "system": "Be brief.",\n  ${turns}]} ] }`;
    const res = await send(body, 'scan-1');
    assert.equal(res.status, 200);
    await res.text();
    const raw = provider.received.at(-1)!.raw;
    // The 30,000-token hard budget cannot hold 64,000 output tokens: the cap is lowered where it stands.
    const lowered = /^\{ "model" : "claude-sonnet-4-6", "max_tokens": (\d+),/.exec(raw);
    assert.ok(lowered && Number(lowered[1]) <= 30_000, raw.slice(0, 120));
    const rest = raw.slice(lowered[0].length - 1);
    assert.ok(rest.startsWith(`,\n  "system": "Be brief.",\n  ${turns},{"type":"text","text":"`), rest);
    assert.ok(rest.endsWith('"}]} ] }'), rest);
    const sent = provider.received.at(-1)!.body;
    assert.match(sent.messages[2].content.at(-1).text, /tokens/);
    assert.equal(sent.messages[2].content.length, 2);
  });

  it('sends a large body as the client’s bytes around the splice, with its length declared', async () => {
    // Over the size at which the pieces go to the socket one by one rather than joined (upstream.ts).
    const turn = (i: number): string => `{"role":"user","content":[{"type":"tool_result","tool_use_id":"t${i}","content":"${'x'.repeat(2_000)}"}]},{"role":"assistant","content":"ok ${i}"}`;
    const turns = Array.from({ length: 200 }, (_, i) => turn(i)).join(',');
    const body = `{"model":"claude-sonnet-4-6","max_tokens":64000,"messages":[${turns},{"role":"user","content":"last"}]}`;
    assert.ok(body.length > 400_000);
    const res = await send(body, 'scan-large', 1_000_000);
    assert.equal(res.status, 200);
    await res.text();
    const got = provider.received.at(-1)!;
    assert.equal(Number(got.headers['content-length']), Buffer.byteLength(got.raw));
    assert.equal(got.headers['transfer-encoding'], undefined);
    const head = `{"model":"claude-sonnet-4-6","max_tokens":64000,"messages":[${turns},{"role":"user","content":[{"type":"text","text":"last"},{"type":"text","text":"`;
    assert.equal(got.raw.slice(0, head.length), head);
    assert.ok(got.raw.endsWith('"}]}]}'), got.raw.slice(-80));
    assert.equal(got.body.messages.length, 401);
    assert.match(got.body.messages[400].content[1].text, /tokens/);
  });

  it('parses a body the scan does not read, forwards it as before and counts it', async () => {
    // A key given twice: JSON.parse keeps the last one, so the body is parsed whole.
    const res = await send('{"model":"claude-sonnet-4-6","max_tokens":100,"max_tokens":200,"messages":[{"role":"user","content":"hi"}]}', 'scan-2');
    assert.equal(res.status, 200);
    await res.text();
    const sent = provider.received.at(-1)!;
    assert.equal(sent.body.max_tokens, 200);
    assert.equal(sent.raw.startsWith('{"model":"claude-sonnet-4-6","max_tokens":200,"messages":[{"role":"user","content":[{"type":"text","text":"hi"},'), true, sent.raw);
    const text = await (await fetch(`${gw.url}/envelope/v1/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    const family = parsePrometheusTextFormat(text).find((f: { name: string }) => f.name === 'envelope_body_scan_fallbacks_total');
    assert.deepEqual(family?.metrics, [{ labels: { dialect: 'anthropic', reason: 'duplicate_key' }, value: '1' }]);
  });
});
