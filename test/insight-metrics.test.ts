// Metrics after a scripted ledger run on the memory store: the Prometheus text parsed by a real parser with
// exact series and values, and the same measurements exported over OTLP/HTTP to a real loopback receiver.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format';
import { EnvelopeError } from '../src/budget/errors.js';
import { Ledger } from '../src/ledger/ledger.js';
import { MemoryStore } from '../src/store/memory.js';
import { EnvelopeMetrics } from '../src/insight/metrics.js';
import { startReceiver } from './helpers/http-receiver.js';

const NOW = 1_700_000_000_000;

/** The run: bug-fix crosses 70 % and 85 % and has a call refused; triage spends a little and closes. */
async function scriptedRun(metrics: EnvelopeMetrics): Promise<Ledger> {
  const ledger = new Ledger(new MemoryStore(), { clock: () => NOW });
  await ledger.createTask({ id: 'm1', label: 'bug-fix', total: 20_000, policy: 'hard' });
  const sonnet = 'claude-sonnet-4-6';
  let g = await ledger.reserve({ taskId: 'm1', model: sonnet, inputTokens: 1_000, outputTokensMax: 13_000 });
  metrics.observeReserve(g);
  let u = { inputTokens: 1_000, outputTokens: 13_000, cacheWriteTokens: 0, cacheReadTokens: 0 };
  metrics.observeSettle(await ledger.settle(g.reservation.id, u), u);
  g = await ledger.reserve({ taskId: 'm1', model: sonnet, inputTokens: 2_000, outputTokensMax: 8_000 });
  metrics.observeReserve(g);
  assert.equal(g.outputTokens, 4_000); // lowered to fit: 20,000 − 14,000 − 2,000
  const pending = (await metrics.render()).match(/^envelope_budget_reserved\{.*\} (\d+)$/m)?.[1];
  assert.equal(pending, '6000');
  u = { inputTokens: 1_000, outputTokens: 2_000, cacheWriteTokens: 500, cacheReadTokens: 500 };
  const settled = await ledger.settle(g.reservation.id, u);
  metrics.observeSettle(settled, u);
  metrics.observeSettle(await ledger.settle(g.reservation.id, u), u); // a repeated settle charges nothing
  await assert.rejects(
    ledger.reserve({ taskId: 'm1', model: sonnet, inputTokens: 3_000, outputTokensMax: 4_000 }),
    (e: unknown) => {
      assert.ok(e instanceof EnvelopeError && e.code === 'budget_exceeded');
      metrics.observeRefusal(e);
      return true;
    },
  );
  await ledger.createTask({ id: 'm2', label: 'triage', total: 30_000 });
  const g2 = await ledger.reserve({ taskId: 'm2', model: 'gpt-5-mini', inputTokens: 4_000, outputTokensMax: 2_000 });
  metrics.observeReserve(g2);
  const u2 = { inputTokens: 3_000, outputTokens: 1_000, cacheWriteTokens: 0, cacheReadTokens: 1_000 };
  metrics.observeSettle(await ledger.settle(g2.reservation.id, u2), u2);
  metrics.observeTasks([await ledger.close('m2')]);
  for (const [status, ms] of [
    [200, 0.4],
    [200, 3],
    [200, 200],
    [402, 1],
  ] as const) {
    metrics.observeRequest({ route: '/v1/messages', method: 'POST', status, durationMs: ms });
  }
  const events = await ledger.events({});
  metrics.onEvents(events);
  metrics.onEvents(events); // fed twice: counted once
  return ledger;
}

function values(families: MetricFamily[], name: string): [Record<string, string>, number][] {
  const f = families.find((x) => x.name === name);
  assert.ok(f, `series ${name} missing`);
  return f.metrics.map((m) => [m.labels ?? {}, Number(m.value)]);
}

describe('metrics', () => {
  it('renders the expected Prometheus series with exact values after a scripted run', async () => {
    const metrics = new EnvelopeMetrics({ clock: () => NOW });
    await scriptedRun(metrics);
    const text = await metrics.render();
    const families = parsePrometheusTextFormat(text);
    const types = Object.fromEntries(families.map((f) => [f.name, f.type]));
    assert.deepEqual(types, {
      envelope_tokens_used_total: 'COUNTER',
      envelope_cost_usd_total: 'COUNTER',
      envelope_calls_total: 'COUNTER',
      envelope_refusals_total: 'COUNTER',
      envelope_rate_limited_total: 'COUNTER',
      envelope_threshold_crossings_total: 'COUNTER',
      envelope_events_total: 'COUNTER',
      envelope_body_scan_fallbacks_total: 'COUNTER',
      envelope_gateway_request_duration_seconds: 'HISTOGRAM',
      envelope_budget_utilization_ratio: 'GAUGE',
      envelope_budget_used: 'GAUGE',
      envelope_budget_reserved: 'GAUGE',
      envelope_budget_total: 'GAUGE',
    });
    const bug = { label: 'bug-fix', model: 'claude-sonnet-4-6' };
    const tri = { label: 'triage', model: 'gpt-5-mini' };
    assert.deepEqual(values(families, 'envelope_tokens_used_total'), [
      [{ ...bug, type: 'input' }, 2_000],
      [{ ...bug, type: 'output' }, 15_000],
      [{ ...bug, type: 'cache_write' }, 500],
      [{ ...bug, type: 'cache_read' }, 500],
      [{ ...tri, type: 'input' }, 3_000],
      [{ ...tri, type: 'output' }, 1_000],
      [{ ...tri, type: 'cache_write' }, 0],
      [{ ...tri, type: 'cache_read' }, 1_000],
    ]);
    // Sonnet: 1,000 × $3 + 13,000 × $15 = $0.198; then 1,000 × $3 + 2,000 × $15 + 500 × $3.75 + 500 × $0.30 = $0.035025.
    // gpt-5-mini: 3,000 × $0.25 + 1,000 × $2 + 1,000 × $0.025 = $0.002775.
    assert.deepEqual(values(families, 'envelope_cost_usd_total'), [
      [bug, 0.198 + 0.035025],
      [tri, 0.002775],
    ]);
    assert.deepEqual(values(families, 'envelope_calls_total'), [
      [bug, 2],
      [tri, 1],
    ]);
    assert.deepEqual(values(families, 'envelope_refusals_total'), [[{ code: 'budget_exceeded', reason: 'spend' }, 1]]);
    assert.deepEqual(values(families, 'envelope_threshold_crossings_total'), [
      [{ threshold: '0.7', state: 'scoping' }, 1],
      [{ threshold: '0.85', state: 'wrapping_up' }, 1],
    ]);
    assert.deepEqual(values(families, 'envelope_events_total'), [
      [{ type: 'threshold_crossed' }, 2],
      [{ type: 'closed' }, 1],
    ]);
    // Only the open task has gauges: 18,000 of 20,000 used, nothing in flight.
    assert.deepEqual(values(families, 'envelope_budget_utilization_ratio'), [[{ task: 'm1', label: 'bug-fix' }, 0.9]]);
    assert.deepEqual(values(families, 'envelope_budget_used'), [[{ task: 'm1', label: 'bug-fix', unit: 'tokens' }, 18_000]]);
    assert.deepEqual(values(families, 'envelope_budget_reserved'), [[{ task: 'm1', label: 'bug-fix', unit: 'tokens' }, 0]]);
    assert.deepEqual(values(families, 'envelope_budget_total'), [[{ task: 'm1', label: 'bug-fix', unit: 'tokens' }, 20_000]]);

    // parse-prometheus-text-format flattens a histogram's series as if it had no labels other than `le`
    // (it keeps one merged bucket map and drops sum and count), so the labelled histogram lines are read directly.
    const lines = text.split('\n');
    const series = '{route="/v1/messages",method="POST",status="200"}';
    const bucket = (le: string): number => {
      const line = lines.find((l) => l.startsWith(`envelope_gateway_request_duration_seconds_bucket{le="${le}",route="/v1/messages",method="POST",status="200"} `));
      return Number(line?.split(' ')[1]);
    };
    assert.deepEqual(
      Object.fromEntries(['0.0005', '0.001', '0.005', '0.1', '0.25', '+Inf'].map((le) => [le, bucket(le)])),
      { '0.0005': 1, '0.001': 1, '0.005': 2, '0.1': 2, '0.25': 3, '+Inf': 3 },
    );
    assert.ok(lines.includes(`envelope_gateway_request_duration_seconds_count${series} 3`));
    assert.ok(lines.includes(`envelope_gateway_request_duration_seconds_sum${series} ${0.0004 + 0.003 + 0.2}`));
    assert.ok(lines.includes('envelope_gateway_request_duration_seconds_count{route="/v1/messages",method="POST",status="402"} 1'));
    assert.match(metrics.contentType, /^text\/plain/);
    await metrics.shutdown();
  });

  it('watch() counts events as the ledger writes them, from when it started', async () => {
    const metrics = new EnvelopeMetrics({ clock: () => NOW });
    const ledger = new Ledger(new MemoryStore(), { clock: () => NOW });
    await ledger.createTask({ id: 'old', total: 20_000 });
    await ledger.close('old'); // before watching: not counted
    const stop = metrics.watch(ledger, 1);
    await new Promise((r) => setTimeout(r, 20));
    await ledger.createTask({ id: 'new', total: 20_000 });
    await ledger.close('new');
    for (let i = 0; i < 200 && !(await metrics.render()).includes('envelope_events_total{type="closed"}'); i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    stop();
    assert.deepEqual(values(parsePrometheusTextFormat(await metrics.render()), 'envelope_events_total'), [[{ type: 'closed' }, 1]]);
  });

  it('exports the same measurements over OTLP/HTTP to a real receiver', async () => {
    const receiver = await startReceiver();
    const metrics = new EnvelopeMetrics({ clock: () => NOW, otlpEndpoint: receiver.url, otlpIntervalMs: 3_600_000 });
    try {
      await scriptedRun(metrics);
      await metrics.flush();
      assert.ok(receiver.received.length >= 1);
      const post = receiver.received.at(-1)!;
      assert.equal(post.url, '/v1/metrics');
      assert.equal(post.headers['content-type'], 'application/json');
      type Point = { attributes: { key: string; value: Record<string, unknown> }[]; asInt?: string | number; asDouble?: number; count?: string | number; sum?: number };
      type Metric = { name: string; sum?: { dataPoints: Point[] }; gauge?: { dataPoints: Point[] }; histogram?: { dataPoints: Point[] } };
      const body = JSON.parse(post.body) as { resourceMetrics: { scopeMetrics: { scope: { name: string }; metrics: Metric[] }[] }[] };
      const scope = body.resourceMetrics[0]!.scopeMetrics.find((s) => s.scope.name === 'envelope')!;
      const byName = new Map(scope.metrics.map((m) => [m.name, m]));
      assert.deepEqual([...byName.keys()].sort(), [
        'envelope.budget.reserved',
        'envelope.budget.used',
        'envelope.budget.utilization',
        'envelope.calls',
        'envelope.cost',
        'envelope.events',
        'envelope.gateway.request.duration',
        'envelope.refusals',
        'envelope.threshold_crossings',
        'envelope.tokens.used',
      ]);
      const attrs = (p: Point): Record<string, unknown> =>
        Object.fromEntries(p.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
      const num = (p: Point): number => Number(p.asInt ?? p.asDouble);
      const output = byName.get('envelope.tokens.used')!.sum!.dataPoints.find((p) => {
        const a = attrs(p);
        return a.label === 'bug-fix' && a.type === 'output';
      })!;
      assert.equal(num(output), 15_000);
      assert.deepEqual(byName.get('envelope.calls')!.sum!.dataPoints.map((p) => [attrs(p).label, num(p)]), [
        ['bug-fix', 2],
        ['triage', 1],
      ]);
      assert.deepEqual(byName.get('envelope.budget.utilization')!.gauge!.dataPoints.map((p) => [attrs(p).task, num(p)]), [['m1', 0.9]]);
      const latency = byName.get('envelope.gateway.request.duration')!.histogram!.dataPoints;
      assert.equal(latency.reduce((s, p) => s + Number(p.count), 0), 4);
    } finally {
      await metrics.shutdown();
      await receiver.close();
    }
  });
});
