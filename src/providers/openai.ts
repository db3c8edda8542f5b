// OpenAI Chat Completions: https://platform.openai.com/docs/api-reference/chat (JSON and SSE), and the model listing.
// Its error shape, usage and family are shared with OpenAI Responses (openai-responses.ts).
import { EnvelopeError, type ErrorCode } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';
import { appendTo, member, need, parsedMember, removeMember, scanBody, setMember, splice, stringMember, valueAt, wrap, type Edit, type JsonNode } from './json-scan.js';
import { appendable, conversationOf, count, DeliveredOutput, isRecord, multiplier, optionalPart, PLAIN, plainEvent, scannedConversation, shownValue, type CallPlan, type CallShape, type Provider, type ScannedCall, type StreamMeter, type UpstreamFamily } from './provider.js';

export const OPENAI_FAMILY: UpstreamFamily = { name: 'openai', defaultUrl: 'https://api.openai.com/v1', basePath: '/v1', describe: 'OpenAI base URL, with /v1' };

export const OPENAI_ERROR_TYPES: Record<ErrorCode, string> = {
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
  rate_limited: 'rate_limit_exceeded',
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

/** OpenAI's own code where it has one for the same thing (its 429s say rate_limit_exceeded), else Envelope's. */
export const openaiErrorBody = (code: ErrorCode, message: string): unknown => ({
  error: { message, type: OPENAI_ERROR_TYPES[code], param: null, code: code === 'rate_limited' ? 'rate_limit_exceeded' : code },
});

/** Envelope reads `output_config` from Anthropic-shaped bodies only; OpenAI would refuse the field. */
export function stripOutputConfig(body: Record<string, unknown>): Record<string, unknown> {
  if (!('output_config' in body)) return body;
  const { output_config: _dropped, ...rest } = body;
  return rest;
}

const isSystem = (m: unknown): boolean => isRecord(m) && (m.role === 'system' || m.role === 'developer');

/** A chunk's delta: its text, refusal, reasoning (compatible servers: `reasoning_content`, `reasoning`) and tool calls. */
function deliveredOf(delta: Record<string, unknown>, out: DeliveredOutput): void {
  out.add(delta.content);
  out.add(delta.refusal);
  out.add(delta.reasoning_content ?? delta.reasoning);
  if (!Array.isArray(delta.tool_calls)) return;
  for (const call of delta.tool_calls) {
    if (!isRecord(call) || !isRecord(call.function)) continue;
    out.add(call.function.name);
    out.add(call.function.arguments);
  }
}

/** OpenAI's `n` tops out at 128 answers a request (each billed its own output). */
export const OPENAI_CHOICES_MAX = 128;

/**
 * How many answers a chat request asks for: `n`; OpenAI-compatible servers (vLLM) also take `best_of`, which
 * generates that many and returns `n`: a multiplier Envelope does not hold for.
 */
function choicesOf(body: Record<string, unknown>): { choices: number; multiplierUnknown: string | null } {
  const n = multiplier(body, 'n', OPENAI_CHOICES_MAX);
  if (n.multiplierUnknown || body.best_of === undefined || body.best_of === null || body.best_of === 1) return n;
  return { choices: n.choices, multiplierUnknown: `best_of ${shownValue(body.best_of)} generates answers that are not returned` };
}

/** stripOutputConfig on the bytes: the member removed when it is there. */
export function stripOutputConfigEdits(raw: Buffer, body: JsonNode): Edit[] {
  const field = member(raw, body, 'output_config');
  return field ? [removeMember(body, field)] : [];
}

/** An optional output cap as `parse` checks it: absent or null, else a positive whole number. */
export function optionalMax(raw: Buffer, node: JsonNode | undefined): number | null {
  if (node === undefined || node.kind === 'null') return null;
  need(node.kind === 'number');
  const max = valueAt(raw, node) as number;
  need(Number.isInteger(max) && max >= 1);
  return max;
}

const isSystemNode = (raw: Buffer, m: JsonNode): boolean => {
  const role = stringMember(raw, m, 'role');
  return role === 'system' || role === 'developer';
};

/** `parse` and `prepare` on the bytes (issue 16); anything off the common path throws ScanFallback. */
function scan(raw: Buffer): ScannedCall {
  const body = scanBody(raw);
  const model = stringMember(raw, body, 'model');
  const messages = member(raw, body, 'messages');
  need(model !== undefined && model !== '' && messages?.kind === 'array' && messages.children!.length > 0);
  const completionField = member(raw, body, 'max_completion_tokens');
  const tokensField = member(raw, body, 'max_tokens');
  const maxTokens = optionalMax(raw, completionField && completionField.kind !== 'null' ? completionField : tokensField);
  const items = messages.children!;
  const last = items.at(-1)!;
  need(last.kind === 'object');
  const lastIsUser = stringMember(raw, last, 'role') === 'user';
  const content = member(raw, last, 'content');
  need(!lastIsUser || content?.kind === 'string' || content?.kind === 'array');
  const system = items.find((m) => isSystemNode(raw, m));
  const first = items.find((m) => !isSystemNode(raw, m));
  const multipliers: Record<string, unknown> = {};
  for (const key of ['n', 'best_of']) if (member(raw, body, key)) multipliers[key] = parsedMember(raw, body, key);
  const stream = member(raw, body, 'stream')?.kind === 'true';
  const shape: CallShape = {
    model,
    maxTokens,
    stream,
    taskBudget: null,
    turnStart: lastIsUser,
    messageCount: items.length,
    conversation: scannedConversation('openai', raw, [system, first], () => [system && valueAt(raw, system), first && valueAt(raw, first)]),
    continues: null,
    ...choicesOf(multipliers),
  };
  return {
    shape,
    strip: () => splice(raw, stripOutputConfigEdits(raw, body)),
    prepare(plan) {
      const edits = stripOutputConfigEdits(raw, body);
      // Keep the client's own field name: older OpenAI-compatible servers only know max_tokens.
      if (plan.maxTokens !== null) edits.push(setMember(raw, body, tokensField && !completionField ? 'max_tokens' : 'max_completion_tokens', JSON.stringify(plan.maxTokens)));
      if (stream) {
        const options = parsedMember(raw, body, 'stream_options');
        edits.push(setMember(raw, body, 'stream_options', JSON.stringify({ ...(isRecord(options) ? options : {}), include_usage: true })));
      }
      if (plan.countdown) {
        const part = `{"type":"text","text":${JSON.stringify(plan.countdown)}}`;
        if (!lastIsUser) edits.push(appendTo(raw, messages, `{"role":"user","content":${JSON.stringify(plan.countdown)}}`));
        else if (content!.kind === 'string') edits.push(...wrap(content!, '[{"type":"text","text":', `},${part}]`));
        else edits.push(appendTo(raw, content!, part));
      }
      return splice(raw, edits);
    },
  };
}

/**
 * A chunk of content as OpenAI writes it (and compatible servers that follow it field for field), read without
 * parsing (see PLAIN): one choice, content only, no usage.
 */
export const PLAIN_CONTENT_CHUNK = plainEvent`{"id":${PLAIN.STRING},"object":"chat.completion.chunk","created":${PLAIN.INT},"model":${PLAIN.STRING},${optionalPart`"service_tier":${PLAIN.STRING},`}${optionalPart`"system_fingerprint":${`(?:null|${PLAIN.STRING})`},`}"choices":[{"index":0,"delta":{"content":${PLAIN.TEXT}},"logprobs":null,"finish_reason":null}]${optionalPart`,"usage":null`}${optionalPart`,"obfuscation":${PLAIN.STRING}`}}`;

export const openai: Provider = {
  name: 'openai',
  system: 'openai',
  family: OPENAI_FAMILY,
  routes: [
    { method: 'POST', path: '/v1/chat/completions', label: '/v1/chat/completions', kind: 'call' },
    { method: 'GET', path: '/v1/models', label: '/v1/models', kind: 'forward' },
    { method: 'GET', path: /^\/v1\/models\/[^/]+$/, label: '/v1/models/{id}', kind: 'forward' },
  ],

  parse(body: unknown): CallShape {
    if (!isRecord(body)) throw bad('the request body must be a JSON object');
    if (typeof body.model !== 'string' || body.model === '') throw bad("you must provide a model parameter");
    if (!Array.isArray(body.messages) || body.messages.length === 0) throw bad("'messages' must be a non-empty array");
    const max = body.max_completion_tokens ?? body.max_tokens;
    if (max !== undefined && max !== null && (!Number.isInteger(max) || (max as number) < 1)) {
      throw bad('max_completion_tokens must be a positive whole number');
    }
    const last = body.messages.at(-1);
    if (!isRecord(last)) throw bad("'messages' must hold message objects");
    // The countdown becomes a part of the last message when it is the user's: it must be a string or a list of parts.
    if (last.role === 'user' && !appendable(last.content)) throw bad("the last user message's content must be a string or an array of content parts");
    const first = body.messages.find((m) => !isSystem(m));
    return {
      model: body.model,
      maxTokens: typeof max === 'number' ? max : null,
      stream: body.stream === true,
      taskBudget: null,
      turnStart: last.role === 'user',
      messageCount: body.messages.length,
      conversation: conversationOf('openai', body.messages.find(isSystem), first),
      continues: null,
      ...choicesOf(body),
    };
  },

  scan,

  prepare(body, plan: CallPlan) {
    const out = stripOutputConfig({ ...body });
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

  strip: stripOutputConfig,

  usageFromResponse(json: unknown): Usage | null {
    return isRecord(json) ? usageOf(json.usage) : null;
  },

  streamMeter(): StreamMeter {
    let usage: Usage | null = null;
    let complete = false;
    const delivered = new DeliveredOutput();
    return {
      push(_event, data) {
        if (data === '[DONE]') {
          complete = true;
          return;
        }
        const plain = PLAIN_CONTENT_CHUNK.exec(data);
        if (plain) return delivered.add(plain[1]);
        const chunk = JSON.parse(data) as Record<string, unknown>;
        // Only the final chunk (with include_usage) carries usage; the others, what a cut stream is charged for.
        if (chunk.usage !== undefined && chunk.usage !== null) usage = usageOf(chunk.usage) ?? usage;
        if (Array.isArray(chunk.choices)) for (const c of chunk.choices) if (isRecord(c) && isRecord(c.delta)) deliveredOf(c.delta, delivered);
      },
      usage: () => usage,
      outputTokensDelivered: () => delivered.tokens(),
      get final() {
        return usage !== null;
      },
      get complete() {
        return complete;
      },
    };
  },

  errorBody: openaiErrorBody,

  streamError(code, message) {
    return `data: ${JSON.stringify(openaiErrorBody(code, message))}\n\n`;
  },

  callHeaders(headers, shape) {
    if (shape.stream) headers.set('accept', 'text/event-stream');
  },
};
