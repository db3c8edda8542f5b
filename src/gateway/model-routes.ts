// The provider routes (`POST /v1/messages`, `/v1/messages/count_tokens`, `/v1/chat/completions`), served on plain
// node:http ahead of Fastify, which keeps the admin API and the dashboard. Whatever fails here, a body over the
// limit or a fault of the gateway itself, still answers in the provider's own error shape.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EnvelopeError, isEnvelopeError } from '../budget/errors.js';
import { anthropic } from '../providers/anthropic.js';
import type { Dialect } from '../providers/dialect.js';
import { openai } from '../providers/openai.js';
import { callerTenant } from './auth.js';
import { parseJson, readBody, sendWhole } from './http-io.js';
import { handleModelCall, sendError, type ProxyContext } from './proxy.js';
import { downstreamHeaders, upstreamHeaders, upstreamTarget, type UpstreamTarget } from './upstream.js';

interface ModelRoute {
  dialect: Dialect;
  upstream: UpstreamTarget;
  /** Counted against a budget (false: count_tokens, forwarded as it is). */
  budgeted: boolean;
}

export type ModelRoutes = Map<string, ModelRoute>;

const trimSlash = (url: string): string => url.replace(/\/+$/, '');

export function modelRoutes(anthropicUrl: string, openaiUrl: string): ModelRoutes {
  const a = trimSlash(anthropicUrl);
  const o = trimSlash(openaiUrl);
  return new Map([
    ['/v1/messages', { dialect: anthropic, upstream: upstreamTarget(`${a}/v1/messages`), budgeted: true }],
    ['/v1/messages/count_tokens', { dialect: anthropic, upstream: upstreamTarget(`${a}/v1/messages/count_tokens`), budgeted: false }],
    ['/v1/chat/completions', { dialect: openai, upstream: upstreamTarget(`${o}/chat/completions`), budgeted: true }],
  ]);
}

/** The model route a request is for, if any (the query string, such as the SDK's `?beta=true`, is not forwarded). */
export function routeOf(routes: ModelRoutes, req: IncomingMessage): ModelRoute | undefined {
  if (req.method !== 'POST') return undefined;
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return routes.get(q === -1 ? url : url.slice(0, q));
}

export async function serveModelRoute(ctx: ProxyContext, route: ModelRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const raw = await readBody(req, ctx.options.bodyLimitBytes);
    await (route.budgeted
      ? handleModelCall(ctx, route.dialect, route.upstream, req.headers, raw, res)
      : passThrough(ctx, route, req, raw, res));
  } catch (e) {
    if (!isEnvelopeError(e)) ctx.log.error(e);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, route.dialect, isEnvelopeError(e) ? e : new EnvelopeError('internal', 'the gateway failed on this request (its log says why); try again'));
  }
}

/** A call with no budget effect (count_tokens): validated as JSON, Envelope's fields stripped, forwarded. */
async function passThrough(ctx: ProxyContext, route: ModelRoute, req: IncomingMessage, raw: Buffer, res: ServerResponse): Promise<void> {
  const { dialect } = route;
  callerTenant(req.headers, ctx.options);
  const parsed = parseJson(raw);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new EnvelopeError('invalid_request', 'the request body must be a JSON object');
  const body = dialect.strip(parsed as Record<string, unknown>);
  try {
    const up = await ctx.upstream.post(route.upstream, upstreamHeaders(req.headers), JSON.stringify(body));
    sendWhole(res, up.statusCode, downstreamHeaders(up.headers), await up.whole());
  } catch (e) {
    sendError(res, dialect, new EnvelopeError('upstream_error', `upstream did not answer: ${(e as Error).message}`));
  }
}
