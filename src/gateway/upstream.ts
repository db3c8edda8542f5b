// The HTTP client to the providers: undici's keep-alive pools on its dispatch API, streams relayed as they come.
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import { joinParts, partsLength, type BodyParts } from '../providers/json-scan.js';

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
export function downstreamHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_HEADERS.has(k)) continue;
    out[k] = v;
  }
  return out;
}

/** A provider endpoint, parsed once rather than on every call. */
export interface UpstreamTarget {
  origin: string;
  path: string;
  host: string;
}

export function upstreamTarget(url: string): UpstreamTarget {
  const u = new URL(url);
  return { origin: u.origin, path: u.pathname + u.search, host: u.host };
}

/** Where a relayed answer's bytes go, as they come. */
export interface ReplySink {
  /** One chunk of the answer; false asks for no more until `resume()` (the client is behind). */
  data(chunk: Buffer): boolean;
}

/** A provider's answer from its headers on: the body is read whole, or relayed chunk by chunk as it comes. */
export interface UpstreamReply {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** The whole body; rejects if the connection breaks before its end. */
  whole(): Promise<Buffer>;
  /**
   * Hands each chunk to `sink` as it arrives (synchronously, no buffering in between); resolves at the end of the
   * answer, rejects if the connection breaks first. While the sink is behind, the provider is not read.
   */
  relay(sink: ReplySink): Promise<void>;
  /** Reads the provider again after a sink said it was behind. */
  resume(): void;
  /** Stops reading (the client left and the drain timed out). */
  abort(): void;
}

/**
 * A body in pieces at least this long goes to the socket piece by piece (undici's iterable body, its length declared);
 * a shorter one is joined into one write, cheaper than the iterable's async steps.
 */
const PIECES_MIN_BYTES = 64 * 1024;

/** Chunks held while the reader is behind before the provider is paused. */
const MAX_BUFFERED_CHUNKS = 64;

/**
 * One call on undici's dispatch API: leaner per call than `request()`, whose body is a Readable stream. The
 * promise settles at the response headers; what follows is buffered for `whole()`, or handed to a relay's sink.
 */
class Call implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  /** Headers came: from now on a failure is the body's, not the call's. */
  private answered = false;
  private readonly buffered: Buffer[] = [];
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private paused = false;
  private maxBuffered = MAX_BUFFERED_CHUNKS;
  private sink: ReplySink | null = null;

  constructor(
    private readonly resolve: (r: UpstreamReply) => void,
    private readonly reject: (e: Error) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: informational; the answer follows
    this.controller = controller;
    this.answered = true;
    this.resolve({
      statusCode,
      headers,
      whole: () => this.whole(),
      relay: (sink) => this.relay(sink),
      resume: () => this.resume(),
      abort: () => controller.abort(new Error('stopped reading the provider\'s answer')),
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.sink) {
      if (!this.sink.data(chunk)) this.pause(controller);
      return;
    }
    this.buffered.push(chunk);
    if (this.buffered.length >= this.maxBuffered) this.pause(controller);
    this.notify();
  }

  private pause(controller: Dispatcher.DispatchController): void {
    if (this.paused) return;
    this.paused = true;
    controller.pause();
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.controller?.resume();
  }

  onResponseEnd(): void {
    this.ended = true;
    this.notify();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (!this.answered) this.reject(error);
    this.failure = error;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Waits for more of the answer; a paused provider is resumed first (which may deliver data at once). */
  private async more(): Promise<void> {
    if (this.paused) return this.resume();
    await new Promise<void>((r) => (this.wake = r));
  }

  private async whole(): Promise<Buffer> {
    // Read whole, an answer is never paused for being long.
    this.maxBuffered = Number.POSITIVE_INFINITY;
    while (!this.ended) {
      if (this.failure) throw this.failure;
      await this.more();
    }
    return this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
  }

  private async relay(sink: ReplySink): Promise<void> {
    // What came before the relay began goes first; from then on each chunk goes to the sink as undici delivers it.
    let behind = false;
    for (const chunk of this.buffered.splice(0)) behind = !sink.data(chunk) || behind;
    this.sink = sink;
    if (behind) this.pause(this.controller!);
    else this.resume();
    while (!this.ended) {
      if (this.failure) throw this.failure;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
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

  /** POSTs `body`; resolves at the response headers, rejects if none come (refused, reset, timed out). */
  post(to: UpstreamTarget, headers: Record<string, string>, body: string | Buffer | BodyParts): Promise<UpstreamReply> {
    return this.request('POST', to, headers, body);
  }

  request(method: 'GET' | 'POST', to: UpstreamTarget, headers: Record<string, string>, body: string | Buffer | BodyParts | null): Promise<UpstreamReply> {
    let sent: string | Buffer | Iterable<Buffer> | null = body as string | Buffer | null;
    if (body !== null && typeof body !== 'string' && !Buffer.isBuffer(body)) {
      const length = partsLength(body);
      if (body.length === 1 || length < PIECES_MIN_BYTES) sent = joinParts(body);
      else {
        headers['content-length'] = String(length);
        sent = body;
      }
    }
    return new Promise((resolve, reject) => {
      // undici takes an Iterable body (its docs list it) though its dispatch types do not.
      this.agent.dispatch({ origin: to.origin, path: to.path, method, headers, body: sent as Dispatcher.DispatchOptions['body'] }, new Call(resolve, reject));
    });
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
