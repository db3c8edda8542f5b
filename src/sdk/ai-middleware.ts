// The Vercel AI SDK adapter: `wrapLanguageModel({ model, middleware: task.middleware() })`. It works on the SDK's
// own prompt (any provider), with the same ledger rules and countdown as the gateway; `task.stopWhenExhausted()`
// ends a multi-step loop once the task has nothing left. Types are structural, so `ai` stays an optional peer.
import { countdownFor } from '../budget/countdown.js';
import { isEnvelopeError } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';
import type { Ledger } from '../ledger/ledger.js';
import { DEFAULT_CALL_POLICY, estimateInputTokens } from '../pipeline/budgeted-call.js';

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
}

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

/** The countdown as one more text part of the last user message, or as a new user message after tool results. */
function withCountdown(prompt: Message[], text: string): Message[] {
  const out = [...prompt];
  const last = out.at(-1);
  if (last?.role === 'user' && Array.isArray(last.content)) out[out.length - 1] = { ...last, content: [...last.content, { type: 'text', text }] };
  else out.push({ role: 'user', content: [{ type: 'text', text }] });
  return out;
}

const reservationOf = (params: CallOptions): string | undefined => params.providerOptions?.envelope?.reservationId as string | undefined;

export function budgetMiddleware(ledger: Ledger, taskId: string): BudgetMiddleware {
  const settle = (params: CallOptions, usage: Usage | null): Promise<unknown> => {
    const id = reservationOf(params);
    if (!id) return Promise.resolve();
    return usage ? ledger.settle(id, usage) : ledger.release(id);
  };
  return {
    specificationVersion: 'v3',
    async transformParams({ params, model }: TransformArgs) {
      const bytes = Buffer.byteLength(JSON.stringify(params.prompt)) + Buffer.byteLength(JSON.stringify(params.tools ?? null));
      const outputTokensMax = params.maxOutputTokens ?? DEFAULT_CALL_POLICY.defaultMaxOutputTokens;
      const grant = await ledger.reserve({
        taskId,
        model: model.modelId,
        inputTokens: estimateInputTokens(bytes, DEFAULT_CALL_POLICY.bytesPerToken),
        outputTokensMax,
        outputTokensMin: Math.min(outputTokensMax, ledger.config.floorOutputTokens),
      });
      return {
        ...params,
        prompt: withCountdown(params.prompt, countdownFor(grant.path, ledger.now()).text),
        maxOutputTokens: grant.outputTokens,
        providerOptions: { ...params.providerOptions, envelope: { reservationId: grant.reservation.id } },
      };
    },
    async wrapGenerate({ doGenerate, params }: { doGenerate: () => PromiseLike<{ usage: V3Usage }>; params: CallOptions }) {
      let result;
      try {
        result = await doGenerate();
      } catch (e) {
        await settle(params, null);
        throw e;
      }
      await settle(params, usageFromV3(result.usage));
      return result;
    },
    async wrapStream({ doStream, params }: { doStream: () => PromiseLike<{ stream: ReadableStream<Part> }>; params: CallOptions }) {
      const { stream, ...rest } = await doStream().then(
        (r) => r,
        async (e: unknown) => {
          await settle(params, null);
          throw e;
        },
      );
      let usage: Usage | null = null;
      const metered = stream.pipeThrough(
        new TransformStream<Part, Part>({
          transform(part, controller) {
            if (part.type === 'finish' && part.usage) usage = usageFromV3(part.usage as V3Usage);
            controller.enqueue(part);
          },
          async flush() {
            await settle(params, usage);
          },
        }),
      );
      return { stream: metered, ...rest };
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
