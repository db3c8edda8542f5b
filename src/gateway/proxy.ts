// The gateway as a carrier of the budgeted-call pipeline (pipeline/run-call.ts): which task the caller's headers name,
// the call sent upstream on undici, the provider's answer relayed back (JSON whole, SSE as it comes) with the budget
// headers and the closing comment, and errors in the provider's own shape.
import { context as otelContext, propagation } from '@opentelemetry/api';
import { createParser } from 'eventsource-parser';
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { EnvelopeError, isEnvelopeError, retryHeaders } from '../budget/errors.js';
import type { TaskRow, Usage } from '../budget/types.js';
import type { Ledger } from '../ledger/ledger.js';
import { BudgetedCall, runCall, type Answer, type CallEnv, type Carrier, type TaskRef } from '../pipeline/run-call.js';
import { jsonCharge, pushEvent, streamCharge, type HeaderBag, type Provider } from '../providers/provider.js';
import { callerTenant } from './auth.js';
import type { BodyBudget } from './body-budget.js';
import { storeIdOf } from '../budget/spec.js';
import { budgetHeaders, closingComment } from './budget-headers.js';
import { sendWhole } from './http-io.js';
import type { GatewayOptions } from './options.js';
import { taskRefOf } from './task-ref.js';
import { downstreamHeaders, upstreamHeaders, type Upstream, type UpstreamReply, type UpstreamTarget } from './upstream.js';
import { WireBody, wireDialect } from './wire-body.js';

export interface ProxyContext {
  ledger: Ledger;
  upstream: Upstream;
  options: GatewayOptions;
  /** What every call shares: the ledger, the call policy, native-budget turns. */
  env: CallEnv;
  /** Memory for request bodies in flight, shared by every model call. */
  bodies: BodyBudget;
  /** The gateway's log: its own faults, and a line per call at info (never a request's headers: they hold API keys). */
  log: { error(e: unknown): void; info(fields: Record<string, unknown>, message: string): void };
  /** Told about every finished call (metrics); never throws into the request. */
  observe?: (call: ObservedCall) => void;
}

export interface ObservedCall {
  dialect: string;
  /** The route the call came on, as the provider labels it (`/v1/messages`, `/v1beta/models/{model}:generateContent|…`). */
  route: string;
  tenant: string;
  taskId: string | null;
  model: string | null;
  status: number;
  usage: Usage | null;
  refused: boolean;
  /** A rate limit refused the call (429): whose (tenant or task) and which (tpm or rpm). */
  rateLimited: { scope: string; limit: string } | null;
  durationMs: number;
  /** Why the body was parsed whole rather than read by its provider's scan (issue 16), or null when it was scanned. */
  bodyFallback: string | null;
}

/** Sends an error in the provider's own shape. */
export function sendError(res: ServerResponse, provider: Provider, e: EnvelopeError, extra: Record<string, string> = {}): void {
  sendWhole(res, e.httpStatus, { 'content-type': 'application/json', ...extra }, JSON.stringify(provider.errorBody(e.code, e.message)), e.code === 'request_too_large');
}

const bagOf = (h: Record<string, string>): HeaderBag => ({ get: (name) => h[name], set: (name, value) => void (h[name] = value) });

/** One budgeted model call: `raw` is the request body as the client sent it, `path` the provider's path it came on. */
export async function handleModelCall(
  ctx: ProxyContext,
  provider: Provider,
  route: string,
  to: UpstreamTarget,
  reqHeaders: IncomingHttpHeaders,
  raw: Buffer,
  res: ServerResponse,
  path: string,
  /** Where another path of the same provider goes upstream (an exact token count). */
  upstreamFor: (path: string) => UpstreamTarget,
): Promise<void> {
  const carrier = new GatewayCarrier(ctx, provider, route, to, reqHeaders, res, upstreamFor);
  const body = WireBody.read(provider, raw, path);
  carrier.bodyFallback = body.fallback;
  try {
    carrier.tenant = callerTenant(reqHeaders, ctx.options);
    // A body the scan could not read is parsed now: one that is not JSON is refused before anything else.
    if (body.fallback !== null) body.parsed();
  } catch (e) {
    if (!isEnvelopeError(e)) throw e;
    sendError(res, provider, e);
    carrier.report(e.httpStatus, null, null, false, null, null);
    return;
  }
  const call = new BudgetedCall<WireBody>(ctx.env, wireDialect(provider), body, raw.length, path, { tenant: carrier.tenant }, propagation.extract(otelContext.active(), reqHeaders));
  await runCall(call, carrier);
}

class GatewayCarrier implements Carrier<WireBody> {
  readonly name = 'gateway';
  tenant = 'default';
  bodyFallback: string | null = null;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly provider: Provider,
    private readonly route: string,
    private readonly to: UpstreamTarget,
    private readonly reqHeaders: IncomingHttpHeaders,
    private readonly res: ServerResponse,
    private readonly upstreamFor: (path: string) => UpstreamTarget,
  ) {}

  /** Asks the provider (with the caller's own headers, the key among them) and reads its JSON answer; throws on an error status. */
  async ask(_call: BudgetedCall<WireBody>, path: string, body: unknown): Promise<unknown> {
    const reply = await this.ctx.upstream.post(this.upstreamFor(path), upstreamHeaders(this.reqHeaders), JSON.stringify(body));
    const bytes = await reply.whole();
    if (reply.statusCode !== 200) throw new Error(`the provider answered ${reply.statusCode}`);
    return JSON.parse(bytes.toString('utf8')) as unknown;
  }

  identify(call: BudgetedCall<WireBody>): TaskRef | null {
    const ref = taskRefOf(this.reqHeaders, call.shape!, this.tenant);
    if (ref === null && this.ctx.options.requireTask) {
      throw new EnvelopeError('invalid_request', 'this gateway requires a task: send x-envelope-task (and x-envelope-budget to create it)');
    }
    return ref;
  }

  async forward(call: BudgetedCall<WireBody>): Promise<Answer> {
    const headers = upstreamHeaders(this.reqHeaders);
    if (call.plan) this.provider.callHeaders?.(bagOf(headers), call.shape!, call.plan);
    // The provider's side of the trace hangs under this call's span, not the client's.
    call.span?.inject(headers);
    let upstream: UpstreamReply;
    try {
      upstream = await this.ctx.upstream.post(this.to, headers, call.outgoing.parts);
    } catch (e) {
      const message = `upstream ${this.to.host} did not answer: ${(e as Error).message}`;
      call.span?.fault('upstream_unreachable', message);
      throw new EnvelopeError('upstream_error', message);
    }
    call.span?.upstream(upstream.statusCode);
    call.status = upstream.statusCode;
    const isStream = String(upstream.headers['content-type'] ?? '').includes('text/event-stream');
    return isStream ? this.relayStream(call, upstream) : this.relayJson(call, upstream);
  }

  private async relayJson(call: BudgetedCall<WireBody>, upstream: UpstreamReply): Promise<Answer> {
    let bytes: Buffer;
    try {
      bytes = await upstream.whole();
    } catch (e) {
      call.span?.fault('upstream_broken', `upstream connection failed: ${(e as Error).message}`);
      throw new EnvelopeError('upstream_error', `upstream connection failed: ${(e as Error).message}`);
    }
    // An upstream error generated nothing: its hold goes back. Its body passes through in the provider's shape.
    let charge: ReturnType<typeof jsonCharge> = { usage: null, delivered: null, responseId: null };
    if (upstream.statusCode < 400) {
      charge = jsonCharge(this.provider, bytes.toString('utf8'));
      if (charge === null) {
        call.span?.fault('upstream_malformed', 'upstream returned a malformed response (no JSON body)');
        throw new EnvelopeError('upstream_error', 'upstream returned a malformed response (no JSON body)');
      }
      if (charge.usage === null) call.span?.fault('upstream_no_usage', 'upstream answered without usage: charged an estimate of what it delivered');
    }
    return {
      ...charge,
      finish: async (settled) => {
        const out: OutgoingHttpHeaders = downstreamHeaders(upstream.headers);
        const row = await this.current(call, settled);
        if (row) Object.assign(out, budgetHeaders(row, this.tenant));
        sendWhole(this.res, upstream.statusCode, out, bytes);
      },
    };
  }

  private async relayStream(call: BudgetedCall<WireBody>, upstream: UpstreamReply): Promise<Answer> {
    const { res, provider } = this;
    const before = call.leaf;
    res.writeHead(upstream.statusCode, { ...downstreamHeaders(upstream.headers), ...(before ? budgetHeaders(before, this.tenant) : {}) });
    const meter = provider.streamMeter();
    const parser = createParser({ onEvent: (ev) => pushEvent(meter, ev.event, ev.data) });
    const decoder = new TextDecoder();
    const drainTimeoutMs = this.ctx.options.drainTimeoutMs;
    let clientGone = false;
    let drainTimer: NodeJS.Timeout | undefined;
    let stallTimer: NodeJS.Timeout | undefined;
    res.on('close', () => {
      clearTimeout(stallTimer);
      if (res.writableFinished) return;
      // Keep reading: the provider bills what it generates, so the ledger must learn the real usage.
      clientGone = true;
      call.span?.callerLeft();
      upstream.resume();
      drainTimer = setTimeout(() => upstream.abort(), drainTimeoutMs);
    });
    // Backpressure: while the client is behind, the provider is not read (undici stops reading its socket); a client
    // that takes nothing for the drain timeout is cut off, and the rest is still read and charged.
    res.on('drain', () => {
      clearTimeout(stallTimer);
      upstream.resume();
    });
    let corked = false;
    const uncork = (): void => {
      corked = false;
      res.uncork();
    };
    const sink = {
      data: (chunk: Buffer): boolean => {
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (clientGone) return true;
        // Events that arrive together (one read of the provider's socket) leave in one write to the client.
        if (!corked) {
          corked = true;
          res.cork();
          process.nextTick(uncork);
        }
        if (res.write(chunk)) return true;
        clearTimeout(stallTimer);
        stallTimer = setTimeout(() => res.destroy(), drainTimeoutMs);
        return false;
      },
    };
    let broken: Error | null = null;
    try {
      await upstream.relay(sink);
    } catch (e) {
      broken = e as Error;
    } finally {
      clearTimeout(drainTimer);
      clearTimeout(stallTimer);
    }
    const cut = broken !== null && !meter.complete;
    if (cut) call.span?.fault('upstream_stream_broken', `upstream stream broke: ${broken!.message}`);
    // A stream that ended without its usage (cut, or a server that leaves it out) is charged what it delivered.
    return {
      ...(upstream.statusCode < 400 ? streamCharge(meter) : { usage: null }),
      responseId: meter.responseId?.() ?? null,
      finish: async (settled) => {
        if (clientGone) return;
        if (cut) res.write(provider.streamError('upstream_error', `upstream stream broke: ${broken!.message}`));
        const row = await this.current(call, settled);
        if (row) res.write(closingComment(row, this.tenant));
        res.end();
      },
    };
  }

  /** The task as it stands after the call: as settled, or re-read after a release (the grant's copy is stale). */
  private async current(call: BudgetedCall<WireBody>, settled: TaskRow | null): Promise<TaskRow | undefined> {
    const before = call.leaf;
    if (settled) return settled;
    return before ? ((await this.ctx.ledger.findTask(before.id)) ?? before) : undefined;
  }

  fail(call: BudgetedCall<WireBody>, e: unknown, row?: TaskRow): void {
    if (!isEnvelopeError(e)) this.ctx.log.error(e);
    if (this.res.headersSent) {
      // The answer had begun (a stream): it can only be cut off.
      this.res.destroy();
      return;
    }
    const error = isEnvelopeError(e) ? e : new EnvelopeError('internal', 'the gateway failed on this request (its log says why); try again');
    call.status = error.httpStatus;
    sendError(this.res, this.provider, error, { ...(row ? budgetHeaders(row, this.tenant) : {}), ...retryHeaders(error) });
  }

  end(call: BudgetedCall<WireBody>): void {
    this.report(call.status, call.ref ? storeIdOf(this.tenant, call.ref.id) : null, call.shape?.model ?? null, call.refused, call.usage, call.rateLimited);
  }

  report(status: number, taskId: string | null, model: string | null, refused: boolean, usage: Usage | null, rateLimited: ObservedCall['rateLimited']): void {
    this.ctx.observe?.({ dialect: this.provider.name, route: this.route, tenant: this.tenant, taskId, model, status, usage, refused, rateLimited, durationMs: performance.now() - this.startedAtMs, bodyFallback: this.bodyFallback });
  }

  private readonly startedAtMs = performance.now();
}
