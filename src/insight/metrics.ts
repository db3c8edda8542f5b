// Budget telemetry, twice from the same observations: a prom-client registry rendered as Prometheus text (for
// GET /envelope/v1/metrics) and OpenTelemetry instruments (exported over OTLP/HTTP when an endpoint is set, else
// reported to whatever MeterProvider the host application registered globally).
//
// Whoever makes model calls feeds it: observeRequest after each gateway request, observeReserve / observeSettle /
// observeRefusal around each ledger call (or observeUsage / observeRefusalCode when only the figures are at hand),
// observeTasks with rows it already holds, and onEvents with stored events (or watch(ledger) to have them read as
// the ledger changes). Events are counted once each, by seq. src/insight/gateway-insight.ts wires it to the gateway.
//
// Prometheus series:
//   envelope_tokens_used_total{label,model,type}            counter, type = input|output|cache_write|cache_read
//   envelope_cost_usd_total{label,model}                     counter, priced from the price table (cache-aware)
//   envelope_calls_total{label,model}                        counter, settled model calls
//   envelope_refusals_total{code,reason}                     counter, calls refused by a budget
//   envelope_rate_limited_total{tenant,scope,limit}          counter, calls refused by a rate limit (429): scope
//                                                            tenant|task, limit tpm|rpm
//   envelope_threshold_crossings_total{threshold,state}      counter, from threshold_crossed events
//   envelope_events_total{type}                              counter, every stored event
//   envelope_budget_utilization_ratio{task,label}            gauge, open tasks: the largest fraction of any limit
//   envelope_budget_used{task,label,unit}                    gauge, open tasks, display units (tokens or USD)
//   envelope_budget_reserved{task,label,unit}                gauge, open tasks: held by calls in flight
//   envelope_budget_total{task,label,unit}                   gauge, open tasks
//   envelope_gateway_request_duration_seconds{route,method,status}  histogram
//   envelope_body_scan_fallbacks_total{dialect,reason}       counter, request bodies parsed whole because the
//                                                            dialect's scan could not read them (not_json, shape,
//                                                            duplicate_key, check, no_scan): issue 16
// A closed task's gauges are removed, so the per-task series stay as many as the open tasks.
import { metrics as otelMetrics, type Attributes, type Meter, type ObservableResult } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EnvelopeError } from '../budget/errors.js';
import { fromLedger, utilization, type ReserveGrant, type SettleResult } from '../budget/rules.js';
import type { StoredEvent, TaskRow, Unit, Usage } from '../budget/types.js';
import { costMicros, priceFor, type PriceTable } from '../metering/prices.js';
import { otlpTarget } from './otlp.js';

export const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface MetricsOptions {
  /** OTLP/HTTP base URL (e.g. http://collector:4318); defaults to OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT. */
  otlpEndpoint?: string;
  otlpIntervalMs?: number;
  /** More OpenTelemetry readers (e.g. an in-memory one); with any reader, Envelope runs its own MeterProvider. */
  metricReaders?: IMetricReader[];
  prices?: PriceTable;
  clock?: () => number;
}

export interface RequestObservation {
  /** The route pattern, not the raw path (e.g. /v1/messages), to keep the series few. */
  route: string;
  method: string;
  status: number;
  durationMs: number;
}

interface OpenTask {
  label: string;
  unit: Unit;
  used: number;
  reserved: number;
  total: number;
  utilization: number;
}

/** What a ledger offers for watching: `events` and `onChange` (a Ledger fits). */
export interface EventFeed {
  events(q: { afterSeq: number; limit: number }): Promise<StoredEvent[]>;
  onChange(listener: () => void): () => void;
}

export class EnvelopeMetrics {
  readonly registry = new Registry();
  private readonly prices: PriceTable;
  private readonly clock: () => number;
  private readonly tasks = new Map<string, OpenTask>();
  private lastSeq = 0;
  private readonly provider: MeterProvider | undefined;

  private readonly tokens: Counter<'label' | 'model' | 'type'>;
  private readonly cost: Counter<'label' | 'model'>;
  private readonly calls: Counter<'label' | 'model'>;
  private readonly refusals: Counter<'code' | 'reason'>;
  private readonly rateLimited: Counter<'tenant' | 'scope' | 'limit'>;
  private readonly crossings: Counter<'threshold' | 'state'>;
  private readonly events: Counter<'type'>;
  private readonly bodyFallbacks: Counter<'dialect' | 'reason'>;
  private readonly latency: Histogram<'route' | 'method' | 'status'>;
  private readonly otel: ReturnType<typeof otelInstruments>;

  constructor(options: MetricsOptions = {}) {
    this.prices = options.prices ?? {};
    this.clock = options.clock ?? Date.now;
    const registers = [this.registry];
    this.tokens = new Counter({ name: 'envelope_tokens_used_total', help: 'Tokens used by settled model calls', labelNames: ['label', 'model', 'type'], registers });
    this.cost = new Counter({ name: 'envelope_cost_usd_total', help: 'USD cost of settled model calls (cache-aware list prices)', labelNames: ['label', 'model'], registers });
    this.calls = new Counter({ name: 'envelope_calls_total', help: 'Settled model calls', labelNames: ['label', 'model'], registers });
    this.refusals = new Counter({ name: 'envelope_refusals_total', help: 'Model calls refused by a budget', labelNames: ['code', 'reason'], registers });
    this.rateLimited = new Counter({ name: 'envelope_rate_limited_total', help: 'Model calls refused by a rate limit (HTTP 429)', labelNames: ['tenant', 'scope', 'limit'], registers });
    this.crossings = new Counter({ name: 'envelope_threshold_crossings_total', help: 'Tasks crossing a countdown threshold', labelNames: ['threshold', 'state'], registers });
    this.events = new Counter({ name: 'envelope_events_total', help: 'Budget events stored', labelNames: ['type'], registers });
    this.bodyFallbacks = new Counter({ name: 'envelope_body_scan_fallbacks_total', help: 'Request bodies parsed whole because the scan could not read them', labelNames: ['dialect', 'reason'], registers });
    this.latency = new Histogram({
      name: 'envelope_gateway_request_duration_seconds',
      help: 'Gateway request latency, first byte in to last byte out',
      labelNames: ['route', 'method', 'status'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    const tasks = this.tasks;
    const perTask = (name: string, help: string, pick: (t: OpenTask) => number, withUnit: boolean): void => {
      new Gauge({
        name,
        help,
        labelNames: withUnit ? ['task', 'label', 'unit'] : ['task', 'label'],
        registers,
        collect(this: Gauge) {
          this.reset();
          for (const [task, t] of tasks) this.set(withUnit ? { task, label: t.label, unit: t.unit } : { task, label: t.label }, pick(t));
        },
      });
    };
    perTask('envelope_budget_utilization_ratio', 'Open tasks: the largest fraction of any limit used', (t) => t.utilization, false);
    perTask('envelope_budget_used', 'Open tasks: used, in tokens or USD', (t) => t.used, true);
    perTask('envelope_budget_reserved', 'Open tasks: held by calls in flight, in tokens or USD', (t) => t.reserved, true);
    perTask('envelope_budget_total', 'Open tasks: the budget, in tokens or USD', (t) => t.total, true);

    const readers = [...(options.metricReaders ?? [])];
    const exporter = otlpExporter(options.otlpEndpoint);
    if (exporter) {
      readers.push(new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: options.otlpIntervalMs ?? 10_000 }));
    }
    this.provider = readers.length ? new MeterProvider({ readers }) : undefined;
    this.otel = otelInstruments(this.provider?.getMeter('envelope') ?? otelMetrics.getMeter('envelope'), tasks);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  observeRequest(r: RequestObservation): void {
    const seconds = r.durationMs / 1000;
    this.latency.observe({ route: r.route, method: r.method, status: String(r.status) }, seconds);
    this.otel.latency.record(seconds, {
      'http.route': r.route,
      'http.request.method': r.method,
      'http.response.status_code': r.status,
    });
  }

  observeReserve(grant: ReserveGrant): void {
    this.observeTasks(grant.path);
  }

  /** Counts a settled call once, under the task it was made for (not again for each ancestor). */
  observeSettle(result: SettleResult, usage: Usage): void {
    this.observeTasks(result.path);
    if (!result.charged) return;
    const leaf = result.path.find((t) => t.id === result.reservation.taskId) ?? result.path.at(-1);
    this.observeUsage(leaf?.label ?? 'default', result.reservation.model, usage);
  }

  /** One model call's usage: tokens by type, one call, and its cost when the model has a price. */
  observeUsage(label: string, model: string | null, usage: Usage): void {
    const modelName = model ?? '(none)';
    const byType: [string, number][] = [
      ['input', usage.inputTokens],
      ['output', usage.outputTokens],
      ['cache_write', usage.cacheWriteTokens],
      ['cache_read', usage.cacheReadTokens],
    ];
    for (const [type, n] of byType) {
      this.tokens.inc({ label, model: modelName, type }, n);
      this.otel.tokens.add(n, { label, model: modelName, type });
    }
    this.calls.inc({ label, model: modelName });
    this.otel.calls.add(1, { label, model: modelName });
    const price = priceFor(model, this.prices);
    if (price) {
      const usd = costMicros(usage, price) / 1_000_000;
      this.cost.inc({ label, model: modelName }, usd);
      this.otel.cost.add(usd, { label, model: modelName });
    }
  }

  observeRefusal(error: EnvelopeError): void {
    this.observeRefusalCode(error.code, typeof error.details.reason === 'string' ? error.details.reason : 'state');
  }

  /** `reason`: spend, calls or seconds (the limit that refused), or state (paused or closed). */
  observeRefusalCode(code: string, reason: string): void {
    this.refusals.inc({ code, reason });
    this.otel.refusals.add(1, { code, reason });
  }

  /** A call a rate limit refused: the tenant's own limit or a task's (`scope`), on tokens or requests (`limit`). */
  observeRateLimited(tenant: string, scope: string, limit: string): void {
    this.rateLimited.inc({ tenant, scope, limit });
    this.otel.rateLimited.add(1, { tenant, scope, limit });
  }

  /** A request body its dialect's scan could not read, parsed whole instead (`reason`: what stopped the scan). */
  observeBodyFallback(dialect: string, reason: string): void {
    this.bodyFallbacks.inc({ dialect, reason });
  }

  /** Open tasks with gauges: what a scrape refreshes. */
  openTaskIds(): string[] {
    return [...this.tasks.keys()];
  }

  /** Updates the per-task gauges; a closed task's are removed. */
  observeTasks(rows: TaskRow[]): void {
    const nowMs = this.clock();
    for (const t of rows) {
      if (t.state === 'closed') {
        this.tasks.delete(t.id);
        continue;
      }
      this.tasks.set(t.id, {
        label: t.label,
        unit: t.unit,
        used: fromLedger(t.unit, t.used),
        reserved: fromLedger(t.unit, t.reserved),
        total: fromLedger(t.unit, t.total),
        utilization: Math.round(utilization(t, nowMs) * 1e6) / 1e6,
      });
    }
  }

  /** Counts events once each: any with a seq already seen is ignored, so overlapping feeds are safe. */
  onEvents(events: StoredEvent[]): void {
    for (const e of events) {
      if (e.seq <= this.lastSeq) continue;
      this.lastSeq = e.seq;
      this.events.inc({ type: e.type });
      this.otel.events.add(1, { type: e.type });
      if (e.type === 'threshold_crossed') {
        const attrs = { threshold: String(e.data.threshold), state: String(e.data.state) };
        this.crossings.inc(attrs);
        this.otel.crossings.add(1, attrs);
      }
      if (e.type === 'closed') this.tasks.delete(e.taskId);
    }
  }

  /**
   * Reads new events whenever the ledger changes (at most once per `debounceMs`) and every `pollMs` (events other
   * processes wrote), starting after the newest event stored now. Returns a function that stops watching.
   * The event counters are the store's (every replica's events): with several replicas, aggregate them with max.
   */
  watch(feed: EventFeed, debounceMs = 50, pollMs = 5_000): () => void {
    let timer: NodeJS.Timeout | undefined;
    const read = async (): Promise<void> => {
      for (;;) {
        const page = await feed.events({ afterSeq: this.lastSeq, limit: 1_000 });
        this.onEvents(page);
        if (page.length < 1_000) return;
      }
    };
    // Start from now: events before this process started are history, not this process's counts.
    const start = async (): Promise<void> => {
      for (;;) {
        const page = await feed.events({ afterSeq: this.lastSeq, limit: 10_000 });
        if (page.length === 0) return;
        this.lastSeq = Math.max(this.lastSeq, page.at(-1)!.seq);
      }
    };
    // One read at a time, in order; a failed read is retried by the next change or poll.
    let reading = start().catch(() => undefined);
    const next = (): void => {
      reading = reading.then(read).catch(() => undefined);
    };
    const off = feed.onChange(() => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        next();
      }, debounceMs);
      timer.unref();
    });
    const poll = setInterval(next, pollMs);
    poll.unref();
    return () => {
      clearTimeout(timer);
      clearInterval(poll);
      off();
    };
  }

  /** Prometheus text exposition format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Pushes pending OpenTelemetry measurements to the exporters now. */
  async flush(): Promise<void> {
    await this.provider?.forceFlush();
  }

  async shutdown(): Promise<void> {
    await this.provider?.shutdown();
  }
}

function otlpExporter(endpoint: string | undefined): OTLPMetricExporter | undefined {
  const target = otlpTarget(endpoint, 'metrics');
  return target ? new OTLPMetricExporter(target) : undefined;
}

function otelInstruments(meter: Meter, tasks: Map<string, OpenTask>) {
  const gauge = (name: string, description: string, unit: string, pick: (t: OpenTask) => number): void => {
    meter.createObservableGauge(name, { description, unit }).addCallback((result: ObservableResult<Attributes>) => {
      for (const [task, t] of tasks) result.observe(pick(t), { task, label: t.label, unit: t.unit });
    });
  };
  gauge('envelope.budget.utilization', 'Open tasks: the largest fraction of any limit used', '1', (t) => t.utilization);
  gauge('envelope.budget.used', 'Open tasks: used, in tokens or USD', '{unit}', (t) => t.used);
  gauge('envelope.budget.reserved', 'Open tasks: held by calls in flight', '{unit}', (t) => t.reserved);
  return {
    tokens: meter.createCounter('envelope.tokens.used', { description: 'Tokens used by settled model calls', unit: '{token}' }),
    cost: meter.createCounter('envelope.cost', { description: 'USD cost of settled model calls', unit: 'USD' }),
    calls: meter.createCounter('envelope.calls', { description: 'Settled model calls', unit: '{call}' }),
    refusals: meter.createCounter('envelope.refusals', { description: 'Model calls refused by a budget', unit: '{call}' }),
    rateLimited: meter.createCounter('envelope.rate_limited', { description: 'Model calls refused by a rate limit', unit: '{call}' }),
    crossings: meter.createCounter('envelope.threshold_crossings', { description: 'Countdown thresholds crossed', unit: '{event}' }),
    events: meter.createCounter('envelope.events', { description: 'Budget events stored', unit: '{event}' }),
    latency: meter.createHistogram('envelope.gateway.request.duration', {
      description: 'Gateway request latency',
      unit: 's',
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS_SECONDS },
    }),
  };
}
