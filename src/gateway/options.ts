// Everything `envelope serve` can be told, with the defaults of SPEC §2 and §5.
import { DEFAULT_CALL_POLICY, type CallPolicy } from '../pipeline/budgeted-call.js';
import { familyNamed, FAMILIES } from '../providers/registry.js';

/**
 * Each provider family's base URL by `${family}Url` — anthropicUrl (without /v1), openaiUrl (with /v1), geminiUrl
 * (without /v1beta) — as its official SDK takes it; unset, the public API (providers/registry.ts).
 */
export type UpstreamUrls = { [K in `${string}Url`]?: string };

/** `--upstream NAME=FAMILY:URL`: the family's routes served again under `/NAME/`, sent to URL. */
export interface NamedUpstream {
  name: string;
  family: string;
  url: string;
}

export interface GatewayOptions extends UpstreamUrls {
  /** Named upstreams (OpenRouter, Groq, a local vLLM or Ollama …), each under its own path prefix. */
  upstreams: NamedUpstream[];
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
  /** Request bodies held at once, in all (SPEC §2 hardening): past it a new body is refused with 503 `overloaded`. */
  bodiesInFlightBytes: number;
  logLevel: 'silent' | 'error' | 'warn' | 'info';
}

export const DEFAULT_GATEWAY_OPTIONS: GatewayOptions = {
  upstreams: [],
  adminToken: null,
  tenantKeys: new Map(),
  requireTask: false,
  call: DEFAULT_CALL_POLICY,
  upstreamTimeoutMs: 600_000,
  drainTimeoutMs: 60_000,
  bodyLimitBytes: 32 * 1024 * 1024,
  // Two of the largest bodies, or sixty agents deep in their sessions (~1 MB each) at once. A body is held about five
  // times over while its call runs (bytes, text, parsed, re-encoded): 8 bodies of 30 MB peaked at 413 MiB RSS.
  bodiesInFlightBytes: 64 * 1024 * 1024,
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

/** A family's base URL: as configured, else its public API. */
export const upstreamUrlOf = (options: UpstreamUrls, family: string): string => options[`${family}Url`] ?? familyNamed(family)!.defaultUrl;

/** Paths the gateway serves itself: no named upstream may take them as its prefix. */
const RESERVED_NAMES = new Set(['v1', 'v1beta', 'v1alpha', 'envelope', 'healthz', 'readyz', 'static', 'assets']);

/** Parses `NAME=FAMILY:URL` (from --upstream, repeatable), e.g. `openrouter=openai:https://openrouter.ai/api/v1`. */
export function parseUpstream(text: string): NamedUpstream {
  const m = /^([a-z0-9][a-z0-9_-]*)=([a-z]+):(https?:\/\/.+)$/i.exec(text.trim());
  const families = FAMILIES.map((f) => f.name).join(', ');
  if (!m) throw new Error(`--upstream takes NAME=FAMILY:URL (FAMILY one of ${families}), e.g. openrouter=openai:https://openrouter.ai/api/v1; got "${text}"`);
  const [, name, family, url] = m as unknown as [string, string, string, string];
  if (!familyNamed(family)) throw new Error(`--upstream ${name}: unknown family "${family}"; use one of ${families}`);
  if (RESERVED_NAMES.has(name.toLowerCase())) throw new Error(`--upstream ${name}: the gateway serves /${name}/ itself; choose another name`);
  try {
    new URL(url);
  } catch {
    throw new Error(`--upstream ${name}: "${url}" is not a URL`);
  }
  return { name, family, url };
}
