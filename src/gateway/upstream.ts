// The HTTP client to the providers: undici with keep-alive pools, bodies streamed, never buffered needlessly.
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request, type Dispatcher } from 'undici';

/** Headers that describe one hop, or Envelope itself, and are never forwarded. */
const HOP_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'proxy-authorization',
  'proxy-connection',
  'accept-encoding',
  'content-encoding',
]);

/** The caller's headers as sent upstream: key headers pass through untouched; Envelope's own are dropped. */
export function upstreamHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_HEADERS.has(k) || k.startsWith('x-envelope-')) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  // Identity encoding so usage can be read from the body as it passes.
  out['accept-encoding'] = 'identity';
  out['content-type'] = 'application/json';
  return out;
}

/** The provider's response headers as returned to the client. */
export function downstreamHeaders(h: Dispatcher.ResponseData['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_HEADERS.has(k)) continue;
    out[k] = v;
  }
  return out;
}

export class Upstream {
  private readonly agent: Agent;

  constructor(options: { headersTimeoutMs: number }) {
    this.agent = new Agent({
      keepAliveTimeout: 30_000,
      headersTimeout: options.headersTimeoutMs,
      // Streams may pause between tokens for a long time; the drain timeout bounds them instead.
      bodyTimeout: 0,
      connections: 512,
    });
  }

  post(url: string, headers: Record<string, string>, body: string, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    return request(url, { method: 'POST', headers, body, dispatcher: this.agent, signal });
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
