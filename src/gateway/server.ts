// `envelope serve`: one process that is a drop-in base URL for the official SDKs, plus the admin API.
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { EnvelopeError, isEnvelopeError } from '../budget/errors.js';
import { createDashboard } from '../dashboard/routes.js';
import type { Ledger } from '../ledger/ledger.js';
import { NativeBudgetTurns } from '../pipeline/native-budgets.js';
import { anthropic } from '../providers/anthropic.js';
import type { Dialect } from '../providers/dialect.js';
import { openai } from '../providers/openai.js';
import { registerAdmin, type AdminExtensions } from './admin.js';
import { callerTenant } from './auth.js';
import { DEFAULT_GATEWAY_OPTIONS, type GatewayOptions } from './options.js';
import { handleModelCall, type ObservedCall, type ProxyContext } from './proxy.js';
import { downstreamHeaders, Upstream, upstreamHeaders } from './upstream.js';

export interface Gateway {
  app: FastifyInstance;
  ledger: Ledger;
  /** Starts listening; resolves with the base URL. */
  listen(port: number, host: string): Promise<string>;
  close(): Promise<void>;
}

export interface GatewayParts extends AdminExtensions {
  observe?: (call: ObservedCall) => void;
  /** Mounts more routes (the dashboard) on the app. */
  extend?: (app: FastifyInstance) => void;
}

const trimSlash = (url: string): string => url.replace(/\/+$/, '');

export function buildGateway(ledger: Ledger, partial: Partial<GatewayOptions> = {}, parts: GatewayParts = {}): Gateway {
  const options: GatewayOptions = { ...DEFAULT_GATEWAY_OPTIONS, ...partial, call: { ...DEFAULT_GATEWAY_OPTIONS.call, ...partial.call } };
  const app = Fastify({
    logger:
      options.logLevel === 'silent'
        ? false
        : { level: options.logLevel, redact: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers["x-envelope-key"]'] },
    bodyLimit: options.bodyLimitBytes,
    // Agents hold connections open between turns.
    keepAliveTimeout: 65_000,
  });
  const upstream = new Upstream({ headersTimeoutMs: options.upstreamTimeoutMs });
  const ctx: ProxyContext = { ledger, upstream, options, turns: new NativeBudgetTurns(), observe: parts.observe };
  const anthropicBase = trimSlash(options.anthropicUrl);
  const openaiBase = trimSlash(options.openaiUrl);

  void app.register(async (providers) => {
    // Model calls keep their raw bytes: the size feeds the estimate, and nothing is re-encoded needlessly.
    providers.removeAllContentTypeParsers();
    providers.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    // What fails before a handler runs (a body over the limit, a broken request) or escapes one still answers in
    // the provider's own error shape.
    providers.setErrorHandler((err: FastifyError, req, reply) => {
      const dialect = req.url.startsWith('/v1/chat/') ? openai : anthropic;
      const e =
        err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? new EnvelopeError('request_too_large', `the request body is over this gateway's limit of ${options.bodyLimitBytes.toLocaleString('en-US')} bytes`)
          : (err.statusCode ?? 500) < 500
            ? new EnvelopeError('invalid_request', err.message)
            : new EnvelopeError('internal', 'the gateway failed on this request (its log says why); try again');
      if ((err.statusCode ?? 500) >= 500) req.log.error(err);
      void reply.code(e.httpStatus).header('content-type', 'application/json').send(JSON.stringify(dialect.errorBody(e.code, e.message)));
    });
    const route = (path: string, dialect: Dialect, url: string): void => {
      providers.post(path, (req, reply) => handleModelCall(ctx, dialect, url, req, reply));
    };
    route('/v1/messages', anthropic, `${anthropicBase}/v1/messages`);
    route('/v1/chat/completions', openai, `${openaiBase}/chat/completions`);
    providers.post('/v1/messages/count_tokens', (req, reply) =>
      passThrough(ctx, anthropic, `${anthropicBase}/v1/messages/count_tokens`, req, reply),
    );
  });
  const dashboard = createDashboard(ledger);
  void app.register(async (admin) => registerAdmin(admin, ledger, options, { routes: [...(parts.routes ?? []), ...dashboard.routes] }));
  dashboard.register(app);
  parts.extend?.(app);

  return {
    app,
    ledger,
    async listen(port, host) {
      await app.listen({ port, host });
      const addr = app.server.address();
      const actualPort = typeof addr === 'object' && addr ? addr.port : port;
      return `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
    },
    async close() {
      await app.close();
      await upstream.close();
    },
  };
}

/** A call with no budget effect (count_tokens): validated as JSON, Envelope's fields stripped, forwarded. */
async function passThrough(ctx: ProxyContext, dialect: Dialect, url: string, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  let body: Record<string, unknown>;
  try {
    callerTenant(req.headers, ctx.options);
    const parsed: unknown = JSON.parse((req.body as Buffer | undefined)?.toString('utf8') ?? '');
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new EnvelopeError('invalid_request', 'the request body must be a JSON object');
    body = dialect.strip(parsed as Record<string, unknown>);
  } catch (e) {
    const err = isEnvelopeError(e) ? e : new EnvelopeError('invalid_request', 'the request body is not valid JSON');
    void reply.code(err.httpStatus).header('content-type', 'application/json').send(JSON.stringify(dialect.errorBody(err.code, err.message)));
    return;
  }
  try {
    const res = await ctx.upstream.post(url, upstreamHeaders(req.headers), JSON.stringify(body));
    const bytes = Buffer.from(await res.body.arrayBuffer());
    void reply.code(res.statusCode).headers(downstreamHeaders(res.headers)).send(bytes);
  } catch (e) {
    const err = new EnvelopeError('upstream_error', `upstream did not answer: ${(e as Error).message}`);
    void reply.code(502).header('content-type', 'application/json').send(JSON.stringify(dialect.errorBody(err.code, err.message)));
  }
}
