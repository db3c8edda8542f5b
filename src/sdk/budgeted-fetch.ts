// The gateway's pipeline, in-process: a `fetch` for the official SDKs (installed with `withOptions({ fetch })`)
// that budgets every model call exactly as `envelope serve` does — reserve, countdown, forward, settle.
import { createParser } from 'eventsource-parser';
import { EnvelopeError, isEnvelopeError } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';
import type { Ledger } from '../ledger/ledger.js';
import { DEFAULT_CALL_POLICY, finishCall, startCall, withBeta, type CallPolicy } from '../pipeline/budgeted-call.js';
import { CallSpan } from '../pipeline/call-span.js';
import type { NativeBudgetTurns } from '../pipeline/native-budgets.js';
import { anthropic } from '../providers/anthropic.js';
import { pushEvent, type Dialect } from '../providers/dialect.js';
import { openai } from '../providers/openai.js';
import { DEFAULT_DRAIN_TIMEOUT_MS, metered, ProviderCall, unlessAborted, type Metered } from './metered-stream.js';

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface BudgetedFetchOptions {
  ledger: Ledger;
  taskId: string;
  turns: NativeBudgetTurns;
  policy?: CallPolicy;
  /** The fetch that reaches the provider (the SDK's own, or the global one). */
  base: Fetch;
  /** After the caller gives up on a call, keep reading the provider's answer this long to learn its usage. */
  drainTimeoutMs?: number;
}

function dialectFor(url: URL): Dialect | null {
  if (url.pathname.endsWith('/messages')) return anthropic;
  if (url.pathname.endsWith('/chat/completions')) return openai;
  return null;
}

function errorResponse(dialect: Dialect, e: EnvelopeError): Response {
  return new Response(JSON.stringify(dialect.errorBody(e.code, e.message)), {
    status: e.httpStatus,
    headers: { 'content-type': 'application/json' },
  });
}

/** The provider's headers minus those that described the bytes on the wire (fetch already decoded them). */
function passHeaders(res: Response): Headers {
  const headers = new Headers(res.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  return headers;
}

/** The provider's SSE stream, metered: its usage events are read as they pass. */
function meteredSse(body: ReadableStream<Uint8Array>, dialect: Dialect, settle: (usage: Usage | null) => Promise<unknown>): Metered<Uint8Array> {
  const meter = dialect.streamMeter();
  const parser = createParser({ onEvent: (ev) => pushEvent(meter, ev.event, ev.data) });
  const decoder = new TextDecoder();
  return metered(body, (chunk) => parser.feed(decoder.decode(chunk, { stream: true })), () => settle(meter.usage()));
}

export function budgetedFetch(opts: BudgetedFetchOptions): Fetch {
  const { ledger, taskId, turns, base } = opts;
  const policy = opts.policy ?? DEFAULT_CALL_POLICY;
  const drainTimeoutMs = opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  return async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const dialect = dialectFor(url);
    if (!dialect || (init?.method ?? 'GET').toUpperCase() !== 'POST' || typeof init?.body !== 'string') return base(input, init);
    let started;
    // The call's span, a child of the caller's active span (if its host registered a tracer provider).
    let span: CallSpan | null = null;
    try {
      const body = JSON.parse(init.body) as Record<string, unknown>;
      const shape = dialect.parse(body);
      span = CallSpan.start('library', dialect.name, taskId, shape);
      started = await startCall({ ledger, dialect, taskId, scope: {}, body, shape, bodyBytes: Buffer.byteLength(init.body), policy, turns, span });
    } catch (e) {
      if (isEnvelopeError(e)) {
        span?.refused(e);
        span?.end();
        return errorResponse(dialect, e);
      }
      span?.end();
      if (e instanceof SyntaxError) return errorResponse(dialect, new EnvelopeError('invalid_request', 'the request body is not valid JSON'));
      throw e;
    }
    const callSpan = span!;
    const headers = new Headers(init.headers);
    if (started.betaHeader) headers.set('anthropic-beta', withBeta(headers.get('anthropic-beta') ?? undefined, started.betaHeader));
    if (dialect === openai && started.body.stream === true) headers.set('accept', 'text/event-stream');

    // The provider call runs on its own signal: when the caller gives up, it goes on (for the drain timeout) so
    // the ledger learns what was generated, exactly as the gateway keeps reading after its client disconnects.
    const call = new ProviderCall(drainTimeoutMs);
    // The span ends once the call is settled: a stream's after its last event, or after the drain if the caller left.
    const settle = (usage: Usage | null): Promise<unknown> =>
      finishCall(ledger, started.reservationId, usage, callSpan).finally(() => {
        call.done();
        callSpan.end();
      });
    const signal = init.signal;
    let sse: Metered<Uint8Array> | null = null;
    const work = (async (): Promise<Response> => {
      let res: Response;
      try {
        res = await base(input, { ...init, headers, body: JSON.stringify(started.body), signal: call.signal });
      } catch (e) {
        callSpan.fault('upstream_unreachable', (e as Error).message);
        await settle(null);
        throw e;
      }
      callSpan.upstream(res.status);
      if (!res.ok || !res.body) {
        await settle(null);
        return res;
      }
      if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) {
        sse = meteredSse(res.body, dialect, settle);
        // A caller that gave up before the answer came will never read it: drain it now.
        if (signal?.aborted) void sse.abandon();
        return new Response(sse.stream, { status: res.status, statusText: res.statusText, headers: passHeaders(res) });
      }
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        callSpan.fault('upstream_broken', (e as Error).message);
        await settle(null);
        throw e;
      }
      let usage: Usage | null = null;
      try {
        usage = dialect.usageFromResponse(JSON.parse(text));
      } catch {
        usage = null;
      }
      if (usage === null) callSpan.fault('upstream_malformed', 'the provider answered without a JSON body with usage');
      await settle(usage);
      return new Response(text, { status: res.status, statusText: res.statusText, headers: passHeaders(res) });
    })();
    // After the answer arrives, the caller's abort (a `break` out of an SDK stream aborts it too) abandons the stream.
    signal?.addEventListener(
      'abort',
      () => {
        if (!sse) return;
        callSpan.callerLeft();
        call.callerLeft();
        void sse.abandon();
      },
      { once: true },
    );
    return unlessAborted(work, signal, () => {
      callSpan.callerLeft();
      call.callerLeft();
    });
  };
}
