// `envelope serve`: one process that is a drop-in base URL for the official SDKs, plus the admin API.
import Fastify, { type FastifyInstance } from 'fastify';
import { createServer } from 'node:http';
import { createDashboard } from '../dashboard/routes.js';
import { EnvelopeError, type ErrorCode } from '../budget/errors.js';
import type { Ledger } from '../ledger/ledger.js';
import { providerOfCaller } from '../providers/registry.js';
import { newCallEnv } from '../pipeline/run-call.js';
import { registerAdmin, type AdminExtensions } from './admin.js';
import { BodyBudget, leaseFastifyBodies } from './body-budget.js';
import { createCallLog } from './call-log.js';
import { registerHealth } from './health.js';
import { loggerOptions } from './http-log.js';
import { ModelRouter, sendUnknownRoute, serveModelRoute } from './model-routes.js';
import { DEFAULT_GATEWAY_OPTIONS, type GatewayOptions } from './options.js';
import type { ObservedCall, ProxyContext } from './proxy.js';
import { Upstream } from './upstream.js';

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

export function buildGateway(ledger: Ledger, partial: Partial<GatewayOptions> = {}, parts: GatewayParts = {}): Gateway {
  const options: GatewayOptions = { ...DEFAULT_GATEWAY_OPTIONS, ...partial, call: { ...DEFAULT_GATEWAY_OPTIONS.call, ...partial.call } };
  const upstream = new Upstream({ headersTimeoutMs: options.upstreamTimeoutMs });
  const routes = new ModelRouter(options);
  // Faults go to the app's log (the closure runs only once a request comes, after the app exists).
  const log: ProxyContext['log'] = { error: (e) => app.log.error(e), info: (f, m) => app.log.info(f, m) };
  // At info, one line per model call (the model routes run outside Fastify, which logs the rest).
  const callLog = options.logLevel === 'info' ? createCallLog(log.info, ledger.prices) : null;
  const bodies = new BodyBudget(options.bodiesInFlightBytes);
  const ctx: ProxyContext = { ledger, upstream, options, env: newCallEnv(ledger, options.call), bodies, observe: callLog ? callLog.observe(parts.observe) : parts.observe, log };
  const app = Fastify({
    logger: loggerOptions(options.logLevel),
    // Model calls go straight to their handler on the plain server; everything else to Fastify.
    serverFactory: (fastifyHandler) => {
      const server = createServer((req, res) => {
        const route = routes.match(req);
        if (route) void (callLog ? callLog.around(req, res, () => serveModelRoute(ctx, route, req, res)) : serveModelRoute(ctx, route, req, res));
        else fastifyHandler(req, res);
      });
      // Agents hold connections open between turns.
      server.keepAliveTimeout = 65_000;
      return server;
    },
  });
  // No answer of the admin API or the dashboard is ever read as anything but its declared type.
  app.addHook('onRequest', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
  });
  leaseFastifyBodies(app, bodies);
  const dashboard = createDashboard(ledger);
  void app.register(async (admin) => registerAdmin(admin, ledger, options, { routes: [...(parts.routes ?? []), ...dashboard.routes] }));
  registerHealth(app, ledger);
  // A request Fastify could not read outside the admin API (a broken body on a path no route serves): in the
  // caller's provider's shape, as every other answer to a model client.
  app.setErrorHandler((e, req, reply) => {
    const status = (e as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) app.log.error(e);
    const code: ErrorCode = status === 413 ? 'request_too_large' : status === 415 ? 'unsupported_media_type' : status < 500 ? 'invalid_request' : 'internal';
    const error = new EnvelopeError(code, status < 500 ? (e as Error).message : 'the gateway failed on this request (its log says why); try again');
    if (req.url.startsWith('/envelope/')) return reply.code(error.httpStatus).send({ error: { code, message: error.message } });
    return reply.code(error.httpStatus).send(providerOfCaller(req.headers, req.url.split('?')[0]).errorBody(code, error.message));
  });
  // Any other path: a 404 in the caller's provider's shape (what its SDK shows), naming the routes there are.
  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/envelope/')) return reply.code(404).send({ error: { code: 'not_found', message: `no admin route ${req.method} ${req.url.split('?')[0]}` } });
    reply.hijack();
    sendUnknownRoute(req.raw, reply.raw);
  });
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
