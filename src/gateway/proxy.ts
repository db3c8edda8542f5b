// The provider routes: one handler for every dialect. identify the task → validate → reserve → inject →
// forward → settle, with each step a plain function elsewhere (pipeline/, providers/, task-ref.ts).
import { context as otelContext, propagation } from '@opentelemetry/api';
import { createParser } from 'eventsource-parser';
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { EnvelopeError, isEnvelopeError } from '../budget/errors.js';
import type { TaskRow, Usage } from '../budget/types.js';
import type { Ledger, Scope } from '../ledger/ledger.js';
import { finishCall, startCall, withBeta, type StartedCall } from '../pipeline/budgeted-call.js';
import { CallSpan } from '../pipeline/call-span.js';
import type { NativeBudgetTurns } from '../pipeline/native-budgets.js';
import { pushEvent, type CallShape, type Dialect } from '../providers/dialect.js';
import { callerTenant } from './auth.js';
import { budgetHeaders, closingComment } from './budget-headers.js';
import { parseJson, sendWhole } from './http-io.js';
import type { GatewayOptions } from './options.js';
import { taskRefOf, type TaskRef } from './task-ref.js';
import { downstreamHeaders, upstreamHeaders, type Upstream, type UpstreamReply, type UpstreamTarget } from './upstream.js';

export interface ProxyContext {
  ledger: Ledger;
  upstream: Upstream;
  options: GatewayOptions;
  turns: NativeBudgetTurns;
  /** The gateway's log: its own faults, and a line per call at info (never a request's headers: they hold API keys). */
  log: { error(e: unknown): void; info(fields: Record<string, unknown>, message: string): void };
  /** Told about every finished call (metrics); never throws into the request. */
  observe?: (call: ObservedCall) => void;
}

export interface ObservedCall {
  dialect: string;
  tenant: string;
  taskId: string | null;
  model: string | null;
  status: number;
  usage: Usage | null;
  refused: boolean;
  durationMs: number;
}

/** Sends an error in the provider's own shape. */
export function sendError(res: ServerResponse, dialect: Dialect, e: EnvelopeError, extra: Record<string, string> = {}): void {
  sendWhole(res, e.httpStatus, { 'content-type': 'application/json', ...extra }, JSON.stringify(dialect.errorBody(e.code, e.message)), e.code === 'request_too_large');
}

async function reserveFor(ctx: ProxyContext, ref: TaskRef, scope: Scope, args: Omit<Parameters<typeof startCall>[0], 'ledger' | 'taskId' | 'scope' | 'turns' | 'policy'>): Promise<StartedCall> {
  const start = (): Promise<StartedCall> =>
    startCall({ ...args, ledger: ctx.ledger, taskId: ref.id, scope, policy: ctx.options.call, turns: ctx.turns });
  try {
    return await start();
  } catch (e) {
    // First sight of a task that the headers or the body describe: create it, then reserve.
    if (!isEnvelopeError(e) || e.code !== 'not_found' || ref.create === null) throw e;
    await ctx.ledger.createTask(ref.create, scope);
    return start();
  }
}

/** One budgeted model call: `raw` is the request body as the client sent it. */
export async function handleModelCall(
  ctx: ProxyContext,
  dialect: Dialect,
  to: UpstreamTarget,
  reqHeaders: IncomingHttpHeaders,
  raw: Buffer,
  res: ServerResponse,
): Promise<void> {
  const startedAtMs = performance.now();
  let tenant = 'default';
  let taskId: string | null = null;
  let shape: CallShape | null = null;
  const observe = (status: number, usage: Usage | null, refused: boolean): void => {
    ctx.observe?.({ dialect: dialect.name, tenant, taskId, model: shape?.model ?? null, status, usage, refused, durationMs: performance.now() - startedAtMs });
  };

  let started: StartedCall | null = null;
  // The call's span, once it names a task; a client's traceparent (with a propagator registered) is its parent.
  let span: CallSpan | null = null;
  let body: Record<string, unknown>;
  const headers = upstreamHeaders(reqHeaders);
  try {
    tenant = callerTenant(reqHeaders, ctx.options);
    const parsed = parseJson(raw);
    shape = dialect.parse(parsed);
    body = parsed as Record<string, unknown>;
    const ref = taskRefOf(reqHeaders, shape, tenant);
    if (ref === null && ctx.options.requireTask) {
      throw new EnvelopeError('invalid_request', 'this gateway requires a task: send x-envelope-task (and x-envelope-budget to create it)');
    }
    if (ref !== null) {
      taskId = ref.id;
      span = CallSpan.start('gateway', dialect.name, ref.id, shape, propagation.extract(otelContext.active(), reqHeaders));
      started = await reserveFor(ctx, ref, { tenant }, { dialect, body, shape, bodyBytes: raw.length, span });
      body = started.body;
      if (started.betaHeader) headers['anthropic-beta'] = withBeta(headers['anthropic-beta'], started.betaHeader);
      // The provider's side of the trace hangs under this call's span, not the client's.
      span.inject(headers);
    } else {
      body = dialect.strip(body);
    }
  } catch (e) {
    if (!isEnvelopeError(e)) throw e;
    const row = taskId && e.httpStatus === 402 ? await ctx.ledger.findTask(taskId, { tenant }) : undefined;
    sendError(res, dialect, e, row ? budgetHeaders(row) : {});
    observe(e.httpStatus, null, e.httpStatus === 402);
    span?.refused(e, row);
    span?.end();
    return;
  }

  const reservationId = started?.reservationId ?? null;
  const release = async (): Promise<void> => {
    if (reservationId) await ctx.ledger.release(reservationId);
  };
  let upstream: UpstreamReply;
  try {
    upstream = await ctx.upstream.post(to, headers, JSON.stringify(body));
  } catch (e) {
    await release();
    const message = `upstream ${to.host} did not answer: ${(e as Error).message}`;
    sendError(res, dialect, new EnvelopeError('upstream_error', message));
    observe(502, null, false);
    span?.fault('upstream_unreachable', message);
    span?.end();
    return;
  }
  span?.upstream(upstream.statusCode);

  const isStream = String(upstream.headers['content-type'] ?? '').includes('text/event-stream');
  if (!isStream) {
    await relayJson(ctx, dialect, res, upstream, reservationId, started, span, (status, usage) => observe(status, usage, false));
    span?.end();
    return;
  }
  // The span ends when the stream is settled: after its last event, or after the drain when the client left.
  await relayStream(ctx, dialect, res, upstream, reservationId, started, span, (status, usage) => observe(status, usage, false));
  span?.end();
}

async function relayJson(
  ctx: ProxyContext,
  dialect: Dialect,
  res: ServerResponse,
  upstream: UpstreamReply,
  reservationId: string | null,
  started: StartedCall | null,
  span: CallSpan | null,
  observe: (status: number, usage: Usage | null) => void,
): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await upstream.whole();
  } catch (e) {
    if (reservationId) await ctx.ledger.release(reservationId);
    sendError(res, dialect, new EnvelopeError('upstream_error', `upstream connection failed: ${(e as Error).message}`));
    observe(502, null);
    span?.fault('upstream_broken', `upstream connection failed: ${(e as Error).message}`);
    return;
  }
  let usage: Usage | null = null;
  if (upstream.statusCode < 400) {
    try {
      usage = dialect.usageFromResponse(JSON.parse(bytes.toString('utf8')));
    } catch {
      usage = null;
    }
    if (usage === null) {
      if (reservationId) await ctx.ledger.release(reservationId);
      sendError(res, dialect, new EnvelopeError('upstream_error', 'upstream returned a malformed response (no JSON body with usage)'));
      observe(502, null);
      span?.fault('upstream_malformed', 'upstream returned a malformed response (no JSON body with usage)');
      return;
    }
  }
  // An upstream error generated nothing: its hold goes back. Its body passes through in the provider's shape.
  const leaf = reservationId ? await finishCall(ctx.ledger, reservationId, usage, span ?? undefined) : null;
  const row = leaf ?? started?.grant.path.at(-1);
  const out: OutgoingHttpHeaders = downstreamHeaders(upstream.headers);
  if (row) Object.assign(out, budgetHeaders(await freshRow(ctx, row, leaf)));
  sendWhole(res, upstream.statusCode, out, bytes);
  observe(upstream.statusCode, usage);
}

/** After a release the grant's copy is stale; re-read so headers show the ledger as it is. */
async function freshRow(ctx: ProxyContext, row: TaskRow, settled: TaskRow | null): Promise<TaskRow> {
  return settled ?? (await ctx.ledger.findTask(row.id)) ?? row;
}

async function relayStream(
  ctx: ProxyContext,
  dialect: Dialect,
  res: ServerResponse,
  upstream: UpstreamReply,
  reservationId: string | null,
  started: StartedCall | null,
  span: CallSpan | null,
  observe: (status: number, usage: Usage | null) => void,
): Promise<void> {
  const before = started?.grant.path.at(-1);
  res.writeHead(upstream.statusCode, { ...downstreamHeaders(upstream.headers), ...(before ? budgetHeaders(before) : {}) });
  const meter = dialect.streamMeter();
  const parser = createParser({ onEvent: (ev) => pushEvent(meter, ev.event, ev.data) });
  const decoder = new TextDecoder();
  let clientGone = false;
  let drainTimer: NodeJS.Timeout | undefined;
  res.on('close', () => {
    if (res.writableFinished) return;
    // Keep reading: the provider bills what it generates, so the ledger must learn the real usage.
    clientGone = true;
    span?.callerLeft();
    drainTimer = setTimeout(() => upstream.abort(), ctx.options.drainTimeoutMs);
  });
  let broken: Error | null = null;
  try {
    for await (const chunk of upstream.chunks()) {
      if (!clientGone) res.write(chunk);
      parser.feed(decoder.decode(chunk, { stream: true }));
    }
  } catch (e) {
    broken = e as Error;
  } finally {
    clearTimeout(drainTimer);
  }
  const usage = upstream.statusCode < 400 ? meter.usage() : null;
  let leaf: TaskRow | null = null;
  if (reservationId) leaf = await finishCall(ctx.ledger, reservationId, usage, span ?? undefined);
  if (broken && !meter.complete) span?.fault('upstream_stream_broken', `upstream stream broke: ${broken.message}`);
  if (!clientGone) {
    if (broken && !meter.complete) {
      const err = dialect.errorBody('upstream_error', `upstream stream broke: ${broken.message}`);
      res.write(dialect.name === 'anthropic' ? `event: error\ndata: ${JSON.stringify(err)}\n\n` : `data: ${JSON.stringify(err)}\n\n`);
    }
    const row = leaf ?? (before ? await ctx.ledger.findTask(before.id) : undefined);
    if (row) res.write(closingComment(row));
    res.end();
  }
  observe(upstream.statusCode, usage);
}
