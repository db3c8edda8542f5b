// The insight layer mounted on the real gateway (GatewayParts: routes + observe), with the official Anthropic SDK
// over loopback to envelope sim: /metrics, /calibration and /report agree exactly with the ledger, and every
// stored event reaches a real webhook receiver, signed and in order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { costMicros, priceFor } from '../src/metering/prices.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { createInsight, type Insight } from '../src/insight/gateway-insight.js';
import type { Calibration } from '../src/insight/calibrate.js';
import type { PricingReport } from '../src/insight/report.js';
import { verifySignature } from '../src/insight/webhooks.js';
import { buildGateway, type Gateway } from '../src/gateway/server.js';
import { tempDbPath } from './helpers/gateway.js';
import { startReceiver, type Receiver } from './helpers/http-receiver.js';
import { Ledger } from '../src/ledger/ledger.js';
import { SqliteStore } from '../src/store/sqlite.js';

const ADMIN = 'admin-token-insight';
const SECRET = 'whsec-gateway-0123456789';
const MODEL = 'claude-sonnet-4-6';

describe('insight on the gateway', () => {
  let sim: Sim;
  let gw: { url: string; ledger: Ledger; gateway: Gateway; close(): Promise<void> };
  let insight: Insight;
  let receiver: Receiver;
  const costs: number[] = [];

  const admin = async (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${gw.url}/envelope/v1${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', ...init.headers } });
  const claude = (headers: Record<string, string>): Anthropic =>
    new Anthropic({ apiKey: 'sk-ant-test', baseURL: gw.url, maxRetries: 0, defaultHeaders: headers });

  before(async () => {
    sim = await startSim({ outputTokens: 300 });
    receiver = await startReceiver();
    // The insight needs the ledger before the gateway exists, so the gateway is built here on it.
    const ledger = new Ledger(new SqliteStore(tempDbPath()));
    insight = createInsight(ledger, { webhooks: [{ url: `${receiver.url}/hooks`, secret: SECRET }], webhookOptions: { startAfter: 0, backoffMs: 5 } });
    const gateway = buildGateway(
      ledger,
      { anthropicUrl: sim.url, adminToken: ADMIN, tenantKeys: new Map([['key-acme', 'acme']]), logLevel: 'silent' },
      { routes: insight.routes, observe: insight.observe },
    );
    gw = { url: await gateway.listen(0, '127.0.0.1'), ledger, gateway, close: async () => {
      await gateway.close();
      await ledger.shutdown();
    } };
    insight.start();
  });
  after(async () => {
    await insight.close();
    await gw.close();
    await sim.close();
    await receiver.close();
  });

  it('counts every proxied call under its label, and the refusal, exactly as the ledger has them', async () => {
    const fix = claude({ 'x-envelope-task': 'g-fix', 'x-envelope-budget': '20000', 'x-envelope-policy': 'hard', 'x-envelope-label': 'bug-fix' });
    // 300 then 19,000 output tokens leave less than the 1,024-token floor for a third call: it is refused.
    for (const output of ['300', '19000']) {
      const msg = await fix.messages.create(
        { model: MODEL, max_tokens: 19_400, messages: [{ role: 'user', content: 'fix the flaky test' }] },
        { headers: { 'x-sim-output-tokens': output } },
      );
      const u = msg.usage;
      costs.push(costMicros({ inputTokens: u.input_tokens, outputTokens: u.output_tokens, cacheWriteTokens: u.cache_creation_input_tokens ?? 0, cacheReadTokens: u.cache_read_input_tokens ?? 0 }, priceFor(MODEL, {})!) / 1e6);
    }
    await assert.rejects(fix.messages.create({ model: MODEL, max_tokens: 4_000, messages: [{ role: 'user', content: 'one more' }] }), (e: unknown) => e instanceof Anthropic.APIError && e.status === 402);
    const triage = claude({ 'x-envelope-task': 'g-triage', 'x-envelope-budget': '40000', 'x-envelope-label': 'triage' });
    await triage.messages.create({ model: MODEL, max_tokens: 1_000, messages: [{ role: 'user', content: 'triage this' }] });

    const task = await gw.ledger.task('g-fix');
    const res = await admin('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const families = parsePrometheusTextFormat(await res.text());
    const series = (name: string) => families.find((f) => f.name === name)!.metrics.map((m) => [m.labels, Number(m.value)] as const);
    const fixTokens = series('envelope_tokens_used_total').filter(([l]) => l?.label === 'bug-fix').reduce((s, [, v]) => s + v, 0);
    assert.equal(fixTokens, task.tokensUsed);
    assert.deepEqual(series('envelope_calls_total'), [
      [{ label: 'bug-fix', model: MODEL }, 2],
      [{ label: 'triage', model: MODEL }, 1],
    ]);
    assert.deepEqual(series('envelope_cost_usd_total')[0], [{ label: 'bug-fix', model: MODEL }, costs[0]! + costs[1]!]);
    assert.equal(Math.round((costs[0]! + costs[1]!) * 1e6), task.costMicros);
    assert.deepEqual(series('envelope_refusals_total'), [[{ code: 'budget_exceeded', reason: 'spend' }, 1]]);
    // The scrape re-reads open tasks: g-fix stands where the ledger has it.
    const util = series('envelope_budget_utilization_ratio').find(([l]) => l?.task === 'g-fix')!;
    assert.equal(util[1], Math.round((task.used / task.total) * 1e6) / 1e6);
    const latency = (await (await admin('/metrics')).text()).split('\n');
    assert.ok(latency.includes('envelope_gateway_request_duration_seconds_count{route="/v1/messages",method="POST",status="200"} 3'));
    assert.ok(latency.includes('envelope_gateway_request_duration_seconds_count{route="/v1/messages",method="POST",status="402"} 1'));
    // Threshold crossings arrive through the event watcher.
    for (let i = 0; i < 100 && !latency.some((l) => l.startsWith('envelope_threshold_crossings_total')); i++) {
      await new Promise((r) => setTimeout(r, 10));
      latency.splice(0, latency.length, ...(await (await admin('/metrics')).text()).split('\n'));
    }
    assert.ok(latency.includes('envelope_threshold_crossings_total{threshold="0.7",state="scoping"} 1'));
    assert.ok(latency.includes('envelope_threshold_crossings_total{threshold="0.85",state="wrapping_up"} 1'));
    // Metrics name every tenant's tasks: a tenant key may not read them.
    assert.equal((await fetch(`${gw.url}/envelope/v1/metrics`, { headers: { authorization: 'Bearer key-acme' } })).status, 401);
  });

  it('serves calibration and the pricing report from the closed tasks', async () => {
    for (const id of ['g-fix', 'g-triage']) assert.equal((await admin(`/tasks/${id}/close`, { method: 'POST', body: '{}' })).status, 200);
    const fix = await gw.ledger.task('g-fix');
    const triage = await gw.ledger.task('g-triage');

    const cal = (await (await admin('/calibration?percentile=90&headroom=0.5')).json()) as Calibration;
    assert.equal(cal.method, 'nearest-rank (Hyndman & Fan type 1: the value at rank ceil(p/100 × n))');
    assert.deepEqual(
      cal.labels.map((l) => [l.label, l.source, l.n, l.p50, l.recommendedTotal]),
      [
        // g-fix was refused at the end but never reached its total: a budgeted run that finished inside it.
        ['bug-fix', 'budgeted', 1, fix.used, Math.max(20_000, Math.ceil((fix.used * 1.5) / 1_000) * 1_000)],
        ['triage', 'budgeted', 1, triage.used, 20_000],
      ],
    );
    const bad = await admin('/calibration?percentile=0');
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /percentile must be in \(0, 100\]/);

    const report = (await (await admin('/report?price=bug-fix=0.50&price=triage=0.01')).json()) as PricingReport;
    assert.deepEqual(
      report.labels.map((l) => [l.label, l.runs, l.tokens, l.costUsd, l.priceUsd]),
      [
        ['bug-fix', 1, fix.tokensUsed, fix.costMicros / 1e6, 0.5],
        ['triage', 1, triage.tokensUsed, triage.costMicros / 1e6, 0.01],
      ],
    );
    assert.equal(report.labels[0]!.coverage, (500_000 * 1) / fix.costMicros);
    const csv = await admin('/report?format=csv');
    assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
    assert.equal((await csv.text()).split('\n')[1], `bug-fix,${MODEL},1,${fix.tokensUsed},${fix.costMicros / 1e6},${fix.costMicros / 1e6},0,,,3`);
    // A tenant sees the runs of its own tasks only: none here.
    const tenant = (await (await fetch(`${gw.url}/envelope/v1/calibration`, { headers: { authorization: 'Bearer key-acme' } })).json()) as Calibration;
    assert.deepEqual(tenant.labels, []);
  });

  it('delivers every stored event to the webhook, signed and in seq order', async () => {
    await insight.webhooks!.drain();
    const events = await gw.ledger.events({});
    assert.ok(events.length >= 4);
    assert.deepEqual(
      receiver.received.map((r) => Number(r.headers['x-envelope-event-id'])),
      events.map((e) => e.seq),
    );
    for (const r of receiver.received) {
      assert.equal(r.url, '/hooks');
      assert.ok(verifySignature({ secret: SECRET, body: r.body, signature: r.headers['x-envelope-signature'], timestamp: r.headers['x-envelope-timestamp'] }));
    }
    assert.deepEqual(JSON.parse(receiver.received.at(-1)!.body), events.at(-1));
  });
});
