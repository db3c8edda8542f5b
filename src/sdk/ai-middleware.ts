// The Vercel AI SDK adapter: `wrapLanguageModel({ model, middleware: task.middleware() })`. The SDK's own prompt is a
// dialect (providers/ai-sdk.ts), so each call runs the same pipeline as the gateway (pipeline/run-call.ts): this
// carrier calls the wrapped model with the prepared options. A refusal is the SDK's own APICallError (402, the
// provider's error body, not retried); `task.stopWhenExhausted()` ends a multi-step loop once the task has nothing
// left. Types are structural, so `ai` stays an optional peer.
import { isEnvelopeError, type EnvelopeError } from '../budget/errors.js';
import type { Ledger } from '../ledger/ledger.js';
import { BudgetedCall, runCall, type Answer, type CallEnv, type Carrier, type TaskRef } from '../pipeline/run-call.js';
import { aiSdk, aiSdkBodyBytes, aiSdkStreamMeter, type AiSdkCall, type AiSdkParams } from '../providers/ai-sdk.js';
import { providerOfAiSdk } from '../providers/registry.js';
import { DEFAULT_DRAIN_TIMEOUT_MS } from './metered-stream.js';
import { InProcessAnswer } from './in-process.js';

type Part = { type: string; [k: string]: unknown };

/** The wrapped model as the middleware sees it (LanguageModelV3). */
interface Model {
  modelId: string;
  provider: string;
  doGenerate(params: AiSdkParams): PromiseLike<{ usage: unknown }>;
  doStream(params: AiSdkParams): PromiseLike<{ stream: ReadableStream<Part> }>;
}

/**
 * The middleware object `wrapLanguageModel` takes (LanguageModelV3Middleware). Its members take `any` on purpose:
 * `ai` is an optional peer, so its types are not imported, and TypeScript accepts these where the SDK's are expected.
 */
export interface BudgetMiddleware {
  readonly specificationVersion: 'v3';
  wrapGenerate: (o: any) => Promise<any>;
  wrapStream: (o: any) => Promise<any>;
}

/** The GenAI system from the AI SDK's provider id (`anthropic.messages`, `openai.chat` …). */
const systemOf = (provider: string): string => provider.split('.')[0] || provider;

/** The error body of the provider the model talks to, as its package would report the gateway's refusal. */
const errorBodyFor = (model: Model, e: EnvelopeError): unknown => (providerOfAiSdk(model.provider) ?? aiSdk).errorBody(e.code, e.message);

/** A refusal as the AI SDK's own APICallError: the status, the provider's error body, not retryable. */
async function asApiCallError(e: EnvelopeError, model: Model, taskId: string, params: AiSdkParams): Promise<Error> {
  const { APICallError } = await import('ai');
  const body = errorBodyFor(model, e);
  return new APICallError({
    message: e.message,
    url: `envelope:task/${encodeURIComponent(taskId)}`,
    requestBodyValues: params,
    statusCode: e.httpStatus,
    responseHeaders: { 'content-type': 'application/json' },
    responseBody: JSON.stringify(body),
    data: body,
    isRetryable: false,
    cause: e,
  });
}

class AiSdkCarrier implements Carrier<AiSdkCall> {
  readonly name = 'library';

  constructor(
    private readonly taskId: string,
    private readonly model: Model,
    private readonly answer: InProcessAnswer<unknown>,
  ) {}

  identify(): TaskRef {
    return { id: this.taskId, create: null };
  }

  async forward(call: BudgetedCall<AiSdkCall>): Promise<Answer> {
    const { answer, model } = this;
    // The provider call outlives a caller who aborts, so the ledger learns what was generated (as the gateway).
    const params = { ...call.outgoing.params, abortSignal: answer.upstream.signal };
    if (!call.outgoing.stream) {
      let result;
      try {
        result = await model.doGenerate(params);
      } catch (e) {
        call.span?.fault('provider_error', (e as Error).message);
        throw e;
      }
      return { usage: aiSdk.usageFromResponse(result), finish: () => answer.respond(result) };
    }
    let started;
    try {
      started = await model.doStream(params);
    } catch (e) {
      call.span?.fault('provider_error', (e as Error).message);
      throw e;
    }
    const { stream, ...rest } = started;
    const meter = aiSdkStreamMeter();
    const { stream: out, ended } = answer.meter(stream, (part) => meter.see(part));
    answer.respond({ stream: out, ...rest });
    await ended;
    // A stream that broke before its finish part is charged what it delivered.
    return meter.charge();
  }

  async fail(call: BudgetedCall<AiSdkCall>, e: unknown): Promise<void> {
    this.answer.fail(isEnvelopeError(e) && e.httpStatus === 402 ? await asApiCallError(e, this.model, this.taskId, call.body.params) : e);
  }

  end(): void {
    this.answer.end();
  }
}

export function budgetMiddleware(env: CallEnv, taskId: string, drainTimeoutMs = DEFAULT_DRAIN_TIMEOUT_MS): BudgetMiddleware {
  const run = (model: Model, params: AiSdkParams, stream: boolean): Promise<unknown> => {
    const body: AiSdkCall = { modelId: model.modelId, provider: model.provider, stream, params };
    const answer = new InProcessAnswer<unknown>(params.abortSignal as AbortSignal | undefined, drainTimeoutMs);
    const call = new BudgetedCall<AiSdkCall>(env, aiSdk, body, aiSdkBodyBytes(params), '', {});
    call.system = systemOf(model.provider);
    void runCall(call, new AiSdkCarrier(taskId, model, answer));
    return answer.result(call as BudgetedCall<unknown>);
  };
  return {
    specificationVersion: 'v3',
    wrapGenerate: ({ model, params }: { model: Model; params: AiSdkParams }) => run(model, params, false),
    wrapStream: ({ model, params }: { model: Model; params: AiSdkParams }) => run(model, params, true),
  };
}

/** A `stopWhen` condition for generateText/streamText: true once the task is exhausted, paused or closed. */
export function budgetExhausted(ledger: Ledger, taskId: string): () => Promise<boolean> {
  return async () => {
    try {
      const t = await ledger.task(taskId);
      return t.state === 'exhausted' || t.state === 'paused' || t.state === 'closed';
    } catch (e) {
      if (isEnvelopeError(e)) return true;
      throw e;
    }
  };
}
