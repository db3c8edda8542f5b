// The insight layer as the gateway mounts it: admin routes (GET /calibration, /report, /metrics), an `observe`
// hook for every proxied model call, the event watcher that feeds the metrics, and the webhook dispatcher.
//
//   const insight = createInsight(ledger, { webhooks: [{ url, secret }] });
//   const gateway = buildGateway(ledger, options, { routes: insight.routes, observe: insight.observe });
//   insight.start();   …   await insight.close();
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EnvelopeError } from '../budget/errors.js';
import { invalid } from '../budget/spec.js';
import type { TaskRow } from '../budget/types.js';
import type { AdminExtensions } from '../gateway/admin.js';
import type { ObservedCall } from '../gateway/proxy.js';
import type { Ledger, Scope } from '../ledger/ledger.js';
import { BoundedMap } from '../store/bounded-map.js';
import { Calibrator, HEADROOM, type CalibrateOptions } from './calibrate.js';
import { EnvelopeMetrics } from './metrics.js';
import { DEFAULT_COVERAGE_TARGET, DEFAULT_TIER_RATE_USD_PER_MTOK, DEFAULT_TIERS, parsePriceArg, parseTierArg, PricingAccumulator } from './report.js';
import { reportCsv } from './report-csv.js';
import { fromRunRecord } from './run-line.js';
import { resolveUpgrade } from './tokenizer.js';
import type { CursorStore } from './webhook-cursors.js';
import { WebhookDispatcher, type WebhookOptions, type WebhookTarget } from './webhooks.js';

export interface InsightOptions {
  metrics?: EnvelopeMetrics;
  webhooks?: WebhookTarget[];
  webhookCursors?: CursorStore;
  webhookOptions?: Partial<Omit<WebhookOptions, 'targets' | 'source' | 'cursors'>>;
  /** Defaults for GET /calibration; the minimum follows the ledger's configuration. */
  calibration?: Partial<CalibrateOptions>;
  /** Run records read per request, newest first. */
  runsLimit?: number;
  /** How often the open tasks' gauges are re-read between scrapes. */
  refreshMs?: number;
}

export interface Insight {
  metrics: EnvelopeMetrics;
  webhooks: WebhookDispatcher | null;
  routes: NonNullable<AdminExtensions['routes']>;
  /** For GatewayParts.observe: counts each proxied call under its task's label. */
  observe: (call: ObservedCall) => void;
  /** Starts following the ledger's events (metrics) and delivering webhooks. */
  start(): void;
  close(): Promise<void>;
}

/** A call without a task is counted under this label. */
export const NO_TASK_LABEL = '(no task)';

const many = z.union([z.string(), z.array(z.string())]).optional().transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]));
const calibrationQuery = z.object({
  label: z.string().optional(),
  percentile: z.union([z.literal('auto'), z.coerce.number()]).optional(),
  headroom: z.union([z.enum(['production', 'test']), z.coerce.number()]).optional(),
  modelUpgrade: z.string().optional(),
  bins: z.coerce.number().int().optional(),
});
const reportQuery = z.object({
  label: z.string().optional(),
  price: many,
  tier: many,
  target: z.coerce.number().optional(),
  tierRate: z.coerce.number().optional(),
  format: z.enum(['json', 'csv']).optional(),
});

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value ?? {});
  if (!r.success) throw invalid(r.error);
  return r.data;
}

export function createInsight(ledger: Ledger, options: InsightOptions = {}): Insight {
  const metrics = options.metrics ?? new EnvelopeMetrics({ prices: ledger.prices, clock: () => ledger.now() });
  const webhooks = options.webhooks?.length
    ? new WebhookDispatcher({
        ...options.webhookOptions,
        targets: options.webhooks,
        source: { events: (q) => ledger.events(q), onChange: (l) => ledger.onChange(l) },
        cursors: options.webhookCursors,
      })
    : null;
  const runsLimit = options.runsLimit ?? 1_000_000;
  // A task's label never changes: read once per task, off the request path.
  const labels = new BoundedMap<string, Promise<string>>(100_000);
  let stopWatching: (() => void) | null = null;
  let refreshTimer: NodeJS.Timeout | undefined;

  const labelOf = (taskId: string): Promise<string> => {
    let label = labels.get(taskId);
    if (!label) {
      label = ledger
        .findTask(taskId)
        .then((row) => {
          if (row) metrics.observeTasks([row]);
          return row?.label ?? NO_TASK_LABEL;
        })
        .catch(() => NO_TASK_LABEL);
      labels.set(taskId, label);
    }
    return label;
  };

  const observe = (call: ObservedCall): void => {
    metrics.observeRequest({ route: call.route, method: 'POST', status: call.status, durationMs: call.durationMs });
    if (call.usage) {
      const usage = call.usage;
      if (call.taskId === null) metrics.observeUsage(NO_TASK_LABEL, call.model, usage);
      else void labelOf(call.taskId).then((label) => metrics.observeUsage(label, call.model, usage));
    }
    if (call.rateLimited) metrics.observeRateLimited(call.tenant, call.rateLimited.scope, call.rateLimited.limit);
    if (call.bodyFallback !== null) metrics.observeBodyFallback(call.dialect, call.bodyFallback);
    if (call.refused) {
      // The call says only that it was refused (402); the task's state now says which kind of refusal it was.
      const read = call.taskId === null ? Promise.resolve(undefined) : ledger.findTask(call.taskId).catch(() => undefined);
      void read.then((row) => {
        const code = row?.state === 'paused' ? 'budget_paused' : row?.state === 'closed' ? 'task_closed' : 'budget_exceeded';
        metrics.observeRefusalCode(code, code === 'budget_exceeded' ? 'spend' : 'state');
        if (row) metrics.observeTasks([row]);
      });
    }
  };

  /** Re-reads the open tasks with gauges, so a scrape (or an OTLP export) shows the ledger as it is now. */
  const refreshTasks = async (): Promise<void> => {
    const ids = metrics.openTaskIds();
    for (let i = 0; i < ids.length; i += 100) {
      const rows = await Promise.all(ids.slice(i, i + 100).map((id) => ledger.findTask(id)));
      metrics.observeTasks(rows.filter((r): r is TaskRow => r !== undefined));
    }
  };

  const calibrationDefaults: Partial<CalibrateOptions> = { minimumTokens: ledger.config.minimumTokens, ...options.calibration };

  const routes: Insight['routes'] = [
    {
      path: '/calibration',
      handler: async (scope: Scope, req: FastifyRequest) => {
        const q = parse(calibrationQuery, req.query);
        const calibrator = new Calibrator({
          ...calibrationDefaults,
          ...(q.percentile !== undefined ? { percentile: q.percentile } : {}),
          ...(q.headroom !== undefined ? { headroom: typeof q.headroom === 'number' ? q.headroom : HEADROOM[q.headroom] } : {}),
          ...(q.modelUpgrade ? { upgrade: resolveUpgrade(q.modelUpgrade) } : {}),
          ...(q.bins !== undefined ? { histogramBins: q.bins } : {}),
        });
        for (const r of await ledger.runs({ label: q.label, limit: runsLimit }, scope)) calibrator.add(fromRunRecord(r));
        return calibrator.finish();
      },
    },
    {
      path: '/report',
      handler: async (scope: Scope, req: FastifyRequest, reply: FastifyReply) => {
        const q = parse(reportQuery, req.query);
        const acc = new PricingAccumulator(ledger.prices);
        for (const r of await ledger.runs({ label: q.label, limit: runsLimit }, scope)) acc.add(fromRunRecord(r));
        const report = acc.finish({
          prices: Object.fromEntries(q.price.map(parsePriceArg)),
          target: q.target ?? DEFAULT_COVERAGE_TARGET,
          priceTable: ledger.prices,
          tiers: q.tier.length ? q.tier.map(parseTierArg) : DEFAULT_TIERS,
          tierRateUsdPerMtok: q.tierRate ?? DEFAULT_TIER_RATE_USD_PER_MTOK,
        });
        if (q.format === 'csv') return reply.header('content-type', 'text/csv; charset=utf-8').send(`${reportCsv(report)}\n`);
        return report;
      },
    },
    {
      path: '/metrics',
      handler: async (scope: Scope, _req: FastifyRequest, reply: FastifyReply) => {
        // Series name tasks and labels of every tenant: the admin's only.
        if (scope.tenant !== undefined) throw new EnvelopeError('unauthorized', 'metrics need the admin token');
        await refreshTasks();
        return reply.header('content-type', metrics.contentType).send(await metrics.render());
      },
    },
  ];

  return {
    metrics,
    webhooks,
    routes,
    observe,
    start() {
      stopWatching ??= metrics.watch({ events: (q) => ledger.events(q), onChange: (l) => ledger.onChange(l) });
      // Between scrapes, the per-task gauges OpenTelemetry exports stay this fresh.
      refreshTimer ??= setInterval(() => void refreshTasks().catch(() => undefined), options.refreshMs ?? 10_000);
      refreshTimer.unref();
      webhooks?.start();
    },
    async close() {
      clearInterval(refreshTimer);
      refreshTimer = undefined;
      stopWatching?.();
      stopWatching = null;
      await webhooks?.stop();
      await metrics.shutdown();
    },
  };
}
