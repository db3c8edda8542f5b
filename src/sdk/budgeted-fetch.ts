// The gateway's pipeline, in-process: a `fetch` for the official SDKs (installed with `withOptions({ fetch })`)
// that budgets every model call exactly as `envelope serve` does — reserve, countdown, forward, settle.
import { createParser } from 'eventsource-parser';
import { EnvelopeError, isEnvelopeError } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';
import type { Ledger } from '../ledger/ledger.js';
import { DEFAULT_CALL_POLICY, finishCall, startCall, withBeta, type CallPolicy } from '../pipeline/budgeted-call.js';
import type { NativeBudgetTurns } from '../pipeline/native-budgets.js';
import { anthropic } from '../providers/anthropic.js';
import { pushEvent, type Dialect } from '../providers/dialect.js';
import { openai } from '../providers/openai.js';

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface BudgetedFetchOptions {
  ledger: Ledger;
  taskId: string;
  turns: NativeBudgetTurns;
  policy?: CallPolicy;
  /** The fetch that reaches the provider (the SDK's own, or the global one). */
  base: Fetch;
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

/**
 * The provider's stream, unbuffered, with its usage read as it passes. Settles when the stream ends; if the
 * caller stops reading, the rest is still read so the ledger is charged for everything generated.
 */
function meteredStream(body: ReadableStream<Uint8Array>, dialect: Dialect, settle: (usage: Usage | null) => Promise<unknown>): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const meter = dialect.streamMeter();
  const parser = createParser({ onEvent: (ev) => pushEvent(meter, ev.event, ev.data) });
  const decoder = new TextDecoder();
  let settled: Promise<unknown> | null = null;
  const finish = (): Promise<unknown> => (settled ??= settle(meter.usage()));
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          await finish();
          controller.close();
          return;
        }
        parser.feed(decoder.decode(value, { stream: true }));
        controller.enqueue(value);
      } catch (e) {
        await finish();
        controller.error(e);
      }
    },
    async cancel() {
      try {
        for (let r = await reader.read(); !r.done; r = await reader.read()) parser.feed(decoder.decode(r.value, { stream: true }));
      } catch {
        // the provider's stream broke: charge what was seen
      }
      await finish();
    },
  });
}

export function budgetedFetch(opts: BudgetedFetchOptions): Fetch {
  const { ledger, taskId, turns, base } = opts;
  const policy = opts.policy ?? DEFAULT_CALL_POLICY;
  return async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const dialect = dialectFor(url);
    if (!dialect || (init?.method ?? 'GET').toUpperCase() !== 'POST' || typeof init?.body !== 'string') return base(input, init);
    let started;
    try {
      const body = JSON.parse(init.body) as Record<string, unknown>;
      const shape = dialect.parse(body);
      started = await startCall({ ledger, dialect, taskId, scope: {}, body, shape, bodyBytes: Buffer.byteLength(init.body), policy, turns });
    } catch (e) {
      if (isEnvelopeError(e)) return errorResponse(dialect, e);
      if (e instanceof SyntaxError) return errorResponse(dialect, new EnvelopeError('invalid_request', 'the request body is not valid JSON'));
      throw e;
    }
    const headers = new Headers(init.headers);
    if (started.betaHeader) headers.set('anthropic-beta', withBeta(headers.get('anthropic-beta') ?? undefined, started.betaHeader));
    if (dialect === openai && started.body.stream === true) headers.set('accept', 'text/event-stream');
    let res: Response;
    try {
      res = await base(input, { ...init, headers, body: JSON.stringify(started.body) });
    } catch (e) {
      await ledger.release(started.reservationId);
      throw e;
    }
    const settle = (usage: Usage | null): Promise<unknown> => finishCall(ledger, started.reservationId, usage);
    if (!res.ok || !res.body) {
      await settle(null);
      return res;
    }
    if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      return new Response(meteredStream(res.body, dialect, settle), { status: res.status, statusText: res.statusText, headers: passHeaders(res) });
    }
    const text = await res.text();
    let usage: Usage | null = null;
    try {
      usage = dialect.usageFromResponse(JSON.parse(text));
    } catch {
      usage = null;
    }
    await settle(usage);
    return new Response(text, { status: res.status, statusText: res.statusText, headers: passHeaders(res) });
  };
}
