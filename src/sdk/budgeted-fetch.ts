// The gateway's pipeline, in-process: a `fetch` for the official SDKs (installed with `withOptions({ fetch })`, or
// @google/genai's `httpOptions.fetch`) that budgets every model call exactly as `envelope serve` does — the same
// steps (pipeline/run-call.ts), with this carrier sending the call through the SDK's own fetch.
import { createParser } from 'eventsource-parser';
import { EnvelopeError, isEnvelopeError, retryHeaders } from '../budget/errors.js';
import { BudgetedCall, runCall, type Answer, type CallEnv, type Carrier, type TaskRef } from '../pipeline/run-call.js';
import { jsonCharge, pushEvent, streamCharge, type Provider, type ProviderRoute } from '../providers/provider.js';
import { checkDepth } from '../providers/body-depth.js';
import { callAtUrl } from '../providers/registry.js';
import { InProcessAnswer } from './in-process.js';

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface BudgetedFetchOptions {
  env: CallEnv;
  taskId: string;
  /** The fetch that reaches the provider (the SDK's own, or the global one). */
  base: Fetch;
  /** After the caller gives up on a call, keep reading the provider's answer this long to learn its usage. */
  drainTimeoutMs?: number;
}

function errorResponse(provider: Provider, e: EnvelopeError): Response {
  return new Response(JSON.stringify(provider.errorBody(e.code, e.message)), {
    status: e.httpStatus,
    // A rate limit says when to try again: the SDK's own retries then wait for it.
    headers: { 'content-type': 'application/json', ...retryHeaders(e) },
  });
}

/** The provider's headers minus those that described the bytes on the wire (fetch already decoded them). */
function passHeaders(res: Response): Headers {
  const headers = new Headers(res.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  return headers;
}

export function budgetedFetch(opts: BudgetedFetchOptions): Fetch {
  return async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const served = callAtUrl((init?.method ?? 'GET').toUpperCase(), url.pathname);
    if (!served || typeof init?.body !== 'string') return opts.base(input, init);
    const { provider } = served;
    let body: unknown;
    try {
      body = JSON.parse(init.body);
    } catch {
      return errorResponse(provider, new EnvelopeError('invalid_request', 'the request body is not valid JSON'));
    }
    try {
      checkDepth(body);
    } catch (e) {
      return errorResponse(provider, e as EnvelopeError);
    }
    const answer = new InProcessAnswer<Response>(init.signal, opts.drainTimeoutMs);
    const call = new BudgetedCall<unknown>(opts.env, provider, body, Buffer.byteLength(init.body), url.pathname, {});
    void runCall(call, new FetchCarrier(opts, provider, input, init, answer, served.route));
    return answer.result(call);
  };
}

class FetchCarrier implements Carrier<unknown> {
  readonly name = 'library';

  constructor(
    private readonly opts: BudgetedFetchOptions,
    private readonly provider: Provider,
    private readonly input: string | URL | Request,
    private readonly init: RequestInit,
    private readonly answer: InProcessAnswer<Response>,
    private readonly route: ProviderRoute,
  ) {}

  /** Asks the provider with the client's own headers and fetch (an exact token count); throws on an error status. */
  async ask(_call: BudgetedCall<unknown>, path: string, body: unknown): Promise<unknown> {
    const url = new URL(typeof this.input === 'string' ? this.input : this.input instanceof URL ? this.input.href : this.input.url);
    // The client's base URL: the call's URL without the provider path it ends in.
    const prefix = typeof this.route.path === 'string' ? url.pathname.slice(0, url.pathname.length - this.route.path.length) : '';
    const res = await this.opts.base(new URL(prefix + path, url.origin).href, { method: 'POST', headers: this.init.headers, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`the provider answered ${res.status}`);
    return (await res.json()) as unknown;
  }

  identify(): TaskRef {
    return { id: this.opts.taskId, create: null };
  }

  async forward(call: BudgetedCall<unknown>): Promise<Answer> {
    const { provider, answer } = this;
    const headers = new Headers(this.init.headers);
    if (call.plan) provider.callHeaders?.({ get: (n) => headers.get(n) ?? undefined, set: (n, v) => headers.set(n, v) }, call.shape!, call.plan);
    let res: Response;
    try {
      // The provider call runs on its own signal: when the caller gives up, it goes on (for the drain timeout) so the
      // ledger learns what was generated, exactly as the gateway keeps reading after its client disconnects.
      res = await this.opts.base(this.input, { ...this.init, headers, body: JSON.stringify(call.outgoing), signal: answer.upstream.signal });
    } catch (e) {
      call.span?.fault('upstream_unreachable', (e as Error).message);
      throw e;
    }
    call.span?.upstream(res.status);
    call.status = res.status;
    if (!res.ok || !res.body) return { usage: null, finish: () => answer.respond(res) };
    const init = { status: res.status, statusText: res.statusText, headers: passHeaders(res) };
    if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      const meter = provider.streamMeter();
      const parser = createParser({ onEvent: (ev) => pushEvent(meter, ev.event, ev.data) });
      const decoder = new TextDecoder();
      const { stream, ended } = answer.meter(res.body, (chunk: Uint8Array) => parser.feed(decoder.decode(chunk, { stream: true })));
      answer.respond(new Response(stream, init));
      await ended;
      // A stream that ended without its usage (cut, or a server that leaves it out) is charged what it delivered.
      return { ...streamCharge(meter), responseId: meter.responseId?.() ?? null };
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      call.span?.fault('upstream_broken', (e as Error).message);
      throw e;
    }
    const charge = jsonCharge(provider, text);
    if (charge === null) call.span?.fault('upstream_malformed', 'the provider answered without a JSON body');
    else if (charge.usage === null) call.span?.fault('upstream_no_usage', 'the provider answered without usage: charged an estimate of what it delivered');
    return { ...(charge ?? { usage: null }), finish: () => answer.respond(new Response(text, init)) };
  }

  fail(_call: BudgetedCall<unknown>, e: unknown): void {
    // A refusal is the provider's own error response, which the SDK turns into its APIError; anything else is thrown.
    if (isEnvelopeError(e)) this.answer.respond(errorResponse(this.provider, e));
    else this.answer.fail(e);
  }

  end(): void {
    this.answer.end();
  }
}
