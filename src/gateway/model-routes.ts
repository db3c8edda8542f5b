// The provider routes, from the registry (providers/registry.ts): every route of every provider at its own path, and
// again under `/NAME/` for each named upstream (`--upstream NAME=FAMILY:URL`). Served on plain node:http ahead of
// Fastify, which keeps the admin API and the dashboard. Whatever fails here, a body over the limit or a fault of the
// gateway itself, still answers in the provider's own error shape.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EnvelopeError, isEnvelopeError } from '../budget/errors.js';
import { isRecord, type Provider, type ProviderRoute } from '../providers/provider.js';
import { familyNamed, pick, PROVIDERS, providerOfCaller, routeLabels, type Served } from '../providers/registry.js';
import { callerTenant } from './auth.js';
import { parseJson, readBody, sendWhole } from './http-io.js';
import { upstreamUrlOf, type GatewayOptions } from './options.js';
import { handleModelCall, sendError, type ProxyContext } from './proxy.js';
import { downstreamHeaders, upstreamHeaders, upstreamTarget, type UpstreamTarget } from './upstream.js';

/** One provider route at one mount point: the gateway's own paths, or a named upstream's `/NAME` prefix. */
interface Mounted extends Served {
  prefix: string;
  /** The upstream's base URL, without a trailing slash. */
  base: string;
  /** For a fixed path, the upstream endpoint parsed once. */
  target: UpstreamTarget | null;
}

/** A request matched to its route: the provider path it is for and where it goes. */
export interface MatchedRoute {
  mounted: Mounted;
  /** The provider's own path (a named upstream's prefix removed), query string apart. */
  path: string;
  target: UpstreamTarget;
}

const trimSlash = (url: string): string => url.replace(/\/+$/, '');

export class ModelRouter {
  /** Fixed paths: "METHOD /prefix/path" → the providers serving it. */
  private readonly exact = new Map<string, Mounted[]>();
  private readonly patterns: Mounted[] = [];
  /** The prefixes of named upstreams, with their slash (`/openrouter/`). */
  private readonly prefixes: string[] = [];

  constructor(options: GatewayOptions) {
    for (const provider of PROVIDERS) this.mount(provider, '', upstreamUrlOf(options, provider.family.name));
    for (const u of options.upstreams) {
      const family = familyNamed(u.family)!;
      this.prefixes.push(`/${u.name}/`);
      for (const provider of PROVIDERS) if (provider.family === family) this.mount(provider, `/${u.name}`, u.url);
    }
  }

  private mount(provider: Provider, prefix: string, url: string): void {
    const base = trimSlash(url);
    for (const route of provider.routes) {
      const target = typeof route.path === 'string' ? upstreamTarget(upstreamUrl(base, provider, route.path)) : null;
      const m: Mounted = { provider, route, prefix, base, target };
      if (typeof route.path === 'string') {
        const key = `${route.method} ${prefix}${route.path}`;
        this.exact.set(key, [...(this.exact.get(key) ?? []), m]);
      } else {
        this.patterns.push(m);
      }
    }
  }

  /** The route a request is for, if any (the query string, such as the SDK's `?beta=true`, goes upstream only where the route keeps it). */
  match(req: IncomingMessage): MatchedRoute | undefined {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const full = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? '' : url.slice(q);
    const method = req.method ?? 'GET';
    const fixed = this.exact.get(`${method} ${full}`);
    if (fixed) {
      const m = fixed.length === 1 ? fixed[0]! : (pick(fixed, req.headers) as Mounted);
      return { mounted: m, path: full.slice(m.prefix.length), target: m.route.keepQuery && query ? withQuery(m.target!, query) : m.target! };
    }
    const prefix = this.prefixes.find((p) => full.startsWith(p));
    const path = prefix ? full.slice(prefix.length - 1) : full;
    const found = this.patterns.filter((m) => m.route.method === method && m.prefix === (prefix ? prefix.slice(0, -1) : '') && (m.route.path as RegExp).test(path));
    const m = found.length > 1 ? (pick(found, req.headers) as Mounted) : found[0];
    if (!m) return undefined;
    return { mounted: m, path, target: upstreamTarget(upstreamUrl(m.base, m.provider, path) + (m.route.keepQuery ? query : '')) };
  }
}

/** The upstream URL of a provider path: the base URL already holds the family's base path (OpenAI's /v1). */
function upstreamUrl(base: string, provider: Provider, path: string): string {
  const bp = provider.family.basePath;
  return `${base}${bp && path.startsWith(bp) ? path.slice(bp.length) : path}`;
}

const withQuery = (t: UpstreamTarget, query: string): UpstreamTarget => ({ ...t, path: t.path + query });

export async function serveModelRoute(ctx: ProxyContext, matched: MatchedRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { provider, route } = matched.mounted;
  // The call keeps its body (parsed, rewritten) until it is done: counted against the gateway's memory for bodies until then.
  const lease = ctx.bodies.lease();
  try {
    const raw = route.method === 'POST' ? await readBody(req, ctx.options.bodyLimitBytes, lease) : Buffer.alloc(0);
    await (route.kind === 'call'
      ? handleModelCall(ctx, provider, route.label, matched.target, req.headers, raw, res, matched.path, (path) => upstreamTarget(upstreamUrl(matched.mounted.base, provider, path)))
      : passThrough(ctx, provider, route, matched.target, req, raw, res));
  } catch (e) {
    if (!isEnvelopeError(e)) ctx.log.error(e);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const err = isEnvelopeError(e) ? e : new EnvelopeError('internal', 'the gateway failed on this request (its log says why); try again');
    sendError(res, provider, err, err.code === 'overloaded' ? { 'retry-after': '1' } : {});
  } finally {
    lease.end();
  }
}

/** A call with no budget effect (token counts, model listings): a JSON body is checked and stripped of Envelope's fields; forwarded. */
async function passThrough(ctx: ProxyContext, provider: Provider, route: ProviderRoute, to: UpstreamTarget, req: IncomingMessage, raw: Buffer, res: ServerResponse): Promise<void> {
  callerTenant(req.headers, ctx.options);
  let body: string | null = null;
  if (route.method === 'POST') {
    const parsed = parseJson(raw);
    if (!isRecord(parsed)) throw new EnvelopeError('invalid_request', 'the request body must be a JSON object');
    body = JSON.stringify(provider.strip(parsed));
  }
  const headers = upstreamHeaders(req.headers);
  if (body === null) delete headers['content-type'];
  try {
    const up = await ctx.upstream.request(route.method, to, headers, body);
    sendWhole(res, up.statusCode, downstreamHeaders(up.headers), await up.whole());
  } catch (e) {
    sendError(res, provider, new EnvelopeError('upstream_error', `upstream did not answer: ${(e as Error).message}`));
  }
}

/** A path no provider route serves: a 404 in the caller's provider's shape that names the routes there are. */
export function sendUnknownRoute(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '').split('?')[0];
  const provider = providerOfCaller(req.headers, path);
  const message = `Envelope serves no ${req.method} ${path}. Model routes: ${routeLabels().join(', ')} (also under /NAME/ for each --upstream); the admin API is under /envelope/v1/.`;
  sendError(res, provider, new EnvelopeError('not_found', message));
}
