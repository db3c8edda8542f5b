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

/** The scope of an admin API call: admin (no tenant) or one tenant. `token` may come from ?token= for EventSource. */
export function adminScope(headers: IncomingHttpHeaders, queryToken: string | undefined, remote: string | undefined, opts: GatewayOptions): Scope {
  const auth = header(headers, 'authorization');
  const token = auth?.toLowerCase().startsWith('bearer ') ? auth.slice(7).trim() : queryToken;
  if (token !== undefined && token !== '') {
    if (opts.adminToken !== null && sameSecret(opts.adminToken, token)) return {};
    for (const [k, tenant] of opts.tenantKeys) if (sameSecret(k, token)) return { tenant };
    throw new EnvelopeError('unauthorized', 'the token is neither the admin token nor a tenant key');
  }
  if (opts.adminToken === null && remote !== undefined && LOOPBACK.has(remote)) return {};
  throw new EnvelopeError('unauthorized', 'send Authorization: Bearer <admin token or tenant key>');
}
