// OpenAI Chat Completions: https://platform.openai.com/docs/api-reference/chat (JSON and SSE).
import { EnvelopeError, type ErrorCode } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';
import { conversationOf, count, isRecord, type CallPlan, type CallShape, type Dialect, type StreamMeter } from './dialect.js';

const ERROR_TYPES: Record<ErrorCode, string> = {
  invalid_request: 'invalid_request_error',
  not_found: 'invalid_request_error',
  conflict: 'invalid_request_error',
  budget_exceeded: 'budget_exceeded',
  budget_paused: 'budget_exceeded',
  task_closed: 'budget_exceeded',
  price_unknown: 'invalid_request_error',
  unauthorized: 'authentication_error',
  forbidden: 'invalid_request_error',
  unsupported_media_type: 'invalid_request_error',
  upstream_error: 'server_error',
  store_unavailable: 'server_error',
  request_too_large: 'invalid_request_error',
  overloaded: 'server_error',
  internal: 'server_error',
};

const bad = (message: string): EnvelopeError => new EnvelopeError('invalid_request', message);

function usageOf(u: unknown): Usage | null {
  if (!isRecord(u)) return null;
  const cached = isRecord(u.prompt_tokens_details) ? count(u.prompt_tokens_details.cached_tokens) : 0;
  return {
    inputTokens: Math.max(0, count(u.prompt_tokens) - cached),
    outputTokens: count(u.completion_tokens),
    cacheWriteTokens: 0,
    cacheReadTokens: cached,
  };
}

/** Envelope reads `output_config` from Anthropic-shaped bodies only; OpenAI would refuse the field. */
function strip(body: Record<string, unknown>): Record<string, unknown> {
  if (!('output_config' in body)) return body;
  const { output_config: _dropped, ...rest } = body;
  return rest;
}

/** A chat's identity: its first system (or developer) message and its first other message. */
function conversationOfChat(messages: unknown[]): string {
  const isSystem = (m: unknown): boolean => isRecord(m) && (m.role === 'system' || m.role === 'developer');
  return conversationOf('openai', messages.find(isSystem), messages.find((m) => !isSystem(m)));
}

export const openai: Dialect = {
  name: 'openai',

  parse(body: unknown): CallShape {
    if (!isRecord(body)) throw bad('the request body must be a JSON object');
    if (typeof body.model !== 'string' || body.model === '') throw bad("you must provide a model parameter");
    if (!Array.isArray(body.messages) || body.messages.length === 0) throw bad("'messages' must be a non-empty array");
    const max = body.max_completion_tokens ?? body.max_tokens;
    if (max !== undefined && max !== null && (!Number.isInteger(max) || (max as number) < 1)) {
      throw bad('max_completion_tokens must be a positive whole number');
    }
    const last = body.messages.at(-1);
    return {
      model: body.model,
      maxTokens: typeof max === 'number' ? max : null,
      stream: body.stream === true,
      taskBudget: null,
      turnStart: isRecord(last) && last.role === 'user',
      messageCount: body.messages.length,
      conversation: conversationOfChat(body.messages),
    };
  },

  prepare(body, plan: CallPlan) {
    const out = strip({ ...body });
    // Keep the client's own field name: older OpenAI-compatible servers only know max_tokens.
    if (plan.maxTokens === null) {
      // Left as the client sent it.
    } else if (out.max_tokens !== undefined && out.max_completion_tokens === undefined) out.max_tokens = plan.maxTokens;
    else out.max_completion_tokens = plan.maxTokens;
    if (out.stream === true) {
      out.stream_options = { ...(isRecord(out.stream_options) ? out.stream_options : {}), include_usage: true };
    }
    if (plan.countdown) {
      // At the very end, after every cached prefix: a part of the last user message, or a new user message.
      const messages = [...(body.messages as unknown[])];
      const last = messages.at(-1);
      if (isRecord(last) && last.role === 'user') {
        const parts = typeof last.content === 'string' ? [{ type: 'text', text: last.content }] : [...(last.content as unknown[])];
        parts.push({ type: 'text', text: plan.countdown });
        messages[messages.length - 1] = { ...last, content: parts };
      } else {
        messages.push({ role: 'user', content: plan.countdown });
      }
      out.messages = messages;
    }
    return out;
  },

  strip,

  usageFromResponse(json: unknown): Usage | null {
    return isRecord(json) ? usageOf(json.usage) : null;
  },

  streamMeter(): StreamMeter {
    let usage: Usage | null = null;
    let complete = false;
    return {
      push(_event, data) {
        if (data === '[DONE]') {
          complete = true;
          return;
        }
        // Only the final chunk (with include_usage) carries usage; skip parsing the rest cheaply.
        if (!data.includes('"usage"')) return;
        const chunk = JSON.parse(data) as Record<string, unknown>;
        usage = usageOf(chunk.usage) ?? usage;
      },
      usage: () => usage,
      get complete() {
        return complete;
      },
    };
  },

  errorBody(code, message) {
    return { error: { message, type: ERROR_TYPES[code], param: null, code } };
  },
};
