// One error type for every refusal. `code` is stable; adapters map it to each provider's own error shape.

export type ErrorCode =
  | 'invalid_request'
  | 'not_found'
  | 'conflict'
  | 'budget_exceeded'
  | 'budget_paused'
  | 'task_closed'
  | 'price_unknown'
  | 'unauthorized'
  | 'forbidden'
  | 'unsupported_media_type'
  | 'upstream_error'
  | 'store_unavailable'
  | 'request_too_large'
  | 'overloaded'
  | 'rate_limited'
  | 'internal';

const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  not_found: 404,
  conflict: 409,
  // 402 so that the official SDKs do not retry a refusal.
  budget_exceeded: 402,
  budget_paused: 402,
  task_closed: 402,
  price_unknown: 400,
  unauthorized: 401,
  forbidden: 403,
  unsupported_media_type: 415,
  upstream_error: 502,
  store_unavailable: 503,
  request_too_large: 413,
  // Too many request bodies in flight: the SDKs retry a 503 after a pause.
  overloaded: 503,
  // A rate limit (SPEC §4a): the SDKs retry a 429 after its retry-after; no budget was spent.
  rate_limited: 429,
  internal: 500,
};

export class EnvelopeError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'EnvelopeError';
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

export const isEnvelopeError = (e: unknown): e is EnvelopeError => e instanceof EnvelopeError;

/**
 * When a refused call may be tried again: `retry-after` in whole seconds (what every client reads) and
 * `retry-after-ms` (the official SDKs wait exactly that). Empty for a refusal that waiting does not lift.
 */
export function retryHeaders(e: EnvelopeError): Record<string, string> {
  const ms = e.details.retryAfterMs;
  if (typeof ms !== 'number') return {};
  return { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))), 'retry-after-ms': String(Math.ceil(ms)) };
}
