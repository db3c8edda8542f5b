// Everything `envelope serve` can be told, with the defaults of SPEC §2 and §5.
import { DEFAULT_CALL_POLICY, type CallPolicy } from '../pipeline/budgeted-call.js';

export interface GatewayOptions {
  /** A base URL as the Anthropic SDK takes it, without /v1. */
  anthropicUrl: string;
  /** A base URL as the OpenAI SDK takes it, with /v1. */
  openaiUrl: string;
  /** Bearer token for the admin API; without one the admin API answers loopback callers only. */
  adminToken: string | null;
  /** Tenant API keys: key → tenant. A tenant key sees only its own tasks. */
  tenantKeys: Map<string, string>;
  /** Refuse model calls that name no task. */
  requireTask: boolean;
  call: CallPolicy;
  /** Time allowed for the upstream's response headers. */
  upstreamTimeoutMs: number;
  /** After a client disconnects mid-stream, keep reading the provider's stream this long to learn the real usage. */
  drainTimeoutMs: number;
  /** Largest request body accepted. */
  bodyLimitBytes: number;
  logLevel: 'silent' | 'error' | 'warn' | 'info';
}

export const DEFAULT_GATEWAY_OPTIONS: GatewayOptions = {
  anthropicUrl: 'https://api.anthropic.com',
  openaiUrl: 'https://api.openai.com/v1',
  adminToken: null,
  tenantKeys: new Map(),
  requireTask: false,
  call: DEFAULT_CALL_POLICY,
  upstreamTimeoutMs: 600_000,
  drainTimeoutMs: 60_000,
  bodyLimitBytes: 32 * 1024 * 1024,
  logLevel: 'warn',
};

/** Parses `tenant=key,tenant2=key2` (from --tenant-keys or ENVELOPE_TENANT_KEYS). */
export function parseTenantKeys(text: string | undefined): Map<string, string> {
  const keys = new Map<string, string>();
  for (const pair of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const at = pair.indexOf('=');
    if (at < 1 || at === pair.length - 1) throw new Error(`tenant keys are tenant=key pairs separated by commas; got "${pair.slice(0, at + 1)}…"`);
    keys.set(pair.slice(at + 1), pair.slice(0, at));
  }
  return keys;
}
