// Anthropic Messages: https://docs.anthropic.com/en/api/messages (JSON and SSE), count_tokens and the model listing.
import { EnvelopeError, type ErrorCode } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';
import { appendTo, member, need, removeMember, scanAt, scanBody, setMember, splice, stringMember, valueAt, wrap, type Edit, type JsonNode } from './json-scan.js';
import { appendable, conversationOf, count, DeliveredOutput, isRecord, PLAIN, plainEvent, scannedConversation, withListValue, type CallPlan, type CallShape, type Provider, type ScannedCall, type StreamMeter, type TaskBudgetField } from './provider.js';

const ERROR_TYPES: Record<ErrorCode, string> = {
  invalid_request: 'invalid_request_error',
  not_found: 'not_found_error',
  conflict: 'invalid_request_error',
  budget_exceeded: 'budget_exceeded_error',
  budget_paused: 'budget_exceeded_error',
  task_closed: 'budget_exceeded_error',
  price_unknown: 'invalid_request_error',
  unauthorized: 'authentication_error',
  forbidden: 'permission_error',
  unsupported_media_type: 'invalid_request_error',
  upstream_error: 'api_error',
  store_unavailable: 'api_error',
  request_too_large: 'request_too_large',
  overloaded: 'overloaded_error',
  rate_limited: 'rate_limit_error',
  internal: 'api_error',
};

const bad = (message: string): EnvelopeError => new EnvelopeError('invalid_request', message);

function usageOf(u: unknown): Usage | null {
  if (!isRecord(u)) return null;
  return {
    inputTokens: count(u.input_tokens),
    outputTokens: count(u.output_tokens),
    cacheWriteTokens: count(u.cache_creation_input_tokens),
    cacheReadTokens: count(u.cache_read_input_tokens),
  };
}

function taskBudgetOf(body: Record<string, unknown>): TaskBudgetField | null {
  const oc = body.output_config;
  if (!isRecord(oc) || oc.task_budget === undefined) return null;
  const tb = oc.task_budget;
  if (!isRecord(tb) || tb.type !== 'tokens' || typeof tb.total !== 'number' || !Number.isInteger(tb.total)) {
    throw bad('output_config.task_budget must be {"type":"tokens","total":N,"remaining":M}');
  }
  if (tb.remaining !== undefined && (typeof tb.remaining !== 'number' || tb.remaining < 0 || tb.remaining > tb.total)) {
    throw bad('output_config.task_budget.remaining must be a number between 0 and total');
  }
  return { type: 'tokens', total: tb.total, ...(tb.remaining !== undefined ? { remaining: tb.remaining as number } : {}) };
}

const hasToolResult = (content: unknown): boolean =>
  Array.isArray(content) && content.some((b) => isRecord(b) && b.type === 'tool_result');

/** Removes `output_config.task_budget` (Envelope's field when the model has no native budgets). */
function withoutTaskBudget(body: Record<string, unknown>): Record<string, unknown> {
  if (!isRecord(body.output_config) || !('task_budget' in body.output_config)) return body;
  const { task_budget: _dropped, ...rest } = body.output_config;
  const { output_config: _old, ...others } = body;
  return Object.keys(rest).length === 0 ? others : { ...others, output_config: rest };
}

/** True when a scanned content list holds a tool_result block (read from its bytes, one level of blocks recorded). */
function toolResultIn(raw: Buffer, content: JsonNode | undefined): boolean {
  if (content?.kind !== 'array') return false;
  return scanAt(raw, content, 2).children!.some((b) => stringMember(raw, b, 'type') === 'tool_result');
}

/**
 * `parse` and `prepare` on the bytes (issue 16): the same checks on the fields read, the same rewrite spliced in.
 * Anything off the common path throws ScanFallback and the body is parsed whole.
 */
function scan(raw: Buffer): ScannedCall {
  const body = scanBody(raw);
  const model = stringMember(raw, body, 'model');
  const max = member(raw, body, 'max_tokens');
  const messages = member(raw, body, 'messages');
  need(model !== undefined && model !== '' && max?.kind === 'number' && messages?.kind === 'array' && messages.children!.length > 0);
  const maxTokens = valueAt(raw, max) as number;
  need(Number.isInteger(maxTokens) && maxTokens >= 1);
  const items = messages.children!;
  const last = items.at(-1)!;
  let lastUser: JsonNode | undefined;
  for (let i = items.length - 1; i >= 0 && lastUser === undefined; i--) if (stringMember(raw, items[i], 'role') === 'user') lastUser = items[i];
  const content = member(raw, lastUser, 'content');
  need(content?.kind === 'string' || content?.kind === 'array');
  const outputConfig = member(raw, body, 'output_config');
  const oc = outputConfig ? valueAt(raw, outputConfig) : undefined;
  const taskBudget = taskBudgetOf(outputConfig ? { output_config: oc } : {});
  const system = member(raw, body, 'system');
  const shape: CallShape = {
    model,
    maxTokens,
    stream: member(raw, body, 'stream')?.kind === 'true',
    taskBudget,
    turnStart: stringMember(raw, last, 'role') === 'user' && !toolResultIn(raw, member(raw, last, 'content')),
    messageCount: items.length,
    conversation: scannedConversation('anthropic', raw, [system, items[0]], () => [system && valueAt(raw, system), valueAt(raw, items[0]!)]),
    continues: null,
    choices: 1,
    multiplierUnknown: null,
  };
  // withoutTaskBudget: the member goes, and output_config with it when nothing else is in it.
  const budgetField = outputConfig?.kind === 'object' ? member(raw, outputConfig, 'task_budget') : undefined;
  const stripEdits = (): Edit[] => (!budgetField ? [] : [outputConfig!.children!.length === 1 ? removeMember(body, outputConfig!) : removeMember(outputConfig!, budgetField)]);
  return {
    shape,
    strip: () => splice(raw, stripEdits()),
    prepare(plan) {
      const edits: Edit[] = [];
      if (plan.nativeBudget) {
        const { task_budget: _dropped, ...rest } = isRecord(oc) ? oc : {};
        edits.push(setMember(raw, body, 'output_config', JSON.stringify({ ...rest, task_budget: { type: 'tokens', ...plan.nativeBudget } })));
      } else edits.push(...stripEdits());
      if (plan.maxTokens !== null) edits.push({ from: max.start, to: max.end, text: JSON.stringify(plan.maxTokens) });
      if (plan.countdown) {
        const block = `{"type":"text","text":${JSON.stringify(plan.countdown)}}`;
        if (content.kind === 'string') edits.push(...wrap(content, '[{"type":"text","text":', `},${block}]`));
        else edits.push(appendTo(raw, content, block));
      }
      return splice(raw, edits);
    },
  };
}

/** Anthropic's beta header for native task budgets (`output_config.task_budget`). */
export const TASK_BUDGET_BETA = 'task-budgets-2026-03-13';

/** The fields POST /v1/messages/count_tokens takes. */
const COUNT_FIELDS = ['model', 'messages', 'system', 'tools', 'tool_choice', 'thinking', 'mcp_servers'] as const;

/** The deltas of text and thinking as Anthropic writes them, read without parsing (see PLAIN). */
export const PLAIN_TEXT_DELTA = plainEvent`{"type":"content_block_delta","index":${PLAIN.INT},"delta":{"type":"text_delta","text":${PLAIN.TEXT}}}`;
export const PLAIN_THINKING_DELTA = plainEvent`{"type":"content_block_delta","index":${PLAIN.INT},"delta":{"type":"thinking_delta","thinking":${PLAIN.TEXT}}}`;

export const anthropic: Provider = {
  name: 'anthropic',
  system: 'anthropic',
  family: { name: 'anthropic', defaultUrl: 'https://api.anthropic.com', basePath: '', describe: 'Anthropic base URL, without /v1' },
  routes: [
    { method: 'POST', path: '/v1/messages', label: '/v1/messages', kind: 'call' },
    { method: 'POST', path: '/v1/messages/count_tokens', label: '/v1/messages/count_tokens', kind: 'forward' },
    { method: 'GET', path: '/v1/models', label: '/v1/models', kind: 'forward' },
    { method: 'GET', path: /^\/v1\/models\/[^/]+$/, label: '/v1/models/{id}', kind: 'forward' },
  ],
  ownsCaller: (h) => h['anthropic-version'] !== undefined || h['x-api-key'] !== undefined,
  nativeBudget: { betaHeader: TASK_BUDGET_BETA },

  parse(body: unknown): CallShape {
    if (!isRecord(body)) throw bad('the request body must be a JSON object');
    if (typeof body.model !== 'string' || body.model === '') throw bad('model: field required');
    if (!Number.isInteger(body.max_tokens) || (body.max_tokens as number) < 1) {
      throw bad('max_tokens: field required (a positive whole number)');
    }
    if (!Array.isArray(body.messages) || body.messages.length === 0) throw bad('messages: at least one message is required');
    const last = body.messages.at(-1);
    // The countdown is appended to the last user turn: it must be a string or a list of blocks.
    let lastUser: unknown;
    for (let i = body.messages.length - 1; i >= 0 && lastUser === undefined; i--) if (isRecord(body.messages[i]) && (body.messages[i] as Record<string, unknown>).role === 'user') lastUser = body.messages[i];
    if (!isRecord(lastUser) || !appendable(lastUser.content)) throw bad('messages: the last user message needs content: a string or a list of content blocks');
    return {
      model: body.model,
      maxTokens: body.max_tokens as number,
      stream: body.stream === true,
      taskBudget: taskBudgetOf(body),
      turnStart: isRecord(last) && last.role === 'user' && !hasToolResult(last.content),
      messageCount: body.messages.length,
      conversation: conversationOf('anthropic', body.system, body.messages[0]),
      continues: null,
      choices: 1,
      multiplierUnknown: null,
    };
  },

  scan,

  prepare(body, plan: CallPlan) {
    const out = withoutTaskBudget(body);
    if (plan.maxTokens !== null) out.max_tokens = plan.maxTokens;
    if (plan.nativeBudget) {
      const oc = isRecord(out.output_config) ? out.output_config : {};
      out.output_config = { ...oc, task_budget: { type: 'tokens', ...plan.nativeBudget } };
    }
    if (plan.countdown) {
      // After the last cache breakpoint: a text block appended to the last user turn, so every byte before it
      // (system, tools, earlier turns) stays as the client sent it and the prompt cache stays valid.
      const messages = [...(body.messages as unknown[])];
      for (let i = messages.length - 1; i >= 0; i--) {
        const m = messages[i];
        if (!isRecord(m) || m.role !== 'user') continue;
        const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : [...(m.content as unknown[])];
        blocks.push({ type: 'text', text: plan.countdown });
        messages[i] = { ...m, content: blocks };
        break;
      }
      out.messages = messages;
    }
    return out;
  },

  strip: withoutTaskBudget,

  usageFromResponse(json: unknown): Usage | null {
    return isRecord(json) ? usageOf(json.usage) : null;
  },

  streamMeter(): StreamMeter {
    let usage: Usage | null = null;
    let complete = false;
    let final = false;
    const delivered = new DeliveredOutput();
    return {
      push(event, data) {
        if (event === 'content_block_delta') {
          // Text, thinking and a tool call's input as they arrive: what a cut stream is charged for.
          const plain = PLAIN_TEXT_DELTA.exec(data) ?? PLAIN_THINKING_DELTA.exec(data);
          if (plain) return delivered.add(plain[1]);
          const delta = (JSON.parse(data) as Record<string, unknown>).delta;
          if (isRecord(delta)) delivered.add(delta.text ?? delta.thinking ?? delta.partial_json);
        } else if (event === 'message_start' || event === 'message_delta') {
          const parsed = JSON.parse(data) as Record<string, unknown>;
          const u = usageOf(event === 'message_start' && isRecord(parsed.message) ? parsed.message.usage : parsed.usage);
          if (!u) return;
          // message_delta carries cumulative counts; fields it omits keep their message_start values.
          usage = usage
            ? {
                inputTokens: Math.max(usage.inputTokens, u.inputTokens),
                outputTokens: Math.max(usage.outputTokens, u.outputTokens),
                cacheWriteTokens: Math.max(usage.cacheWriteTokens, u.cacheWriteTokens),
                cacheReadTokens: Math.max(usage.cacheReadTokens, u.cacheReadTokens),
              }
            : u;
          // message_delta carries the output of the whole message; message_start only the input (and 1 output token).
          if (event === 'message_delta') final = true;
        } else if (event === 'message_stop') {
          complete = true;
        }
      },
      usage: () => usage,
      outputTokensDelivered: () => delivered.tokens(),
      get final() {
        return final;
      },
      get complete() {
        return complete;
      },
    };
  },

  errorBody(code, message) {
    return { type: 'error', error: { type: ERROR_TYPES[code], message } };
  },

  streamError(code, message) {
    return `event: error\ndata: ${JSON.stringify(this.errorBody(code, message))}\n\n`;
  },

  callHeaders(headers, _shape, plan) {
    if (plan.nativeBudget) headers.set('anthropic-beta', withListValue(headers.get('anthropic-beta'), TASK_BUDGET_BETA));
  },

  async countInputTokens(req) {
    // count_tokens takes the prompt's fields only, and refuses any other.
    const prompt: Record<string, unknown> = {};
    for (const k of COUNT_FIELDS) if (req.body[k] !== undefined) prompt[k] = req.body[k];
    const answer = await req.post('/v1/messages/count_tokens', prompt);
    if (!isRecord(answer) || typeof answer.input_tokens !== 'number') throw new EnvelopeError('upstream_error', 'count_tokens answered without input_tokens');
    return answer.input_tokens;
  },
};
