// What every simulated route shares: options, ids, the prompt cache, latency, fault injection, the request log.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { BoundedMap } from '../store/bounded-map.js';
import { PromptCache } from './cache.js';

export interface SimOptions {
  /** Output tokens of each answer unless a request says otherwise (header x-sim-output-tokens). */
  outputTokens: number;
  /** Delay before the first byte of an answer. */
  latencyMs: number;
  /** Delay between stream events. */
  chunkDelayMs: number;
  /** Characters per streamed text delta. */
  chunkChars: number;
  /** Smallest prefix, in tokens, that the prompt cache keeps. */
  cacheMinTokens: number;
  /** How many received requests GET /sim/requests keeps. */
  requestLogMax: number;
}

export const DEFAULT_SIM_OPTIONS: SimOptions = {
  outputTokens: 200,
  latencyMs: 0,
  chunkDelayMs: 0,
  chunkChars: 64,
  cacheMinTokens: 1_024,
  requestLogMax: 200,
};

export type Fault = '500' | '503' | '529' | 'malformed' | 'hang' | 'reset' | 'slow';

export interface LoggedRequest {
  path: string;
  /** Which auth style was used; never the key itself. */
  auth: 'x-api-key' | 'x-goog-api-key' | 'key-param' | 'bearer' | 'none';
  headers: Record<string, string>;
  /** The body exactly as received. */
  raw: string;
}

const SECRET_HEADERS = new Set(['x-api-key', 'x-goog-api-key', 'authorization', 'x-envelope-key', 'cookie']);

export class SimContext {
  readonly options: SimOptions;
  readonly cache: PromptCache;
  readonly log: LoggedRequest[] = [];
  /** OpenAI Responses kept for previous_response_id: each one's context and output items. */
  readonly responses = new BoundedMap<string, Record<string, unknown>[]>(2_000);
  private counter = 0;

  constructor(options: Partial<SimOptions> = {}) {
    this.options = { ...DEFAULT_SIM_OPTIONS, ...options };
    this.cache = new PromptCache(this.options.cacheMinTokens);
  }

  nextId(prefix: string): string {
    this.counter++;
    return `${prefix}${String(this.counter).padStart(8, '0')}`;
  }

  /**
   * Whether the scripted agent heeds the budget it is told (the default) or, with header `x-sim-agent:
   * ignores-budget`, works on regardless: how an agent that never reads the countdown behaves.
   */
  heedsBudget(req: FastifyRequest): boolean {
    return req.headers['x-sim-agent'] !== 'ignores-budget';
  }

  outputTokensFor(req: FastifyRequest): number {
    const h = req.headers['x-sim-output-tokens'];
    const n = Number(Array.isArray(h) ? h[0] : h);
    return Number.isInteger(n) && n > 0 ? n : this.options.outputTokens;
  }

  /** Reasoning (thinking) tokens to report, from header x-sim-reasoning-tokens (0 without it). */
  reasoningTokensFor(req: FastifyRequest): number {
    const h = req.headers['x-sim-reasoning-tokens'];
    const n = Number(Array.isArray(h) ? h[0] : h);
    return Number.isInteger(n) && n > 0 ? n : 0;
  }

  record(req: FastifyRequest, raw: string): void {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers[k] = SECRET_HEADERS.has(k) ? '[redacted]' : Array.isArray(v) ? v.join(', ') : v;
    }
    const h = req.headers;
    const auth = h['x-api-key'] ? 'x-api-key' : h['x-goog-api-key'] ? 'x-goog-api-key' : h.authorization ? 'bearer' : /[?&]key=/.test(req.url) ? 'key-param' : 'none';
    // Gemini's ?key= is a secret too: the path is logged without it.
    this.log.push({ path: req.url.replace(/([?&]key=)[^&]*/, '$1[redacted]'), auth, headers, raw });
    if (this.log.length > this.options.requestLogMax) this.log.shift();
  }

  chunk(text: string): string[] {
    const out: string[] = [];
    for (let i = 0; i < text.length; i += this.options.chunkChars) out.push(text.slice(i, i + this.options.chunkChars));
    return out.length ? out : [''];
  }

  async firstByteDelay(): Promise<void> {
    if (this.options.latencyMs > 0) await sleep(this.options.latencyMs);
  }

  async chunkDelay(): Promise<void> {
    if (this.options.chunkDelayMs > 0) await sleep(this.options.chunkDelayMs);
  }

  /**
   * Applies header x-sim-fault: answers with an error, a malformed body or never ('handled'); asks the route
   * to reset the connection mid-answer ('reset'); or only slows down (null).
   */
  async fault(req: FastifyRequest, reply: FastifyReply, error: (status: number, type: string, message: string) => unknown): Promise<'handled' | 'reset' | null> {
    const h = req.headers['x-sim-fault'];
    const fault = (Array.isArray(h) ? h[0] : h) as Fault | undefined;
    switch (fault) {
      case '500':
        return void error(500, 'api_error', 'simulated internal error'), 'handled';
      case '503':
        return void error(503, 'api_error', 'simulated unavailable'), 'handled';
      case '529':
        return void error(529, 'overloaded_error', 'simulated overload'), 'handled';
      case 'malformed':
        void reply.code(200).header('content-type', 'application/json').send('{"id":"msg_trunc');
        return 'handled';
      case 'hang':
        reply.hijack();
        return 'handled';
      case 'reset':
        return 'reset';
      case 'slow':
        await sleep(1_500);
        return null;
      default:
        return null;
    }
  }
}
