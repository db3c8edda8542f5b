// The Vercel AI SDK adapter: `wrapLanguageModel({ model, middleware: task.middleware() })`. It works on the SDK's
// own prompt (any provider) with the gateway's reservation and countdown (pipeline/budgeted-call.ts); a refusal is
// the SDK's own APICallError (402, the provider's error body, not retried); `task.stopWhenExhausted()` ends a
// multi-step loop once the task has nothing left. Types are structural, so `ai` stays an optional peer.
import { isEnvelopeError, type EnvelopeError } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';
import type { Ledger } from '../ledger/ledger.js';
import { finishCall, reserveCall, type CallPolicy } from '../pipeline/budgeted-call.js';
import { CallSpan } from '../pipeline/call-span.js';
import { anthropic } from '../providers/anthropic.js';
import { conversationOf } from '../providers/dialect.js';
import { openai } from '../providers/openai.js';
import { DEFAULT_DRAIN_TIMEOUT_MS, metered, ProviderCall, unlessAborted, type Metered } from './metered-stream.js';

type Part = { type: string; [k: string]: unknown };
type Message = { role: string; content: unknown; [k: string]: unknown };

interface CallOptions {
  prompt: Message[];
  maxOutputTokens?: number;
  tools?: unknown;
  providerOptions?: Record<string, Record<string, unknown>>;
  [k: string]: unknown;
}

interface V3Usage {
  inputTokens: { total?: number; noCache?: number; cacheRead?: number; cacheWrite?: number };
  outputTokens: { total?: number };
}

interface Model {
  modelId: string;
  provider: string;
}

/**
 * The middleware object `wrapLanguageModel` takes (LanguageModelV3Middleware). Its members take `any` on purpose:
 * `ai` is an optional peer, so its types are not imported, and TypeScript accepts these where the SDK's are expected.
 */
export interface BudgetMiddleware {
  readonly specificationVersion: 'v3';
  transformParams: (o: any) => Promise<any>;
  wrapGenerate: (o: any) => Promise<any>;
  wrapStream: (o: any) => Promise<any>;
}

interface TransformArgs {
  params: CallOptions;
  model: Model;
  type: 'generate' | 'stream';
}

/** The GenAI system from the AI SDK's provider id (`anthropic.messages`, `openai.chat` …). */
const systemOf = (provider: string): string => provider.split('.')[0] || provider;

const n = (x: number | undefined): number => (typeof x === 'number' && x > 0 ? x : 0);

export function usageFromV3(u: V3Usage): Usage {
  const cacheRead = n(u.inputTokens.cacheRead);
  const cacheWrite = n(u.inputTokens.cacheWrite);
  return {
    inputTokens: u.inputTokens.noCache !== undefined ? n(u.inputTokens.noCache) : Math.max(0, n(u.inputTokens.total) - cacheRead - cacheWrite),
    outputTokens: n(u.outputTokens.total),
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
  };
}

/** A prompt's conversation: its system messages and its first other message, as the SDK holds them. */
function conversationOfPrompt(prompt: Message[]): string {
  return conversationOf('ai', prompt.filter((m) => m.role === 'system'), prompt.find((m) => m.role !== 'system'));
}

/**
 * The countdown after the last cache breakpoint, as the gateway's dialects place it: one more text part of the
 * last user message, or a new user message after tool results (providers merge it into the tool-result turn).
 */
function withCountdown(prompt: Message[], text: string): Message[] {
  if (!text) return prompt; // a measured task is shown nothing
  const out = [...prompt];
  const last = out.at(-1);
  if (last?.role === 'user' && Array.isArray(last.content)) out[out.length - 1] = { ...last, content: [...last.content, { type: 'text', text }] };
  else out.push({ role: 'user', content: [{ type: 'text', text }] });
  return out;
}

/**
 * A refusal as the AI SDK's own APICallError, shaped like the gateway's 402 as the provider package would report
 * it: the status, the provider's error body (Anthropic's for Anthropic models, OpenAI's otherwise), not retryable.
 */
async function asApiCallError(e: EnvelopeError, model: Model, taskId: string, params: CallOptions): Promise<Error> {
  const { APICallError } = await import('ai');
  const dialect = model.provider.startsWith('anthropic') ? anthropic : openai;
  const body = dialect.errorBody(e.code, e.message);
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

const reservationOf = (params: CallOptions): string | undefined => params.providerOptions?.envelope?.reservationId as string | undefined;

export function budgetMiddleware(ledger: Ledger, taskId: string, policy: CallPolicy, drainTimeoutMs = DEFAULT_DRAIN_TIMEOUT_MS): BudgetMiddleware {
  // Per call in flight, by reservation: the provider call (on its own signal), the caller's signal, the call's span.
  const calls = new Map<string, { provider: ProviderCall; caller: AbortSignal | undefined; span: CallSpan | null }>();
  const settle = async (params: CallOptions, usage: Usage | null): Promise<unknown> => {
    const id = reservationOf(params);
    if (!id) return;
    const call = calls.get(id);
    call?.provider.done();
    calls.delete(id);
    try {
      return await finishCall(ledger, id, usage, call?.span ?? undefined);
    } finally {
      call?.span?.end();
    }
  };
  const failed = (params: CallOptions, e: unknown): void => calls.get(reservationOf(params) ?? '')?.span?.fault('provider_error', (e as Error).message);
  const callOf = (params: CallOptions) => calls.get(reservationOf(params) ?? '') ?? { provider: new ProviderCall(drainTimeoutMs), caller: undefined, span: null };
  return {
    specificationVersion: 'v3',
    async transformParams({ params, model, type }: TransformArgs) {
      // The prompt and tool definitions as the SDK holds them stand in for the provider body they become.
      const bodyBytes = Buffer.byteLength(JSON.stringify(params.prompt)) + Buffer.byteLength(JSON.stringify(params.tools ?? null));
      const asked = params.maxOutputTokens ?? null;
      const shape = { model: model.modelId, maxTokens: asked, stream: type === 'stream', taskBudget: null, turnStart: false, messageCount: params.prompt.length, conversation: conversationOfPrompt(params.prompt) };
      const span = CallSpan.start('library', systemOf(model.provider), taskId, shape);
      let reserved;
      try {
        reserved = await reserveCall({ ledger, taskId, scope: {}, policy, model: model.modelId, maxTokens: asked, bodyBytes });
      } catch (e) {
        if (isEnvelopeError(e)) span.refused(e);
        span.end();
        throw isEnvelopeError(e) && e.httpStatus === 402 ? await asApiCallError(e, model, taskId, params) : e;
      }
      const { grant, countdown } = reserved;
      span.reserved(grant, asked, countdown.text ? 'countdown' : 'none');
      const id = grant.reservation.id;
      // The provider call outlives a caller who aborts, so the ledger learns what was generated (as the gateway).
      const provider = new ProviderCall(drainTimeoutMs);
      calls.set(id, { provider, caller: params.abortSignal as AbortSignal | undefined, span });
      return {
        ...params,
        prompt: withCountdown(params.prompt, countdown.text),
        maxOutputTokens: reserved.maxTokens ?? undefined,
        abortSignal: provider.signal,
        providerOptions: { ...params.providerOptions, envelope: { reservationId: id } },
      };
    },
    async wrapGenerate({ doGenerate, params }: { doGenerate: () => PromiseLike<{ usage: V3Usage }>; params: CallOptions }) {
      const { provider, caller } = callOf(params);
      const work = (async () => {
        let result;
        try {
          result = await doGenerate();
        } catch (e) {
          failed(params, e);
          await settle(params, null);
          throw e;
        }
        await settle(params, usageFromV3(result.usage));
        return result;
      })();
      return unlessAborted(work, caller, () => provider.callerLeft());
    },
    async wrapStream({ doStream, params }: { doStream: () => PromiseLike<{ stream: ReadableStream<Part> }>; params: CallOptions }) {
      const { provider, caller } = callOf(params);
      let parts: Metered<Part> | null = null;
      const work = (async () => {
        let started;
        try {
          started = await doStream();
        } catch (e) {
          failed(params, e);
          await settle(params, null);
          throw e;
        }
        const { stream, ...rest } = started;
        let usage: Usage | null = null;
        parts = metered(
          stream,
          (part) => {
            if (part.type === 'finish' && part.usage) usage = usageFromV3(part.usage as V3Usage);
          },
          () => settle(params, usage),
        );
        if (caller?.aborted) void parts.abandon();
        return { stream: parts.stream, ...rest };
      })();
      caller?.addEventListener(
        'abort',
        () => {
          if (!parts) return;
          provider.callerLeft();
          void parts.abandon();
        },
        { once: true },
      );
      return unlessAborted(work, caller, () => provider.callerLeft());
    },
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
