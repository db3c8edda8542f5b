// The Vercel AI SDK's own prompt (LanguageModelV3CallOptions) as a dialect, so that `task.middleware()` runs the same
// budgeted-call pipeline as the gateway: the prompt and tool definitions stand in for the provider body they become,
// the countdown is one more text part of the last user message (or a new user message after tool results: the
// provider packages merge it into that turn), `maxOutputTokens` degrades, and usage is the SDK's V3 usage (from a
// generate result or a stream's `finish` part). Types are structural, so `ai` stays an optional peer.
import { EnvelopeError } from '../budget/errors.js';
import type { Delivered, Usage } from '../budget/types.js';
import { openaiErrorBody } from './openai.js';
import { conversationOf, DeliveredOutput, isRecord, type CallPlan, type CallShape, type Dialect } from './provider.js';

type Message = { role: string; content: unknown; [k: string]: unknown };

export interface AiSdkParams {
  prompt: Message[];
  maxOutputTokens?: number;
  tools?: unknown;
  [k: string]: unknown;
}

/** One call as the middleware sees it: the model it goes to and its call options. */
export interface AiSdkCall {
  modelId: string;
  /** The AI SDK provider id (`anthropic.messages`, `openai.responses`, `google.generative-ai` …). */
  provider: string;
  stream: boolean;
  params: AiSdkParams;
}

interface V3Usage {
  inputTokens: { total?: number; noCache?: number; cacheRead?: number; cacheWrite?: number };
  outputTokens: { total?: number };
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

/**
 * Reads an AI SDK stream's parts as they pass: the usage of its `finish` part, or, for a stream that ended without
 * one (the provider's stream broke), what its text, reasoning and tool-input deltas delivered.
 */
export function aiSdkStreamMeter(): { see(part: { type: string; [k: string]: unknown }): void; charge(): { usage: Usage | null; delivered: Delivered | null } } {
  let finish: unknown = null;
  const delivered = new DeliveredOutput();
  /** Tool calls whose input came as deltas: their closing `tool-call` part repeats it. */
  const streamedInputs = new Set<unknown>();
  return {
    see(part) {
      if (part.type === 'finish') finish = part;
      else if (part.type === 'text-delta' || part.type === 'reasoning-delta') delivered.add(part.delta);
      else if (part.type === 'tool-input-delta') {
        streamedInputs.add(part.id);
        delivered.add(part.delta);
      } else if (part.type === 'tool-call' && !streamedInputs.has(part.toolCallId)) delivered.add(part.input);
    },
    charge() {
      const usage = aiSdk.usageFromResponse(finish);
      return usage ? { usage, delivered: null } : { usage: null, delivered: { reason: 'stream_cut', reported: null, outputTokens: delivered.tokens() } };
    },
  };
}

const bad = (message: string): EnvelopeError => new EnvelopeError('invalid_request', message);

/** The bytes the prompt and tools would take in a provider body: the base of the input estimate. */
export const aiSdkBodyBytes = (params: AiSdkParams): number => Buffer.byteLength(JSON.stringify(params.prompt)) + Buffer.byteLength(JSON.stringify(params.tools ?? null));

export const aiSdk: Dialect<AiSdkCall> = {
  name: 'ai-sdk',
  system: 'ai-sdk',

  parse(body: unknown): CallShape {
    const call = body as AiSdkCall;
    const prompt = call.params?.prompt;
    if (!Array.isArray(prompt) || prompt.length === 0 || !prompt.every(isRecord)) throw bad('the prompt must be a non-empty list of messages');
    const last = prompt.at(-1)!;
    if (last.role === 'user' && !Array.isArray(last.content)) throw bad("the last user message's content must be a list of parts");
    const first = prompt.find((m) => m.role !== 'system');
    return {
      model: call.modelId,
      maxTokens: call.params.maxOutputTokens ?? null,
      stream: call.stream,
      taskBudget: null,
      turnStart: false,
      messageCount: prompt.length,
      conversation: conversationOf('ai', prompt.filter((m) => m.role === 'system'), first),
      continues: null,
      choices: 1,
      multiplierUnknown: null,
    };
  },

  prepare(call, plan: CallPlan) {
    const prompt = [...call.params.prompt];
    if (plan.countdown) {
      const last = prompt.at(-1);
      const part = { type: 'text', text: plan.countdown };
      if (last?.role === 'user' && Array.isArray(last.content)) prompt[prompt.length - 1] = { ...last, content: [...last.content, part] };
      else prompt.push({ role: 'user', content: [part] });
    }
    return { ...call, params: { ...call.params, prompt, maxOutputTokens: plan.maxTokens ?? undefined } };
  },

  strip: (call) => call,

  /** A generate result or a stream's finish part: both carry `usage`. */
  usageFromResponse(json: unknown): Usage | null {
    return isRecord(json) && isRecord(json.usage) ? usageFromV3(json.usage as unknown as V3Usage) : null;
  },

  errorBody: openaiErrorBody,
};
