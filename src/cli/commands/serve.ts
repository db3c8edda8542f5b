// `envelope serve`: the gateway, on the store of --store.
import { Option, type Command } from 'commander';
import { applyConfigFile, configOption, jsonValued } from '../config-file.js';
import { parseTenantSettings, type TenantSpec } from '../../budget/tenants.js';
import { DEFAULT_BUDGET_CONFIG } from '../../budget/config.js';
import { Ledger } from '../../ledger/ledger.js';
import { loadPrices } from '../../metering/prices-file.js';
import { DEFAULT_NATIVE_MODELS } from '../../pipeline/native-budgets.js';
import { buildGateway } from '../../gateway/server.js';
import { DEFAULT_GATEWAY_OPTIONS, parseTenantKeys, parseUpstream, type GatewayOptions, type NamedUpstream } from '../../gateway/options.js';
import { FAMILIES } from '../../providers/registry.js';
import { openStore, redactUrl } from '../../store/open.js';
import { createInsight } from '../../insight/gateway-insight.js';
import { startTracing } from '../../insight/traces.js';
import { FileCursorStore } from '../../insight/webhook-cursors.js';
import type { WebhookTarget } from '../../insight/webhooks.js';
import { intArg, storeOption } from '../options.js';
import { printJson } from '../output.js';

export interface ServeFlags {
  config?: string;
  printConfig?: boolean;
  port: number;
  host: string;
  store: string;
  adminToken?: string;
  /** --anthropic-url, --openai-url, --gemini-url: one per provider family. */
  [url: `${string}Url`]: string;
  upstream: NamedUpstream[];
  tenantKeys?: string;
  tenants?: string;
  requireTask?: boolean;
  nativeModels: string;
  prices?: string;
  logLevel: GatewayOptions['logLevel'];
  upstreamTimeoutMs: number;
  sweepIntervalMs: number;
  idleCloseMs: number;
  reservationTtlMs: number;
  minimumTokens: number;
  bodiesInFlightMb: number;
  webhook: string[];
  webhookCursors?: string;
}

export function registerServe(program: Command): void {
  const serve = program
    .command('serve')
    .description('start the gateway: point ANTHROPIC_BASE_URL, OPENAI_BASE_URL (…/v1) or GOOGLE_GEMINI_BASE_URL at it')
    .addOption(configOption())
    .addOption(new Option('--print-config', 'print the settings in effect (flags, environment, config file; secrets hidden) as JSON and exit'))
    .addOption(new Option('--port <n>', 'port to listen on').env('ENVELOPE_PORT').default(8787).argParser(intArg('--port')))
    .addOption(new Option('--host <host>', 'address to listen on').env('ENVELOPE_HOST').default('127.0.0.1'))
    .addOption(storeOption())
    .addOption(new Option('--admin-token <token>', 'bearer token for the admin API and dashboard (a flag shows in ps: prefer the environment or --config)').env('ENVELOPE_ADMIN_TOKEN'));
  // One base URL flag per provider family of the registry: --anthropic-url, --openai-url, --gemini-url …
  for (const f of FAMILIES) {
    serve.addOption(new Option(`--${f.name}-url <url>`, f.describe).env(`ENVELOPE_${f.name.toUpperCase()}_URL`).default(f.defaultUrl));
  }
  serve
    .addOption(
      new Option('--upstream <name=family:url>', `serve a family's routes again under /NAME/, sent to URL (repeatable; family ${FAMILIES.map((f) => f.name).join(', ')}), e.g. openrouter=openai:https://openrouter.ai/api/v1`)
        .env('ENVELOPE_UPSTREAM')
        .argParser((v: string, prev: NamedUpstream[] = []) => [...prev, ...v.split(/\s+/).filter(Boolean).map(parseUpstream)])
        .default([]),
    )
    .addOption(new Option('--tenant-keys <pairs>', 'tenant API keys as tenant=key,tenant2=key2 (a flag shows in ps: prefer the environment or --config)').env('ENVELOPE_TENANT_KEYS'))
    .addOption(
      jsonValued(
        new Option('--tenants <json>', 'tenant envelopes and rate limits, set at start: {"team-a":{"total":5000000,"period":"day","tpm":250000,"rpm":600}} (in a config file, an object)')
          .env('ENVELOPE_TENANTS')
          .argParser((v: string) => (parseTenantSettings(v), v)),
      ),
    )
    .addOption(new Option('--require-task', 'refuse model calls that name no task').env('ENVELOPE_REQUIRE_TASK'))
    .addOption(new Option('--native-models <list>', 'models given output_config.task_budget natively (comma-separated)').env('ENVELOPE_NATIVE_MODELS').default(DEFAULT_NATIVE_MODELS.join(',')))
    .addOption(new Option('--prices <file>', 'JSON price table over the catalog (envelope prices)').env('ENVELOPE_PRICES'))
    .addOption(new Option('--log-level <level>', 'silent, error, warn or info').choices(['silent', 'error', 'warn', 'info']).env('ENVELOPE_LOG_LEVEL').default('warn'))
    .addOption(new Option('--upstream-timeout-ms <ms>', 'time allowed for upstream response headers').env('ENVELOPE_UPSTREAM_TIMEOUT_MS').default(600_000).argParser(intArg('--upstream-timeout-ms')))
    .addOption(new Option('--reservation-ttl-ms <ms>', 'a hold whose call nobody works on any more (its replica died) is released after this; calls in progress keep theirs alive').env('ENVELOPE_RESERVATION_TTL_MS').default(DEFAULT_BUDGET_CONFIG.reservationTtlMs).argParser(intArg('--reservation-ttl-ms')))
    .addOption(new Option('--minimum-tokens <n>', 'smallest total a token task may have').env('ENVELOPE_MINIMUM_TOKENS').default(DEFAULT_BUDGET_CONFIG.minimumTokens).argParser(intArg('--minimum-tokens')))
    .addOption(new Option('--bodies-in-flight-mb <n>', 'MiB of request bodies held at once, in all; past it a new request gets 503 overloaded (clients retry)').env('ENVELOPE_BODIES_IN_FLIGHT_MB').default(DEFAULT_GATEWAY_OPTIONS.bodiesInFlightBytes / 1024 / 1024).argParser(intArg('--bodies-in-flight-mb')))
    .addOption(new Option('--webhook <url=secret>', 'POST every event to this URL, signed with HMAC-SHA256 of the secret (repeatable)').env('ENVELOPE_WEBHOOK').argParser((v: string, prev: string[] = []) => [...prev, v]).default([]))
    .addOption(new Option('--webhook-cursors <file>', 'where webhook delivery positions are kept across restarts').env('ENVELOPE_WEBHOOK_CURSORS'))
    .addOption(new Option('--sweep-interval-ms <ms>', 'how often expired reservations are released').env('ENVELOPE_SWEEP_INTERVAL_MS').default(5_000).argParser(intArg('--sweep-interval-ms')))
    .addOption(new Option('--idle-close-ms <ms>', 'close a task after this long without calls (its run record then goes to calibrate and report); 0: never').env('ENVELOPE_IDLE_CLOSE_MS').default(3_600_000).argParser(intArg('--idle-close-ms')))
    .action(async (cliFlags: ServeFlags, cmd: Command) => {
      if (cliFlags.config) applyConfigFile(cmd, cliFlags.config, ['print-config']);
      const flags = cmd.opts<ServeFlags>();
      if (flags.printConfig) {
        printJson(settingsInEffect(flags));
        return;
      }
      // Spans of every budgeted call, exported when OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set (metrics likewise).
      const tracing = startTracing();
      const store = await openStore(flags.store);
      const ledger = new Ledger(store, {
        prices: loadPrices(flags.prices),
        config: { reservationTtlMs: flags.reservationTtlMs, minimumTokens: flags.minimumTokens },
      });
      // The operator's tenants as the file says, every start (a change made since through the API is replaced).
      const tenantKeys = parseTenantKeys(flags.tenantKeys);
      await applyTenants(ledger, parseTenantSettings(flags.tenants ?? '{}'), tenantKeys);
      const insight = createInsight(ledger, {
        webhooks: flags.webhook.map(parseWebhook),
        ...(flags.webhookCursors ? { webhookCursors: new FileCursorStore(flags.webhookCursors) } : {}),
      });
      const gateway = buildGateway(ledger, {
        ...Object.fromEntries(FAMILIES.map((f) => [`${f.name}Url`, flags[`${f.name}Url`]])),
        upstreams: flags.upstream,
        adminToken: flags.adminToken ?? null,
        tenantKeys,
        requireTask: flags.requireTask === true,
        call: { ...DEFAULT_GATEWAY_OPTIONS.call, nativeModels: flags.nativeModels.split(',').map((s) => s.trim()).filter(Boolean) },
        logLevel: flags.logLevel,
        upstreamTimeoutMs: flags.upstreamTimeoutMs,
        bodiesInFlightBytes: flags.bodiesInFlightMb * 1024 * 1024,
      }, { routes: insight.routes, observe: insight.observe });
      insight.start();
      // A restarted gateway first releases what a killed one left reserved past its time-to-live.
      await ledger.sweep();
      const sweep = async (): Promise<void> => {
        await ledger.sweep();
        if (flags.idleCloseMs > 0) await ledger.closeIdle(flags.idleCloseMs);
      };
      const sweeper = setInterval(() => void sweep().catch((e: Error) => gateway.app.log.error(`sweep failed: ${e.message}`)), flags.sweepIntervalMs);
      sweeper.unref();
      const url = await gateway.listen(flags.port, flags.host);
      const admin = flags.adminToken ? 'needs the admin token' : 'open to loopback callers only (set --admin-token)';
      if (flags.logLevel !== 'silent') {
        // Logging is JSON lines on stdout: the start-up lines are too, at info whatever the level (they are few).
        const startup = gateway.app.log.child({}, { level: 'info' });
        startup.info({ store: redactUrl(flags.store), dashboard: `${url}/`, admin, ...(flags.config ? { config: flags.config } : {}) }, 'envelope started');
        startup.info({ url }, `listening on ${url}`);
      } else {
        process.stderr.write(`envelope: store ${redactUrl(flags.store)}; dashboard ${url}/; admin API ${admin}\n`);
        process.stdout.write(`listening on ${url}\n`);
      }
      const stop = async (): Promise<void> => {
        clearInterval(sweeper);
        await insight.close();
        await gateway.close();
        await ledger.shutdown();
        // Last: the spans of the calls the gateway finished while closing go out too.
        await tracing?.shutdown();
        process.exit(0);
      };
      process.once('SIGTERM', () => void stop());
      process.once('SIGINT', () => void stop());
    });
}

/** Sets each tenant's envelope and limits; a tenant no key names is an error (a typo would otherwise cap nobody). */
async function applyTenants(ledger: Ledger, specs: TenantSpec[], tenantKeys: Map<string, string>): Promise<void> {
  const known = new Set(['default', ...tenantKeys.values()]);
  for (const spec of specs) {
    if (!known.has(spec.tenant)) {
      throw new Error(`--tenants: tenant ${spec.tenant} has no key in --tenant-keys (known: ${[...known].join(', ')})`);
    }
  }
  for (const spec of specs) await ledger.governance.set(spec);
}

/** `url=secret`: the secret follows the last `=` so that URLs with query strings keep theirs. */
function parseWebhook(text: string): WebhookTarget {
  const at = text.lastIndexOf('=');
  if (at < 1 || at === text.length - 1) throw new Error('--webhook takes URL=SECRET, e.g. https://hooks.example.com/envelope=s3cret');
  return { url: text.slice(0, at), secret: text.slice(at + 1) };
}

/** The settings as a config file would hold them, secrets hidden (what --print-config shows: a valid --config file). */
function settingsInEffect(flags: ServeFlags): Record<string, unknown> {
  const { config: _config, printConfig: _print, ...settings } = flags;
  const hidden = (v: string | undefined): string | undefined => (v === undefined ? undefined : '***');
  return {
    ...settings,
    store: redactUrl(settings.store),
    adminToken: hidden(settings.adminToken),
    tenantKeys: settings.tenantKeys?.split(',').map((pair) => `${pair.split('=')[0]}=***`).join(','),
    upstream: settings.upstream.map((u) => `${u.name}=${u.family}:${u.url}`),
    tenants: settings.tenants === undefined ? undefined : JSON.parse(settings.tenants),
    webhook: settings.webhook.map((w) => `${parseWebhook(w).url}=***`),
  };
}
