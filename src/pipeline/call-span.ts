// One OpenTelemetry span per budgeted model call (`envelope.call`), with the OTel GenAI attributes where they fit
// and `envelope.*` for the budget, plus child spans for the ledger's reserve and settle. Only the API is used:
// whoever hosts Envelope registers a tracer provider (`envelope serve` does when an OTLP endpoint is set). With
// none, the API's tracer hands out non-recording spans and every method here returns at once, building nothing.
import { context as otelContext, INVALID_SPAN_CONTEXT, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import type { EnvelopeError } from '../budget/errors.js';
import { fromLedger, type ReserveGrant } from '../budget/rules.js';
import type { TaskRow, Usage } from '../budget/types.js';
import type { CallShape } from '../providers/provider.js';

// A proxy tracer: it follows whichever provider is registered, even one registered after this module loads.
const tracer = trace.getTracer('envelope');

/** Which carrier made the call: the gateway (`envelope serve`) or a client wrapped in-process. */
export type Carrier = 'gateway' | 'library';

/** How the model was told about its budget. */
export type Told = 'countdown' | 'native' | 'none';

const NOT_RECORDING: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

export class CallSpan {
  private static readonly IDLE = new CallSpan(NOT_RECORDING, ROOT_CONTEXT);
  private readonly span: Span;
  private readonly recording: boolean;
  private readonly parent: Context;

  private constructor(span: Span, parent: Context) {
    this.span = span;
    this.recording = span.isRecording();
    this.parent = parent;
  }

  /** Starts the call's span under `parent` (by default the active context: the caller's own span, if any). */
  static start(carrier: Carrier, system: string, taskId: string, shape: CallShape, parent: Context = otelContext.active()): CallSpan {
    const span = tracer.startSpan('envelope.call', { kind: SpanKind.CLIENT }, parent);
    // Not recording (no provider, or sampled out): one shared instance whose every method returns at once.
    if (!span.isRecording()) return CallSpan.IDLE;
    span.setAttributes({
      'gen_ai.operation.name': 'chat',
      'gen_ai.system': system,
      'gen_ai.provider.name': system,
      'gen_ai.request.stream': shape.stream,
      'envelope.carrier': carrier,
      'envelope.task.id': taskId,
    });
    if (shape.model !== null) span.setAttribute('gen_ai.request.model', shape.model);
    return new CallSpan(span, parent);
  }

  /** A child span (ledger reserve, settle, release); a non-recording span when this one is not recording. */
  child(name: string): Span {
    if (!this.recording) return NOT_RECORDING;
    return tracer.startSpan(name, { kind: SpanKind.INTERNAL }, trace.setSpan(this.parent, this.span));
  }

  /** Puts this span's context in the upstream request's headers (`traceparent`), replacing the client's. */
  inject(headers: Record<string, string>): void {
    if (this.recording) propagation.inject(trace.setSpan(this.parent, this.span), headers);
  }

  /** What the ledger granted: the tokens held, and max_tokens as sent (lowered when the budget could not fit it). */
  reserved(grant: ReserveGrant, askedMaxTokens: number | null, told: Told): void {
    if (!this.recording) return;
    const leaf = grant.path.at(-1)!;
    this.span.setAttributes({
      'envelope.task.label': leaf.label,
      'envelope.task.policy': leaf.policy,
      'envelope.tokens.reserved': grant.reservation.inputTokens + grant.reservation.outputTokens,
      'gen_ai.request.max_tokens': grant.outputTokens,
      'envelope.max_tokens.lowered': askedMaxTokens !== null && grant.outputTokens < askedMaxTokens,
      'envelope.budget.told': told,
    });
  }

  /** A budget refusal (402) or any other Envelope error before the call went out; `row` is the task as it stands. */
  refused(e: EnvelopeError, row?: TaskRow): void {
    if (!this.recording) return;
    const refusal = e.httpStatus === 402;
    this.span.setAttributes({
      'envelope.refused': refusal,
      'error.type': e.code,
      ...(refusal ? { 'envelope.refusal.code': e.code, 'envelope.refusal.reason': typeof e.details.reason === 'string' ? e.details.reason : 'state' } : {}),
    });
    if (row) this.budget(row);
    this.span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
  }

  /** The provider's HTTP status; 4xx and 5xx mark the span as failed. */
  upstream(status: number): void {
    if (!this.recording) return;
    this.span.setAttribute('http.response.status_code', status);
    if (status >= 400) this.fault(String(status), `upstream answered ${status}`);
  }

  /** The provider could not be reached, or its answer was broken or malformed. */
  fault(errorType: string, message: string): void {
    if (!this.recording) return;
    this.span.setAttribute('error.type', errorType);
    this.span.setStatus({ code: SpanStatusCode.ERROR, message });
  }

  /** The caller left mid-call; the provider's answer is still read (and charged) before the span ends. */
  callerLeft(): void {
    if (this.recording) this.span.setAttribute('envelope.client_disconnected', true);
  }

  /** The usage the provider reported and the task after settlement. */
  settled(usage: Usage, leaf: TaskRow | null): void {
    if (!this.recording) return;
    this.span.setAttributes({
      // GenAI counts every input token, cached or not, in input_tokens, and the cached ones again by kind.
      'gen_ai.usage.input_tokens': usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens,
      'gen_ai.usage.output_tokens': usage.outputTokens,
      'gen_ai.usage.cache_read.input_tokens': usage.cacheReadTokens,
      'gen_ai.usage.cache_creation.input_tokens': usage.cacheWriteTokens,
      'envelope.usage.input_tokens': usage.inputTokens,
      'envelope.usage.tokens': usage.inputTokens + usage.outputTokens + usage.cacheReadTokens + usage.cacheWriteTokens,
    });
    if (leaf) this.budget(leaf);
  }

  end(): void {
    this.span.end();
  }

  /** The budget as it stands, in display units (tokens or USD). */
  private budget(t: TaskRow): void {
    this.span.setAttributes({
      'envelope.task.label': t.label,
      'envelope.budget.unit': t.unit,
      'envelope.budget.total': fromLedger(t.unit, t.total),
      'envelope.budget.used': fromLedger(t.unit, t.used),
      'envelope.budget.remaining': fromLedger(t.unit, Math.max(0, t.total - t.used - t.reserved)),
      'envelope.budget.state': t.state,
    });
  }
}


/** Ends a child span, failed if `e` is given. */
export function endChild(span: Span, e?: unknown): void {
  if (e !== undefined && span.isRecording()) span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
  span.end();
}
