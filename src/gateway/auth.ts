// Who is calling: the admin (admin token), a tenant (tenant key), or, for model calls, the default tenant.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { EnvelopeError } from '../budget/errors.js';
import type { Scope } from '../ledger/ledger.js';
import type { GatewayOptions } from './options.js';

export const DEFAULT_TENANT = 'default';

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/** The tenant of a model call: from `x-envelope-key` when given (and it must be valid), else the default tenant. */
export function callerTenant(headers: IncomingHttpHeaders, opts: GatewayOptions): string {
  const key = header(headers, 'x-envelope-key');
  if (key === undefined) return DEFAULT_TENANT;
  for (const [k, tenant] of opts.tenantKeys) if (sameSecret(k, key)) return tenant;
  throw new EnvelopeError('unauthorized', 'x-envelope-key is not a known tenant key');
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
/** Names that only ever mean this machine: a page that rebinds its own name to 127.0.0.1 still sends its name. */
const LOOPBACK_HOST = /^(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?$/i;

/**
 * The scope of an admin API call: admin (no tenant) or one tenant, from `Authorization: Bearer`. Without an admin
 * token, a caller with no bearer is the admin only from loopback and only under a loopback `Host` (DNS rebinding).
 * A token in the URL (`?token=`, what the dashboard once sent) is refused: URLs end up in logs and histories.
 */
export function adminScope(headers: IncomingHttpHeaders, queryToken: unknown, remote: string | undefined, opts: GatewayOptions): Scope {
  if (queryToken !== undefined) {
    throw new EnvelopeError('unauthorized', 'a token in the URL is refused (URLs end up in logs): send it as Authorization: Bearer <token>');
  }
  const auth = header(headers, 'authorization');
  const token = auth?.toLowerCase().startsWith('bearer ') ? auth.slice(7).trim() : undefined;
  if (token !== undefined && token !== '') {
    if (opts.adminToken !== null && sameSecret(opts.adminToken, token)) return {};
    for (const [k, tenant] of opts.tenantKeys) if (sameSecret(k, token)) return { tenant };
    throw new EnvelopeError('unauthorized', 'the token is neither the admin token nor a tenant key');
  }
  if (opts.adminToken === null && remote !== undefined && LOOPBACK.has(remote)) {
    if (LOOPBACK_HOST.test(header(headers, 'host') ?? '')) return {};
    throw new EnvelopeError('forbidden', 'without --admin-token the admin API answers only requests addressed to localhost, 127.0.0.1 or [::1]');
  }
  throw new EnvelopeError('unauthorized', 'send Authorization: Bearer <admin token or tenant key>');
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Refuses a state-changing admin call that a page on another site could have sent (CSRF): it must carry a JSON
 * body (a form or a no-cors fetch cannot send one without a preflight), and neither `Sec-Fetch-Site: cross-site`
 * nor an `Origin` other than the gateway's own. Callers outside browsers (curl, the CLI) send neither header.
 */
export function refuseCrossSite(method: string, headers: IncomingHttpHeaders): void {
  if (SAFE_METHODS.has(method)) return;
  if (header(headers, 'sec-fetch-site') === 'cross-site') {
    throw new EnvelopeError('forbidden', 'a request from another site cannot change the ledger');
  }
  const origin = header(headers, 'origin');
  if (origin !== undefined && !ownOrigin(origin, headers)) {
    throw new EnvelopeError('forbidden', 'a request from another origin cannot change the ledger');
  }
  const type = header(headers, 'content-type')?.split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new EnvelopeError('unsupported_media_type', 'send a JSON body with content-type: application/json (at least {})');
  }
}

/** The Origin names the host the request was sent to (directly, or through a proxy that says so). */
function ownOrigin(origin: string, headers: IncomingHttpHeaders): boolean {
  let host: string;
  try {
    host = new URL(origin).host.toLowerCase();
  } catch {
    return false; // "null" (a sandboxed page, a file) or garbage
  }
  return [header(headers, 'host'), header(headers, 'x-forwarded-host')].some((h) => h !== undefined && h.toLowerCase() === host);
}
