// OpenAI Responses: https://platform.openai.com/docs/api-reference/responses (JSON and SSE), what the OpenAI Agents
// SDK, Codex CLI and the AI SDK's `openai()` call. Usage: input_tokens counts the whole context (its cached part in
// input_tokens_details.cached_tokens), output_tokens counts reasoning too: parts, never added twice. The countdown is
// an input_text on the last user input item, or one more user item after tool outputs; max_output_tokens degrades.
import { EnvelopeError } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';
import { appendTo, member, need, parsedMember, scanBody, setMember, splice, stringAt, stringMember, valueAt, wrap, type JsonNode } from './json-scan.js';
import { OPENAI_FAMILY, openaiErrorBody, optionalMax, stripOutputConfig, stripOutputConfigEdits } from './openai.js';
import { appendable, conversationOf, count, DeliveredOutput, isRecord, optionalPart, PLAIN, plainEvent, scannedConversation, shownValue, type CallPlan, type CallShape, type Provider, type ScannedCall, type StreamMeter } from './provider.js';

const bad = (message: string): EnvelopeError => new EnvelopeError('invalid_request', message);

/** The terminal events of a stream: each carries the whole response, usage included. */
const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);
const WHOLE_RESPONSE = /"type":\s*"response\.(created|completed|incomplete|failed)"/;
const DELTA = /"type":\s*"response\.[a-z_.]+\.delta"/;
/** A delta of output text as OpenAI writes it, read without parsing (see PLAIN). */
export const PLAIN_TEXT_DELTA = plainEvent`{"type":"response.output_text.delta","sequence_number":${PLAIN.INT},"item_id":${PLAIN.STRING},"output_index":${PLAIN.INT},"content_index":${PLAIN.INT},"delta":${PLAIN.TEXT}${optionalPart`,"logprobs":[]`}${optionalPart`,"obfuscation":${PLAIN.STRING}`}}`;

function usageOf(u: unknown): Usage | null {
  if (!isRecord(u)) return null;
  const details = isRecord(u.input_tokens_details) ? u.input_tokens_details : {};
  const cached = count(details.cached_tokens);
  const written = count(details.cache_write_tokens);
  return {
    inputTokens: Math.max(0, count(u.input_tokens) - cached - written),
    // Reasoning tokens are a part of output_tokens already.
    outputTokens: count(u.output_tokens),
    cacheWriteTokens: written,
    cacheReadTokens: cached,
  };
}

const isMessage = (i: unknown): i is Record<string, unknown> => isRecord(i) && (i.type === undefined || i.type === 'message') && typeof i.role === 'string';
const isSystem = (i: unknown): boolean => isMessage(i) && (i.role === 'system' || i.role === 'developer');

/** isMessage on a scanned item: an object whose type is absent or "message", with a string role. */
function messageRole(raw: Buffer, item: JsonNode): string | undefined {
  const type = member(raw, item, 'type');
  if (type !== undefined && !(type.kind === 'string' && stringAt(raw, type.start, type.end) === 'message')) return undefined;
  return stringMember(raw, item, 'role');
}

const multiplierOf = (n: unknown): string | null => (n === undefined || n === null || n === 1 ? null : `n ${shownValue(n)} is no field of the Responses API`);

/** `parse` and `prepare` on the bytes (issue 16); anything off the common path throws ScanFallback. */
function scan(raw: Buffer): ScannedCall {
  const body = scanBody(raw);
  const model = stringMember(raw, body, 'model');
  const input = member(raw, body, 'input');
  need(model !== undefined && model !== '' && (input?.kind === 'string' || (input?.kind === 'array' && input.children!.every((i) => i.kind === 'object'))));
  const maxTokens = optionalMax(raw, member(raw, body, 'max_output_tokens'));
  const previous = member(raw, body, 'previous_response_id');
  need(previous === undefined || previous.kind === 'null' || previous.kind === 'string');
  const continues = previous?.kind === 'string' ? stringAt(raw, previous.start, previous.end) : null;
  const items = input.kind === 'array' ? input.children! : [];
  const last = items.at(-1);
  const lastIsUser = input.kind === 'string' || (last !== undefined && messageRole(raw, last) === 'user');
  const content = input.kind === 'string' ? input : member(raw, last, 'content');
  need(!lastIsUser || content?.kind === 'string' || content?.kind === 'array');
  const firstItem = input.kind === 'string' ? input : items.find((i) => !['system', 'developer'].includes(messageRole(raw, i) ?? ''));
  const first = (): unknown => (input.kind === 'string' ? { role: 'user', content: valueAt(raw, input) } : firstItem && valueAt(raw, firstItem));
  // A continued response's opening is held by the provider: the pipeline takes the conversation it continues.
  const instructions = member(raw, body, 'instructions');
  const conversation = continues ? null : scannedConversation('openai-responses', raw, [instructions, firstItem], () => [instructions && valueAt(raw, instructions), first()]);
  const shape: CallShape = {
    model,
    maxTokens,
    stream: member(raw, body, 'stream')?.kind === 'true',
    taskBudget: null,
    turnStart: lastIsUser,
    messageCount: input.kind === 'string' ? 1 : items.length,
    conversation,
    continues,
    choices: 1,
    multiplierUnknown: multiplierOf(parsedMember(raw, body, 'n')),
  };
  return {
    shape,
    strip: () => splice(raw, stripOutputConfigEdits(raw, body)),
    prepare(plan) {
      const edits = stripOutputConfigEdits(raw, body);
      if (plan.maxTokens !== null) edits.push(setMember(raw, body, 'max_output_tokens', JSON.stringify(plan.maxTokens)));
      if (plan.countdown) {
        const part = `{"type":"input_text","text":${JSON.stringify(plan.countdown)}}`;
        if (input.kind === 'string') edits.push(...wrap(input, '[{"role":"user","content":[{"type":"input_text","text":', `},${part}]}]`));
        else if (!lastIsUser) edits.push(appendTo(raw, input, `{"type":"message","role":"user","content":[${part}]}`));
        else if (content!.kind === 'string') edits.push(...wrap(content!, '[{"type":"input_text","text":', `},${part}]`));
        else edits.push(appendTo(raw, content!, part));
      }
      return splice(raw, edits);
    },
  };
}

export const openaiResponses: Provider = {
  name: 'openai-responses',
  system: 'openai',
  family: OPENAI_FAMILY,
  routes: [{ method: 'POST', path: '/v1/responses', label: '/v1/responses', kind: 'call' }],

  parse(body: unknown): CallShape {
    if (!isRecord(body)) throw bad('the request body must be a JSON object');
    if (typeof body.model !== 'string' || body.model === '') throw bad("Missing required parameter: 'model'.");
    const input = body.input;
    if (typeof input !== 'string' && !Array.isArray(input)) throw bad("'input' must be a string or an array of input items");
    if (Array.isArray(input) && !input.every(isRecord)) throw bad("'input' items must be objects");
    const max = body.max_output_tokens;
    if (max !== undefined && max !== null && (!Number.isInteger(max) || (max as number) < 1)) throw bad("'max_output_tokens' must be a positive whole number");
    if (body.previous_response_id !== undefined && body.previous_response_id !== null && typeof body.previous_response_id !== 'string') {
      throw bad("'previous_response_id' must be a string");
    }
    const items = typeof input === 'string' ? [{ role: 'user', content: input }] : (input as Record<string, unknown>[]);
    const last = items.at(-1);
    if (isMessage(last) && last.role === 'user' && !appendable(last.content)) throw bad("the last user item's content must be a string or an array of input parts");
    const continues = typeof body.previous_response_id === 'string' ? body.previous_response_id : null;
    const first = items.find((i) => !isSystem(i));
    return {
      model: body.model,
      maxTokens: typeof max === 'number' ? max : null,
      stream: body.stream === true,
      taskBudget: null,
      turnStart: isMessage(last) && last.role === 'user',
      messageCount: items.length,
      // A continued response's opening is held by the provider: the pipeline takes the conversation it continues.
      conversation: continues ? null : conversationOf('openai-responses', body.instructions, first),
      continues,
      // Responses generates one answer a request; an `n` is no field of OpenAI's, and a server that honours one
      // multiplies the output by a count Envelope does not hold for.
      choices: 1,
      multiplierUnknown: body.n === undefined || body.n === null || body.n === 1 ? null : `n ${shownValue(body.n)} is no field of the Responses API`,
    };
  },

  scan,

  prepare(body, plan: CallPlan) {
    const out = stripOutputConfig({ ...body });
    if (plan.maxTokens !== null) out.max_output_tokens = plan.maxTokens;
    if (plan.countdown) {
      // At the very end, after every cached prefix: a part of the last user item, or a new user item after tool outputs.
      const items = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : [...(body.input as unknown[])];
      const last = items.at(-1);
      const part = { type: 'input_text', text: plan.countdown };
      if (isMessage(last) && last.role === 'user') {
        const parts = typeof last.content === 'string' ? [{ type: 'input_text', text: last.content }] : [...(last.content as unknown[])];
        items[items.length - 1] = { ...last, content: [...parts, part] };
      } else {
        items.push({ type: 'message', role: 'user', content: [part] });
      }
      out.input = items;
    }
    return out;
  },

  strip: stripOutputConfig,

  usageFromResponse(json: unknown): Usage | null {
    return isRecord(json) ? usageOf(json.usage) : null;
  },

  responseId(json: unknown): string | null {
    return isRecord(json) && typeof json.id === 'string' ? json.id : null;
  },

  streamMeter(): StreamMeter {
    let usage: Usage | null = null;
    let id: string | null = null;
    let complete = false;
    const delivered = new DeliveredOutput();
    return {
      push(event, data) {
        // Deltas of output (text, refusal, reasoning, tool-call arguments; audio is billed apart) are what a cut stream
        // is charged for; the first event has the id, the terminal one the whole response. The others are skipped
        // unparsed. A compatible server that omits `event:` lines is read by the data's own type.
        const plain = event === 'response.output_text.delta' || event === undefined ? PLAIN_TEXT_DELTA.exec(data) : null;
        if (plain) return delivered.add(plain[1]);
        if (event === undefined ? !DELTA.test(data) && !WHOLE_RESPONSE.test(data) : !event.endsWith('.delta') && event !== 'response.created' && !TERMINAL.has(event)) return;
        const parsed = JSON.parse(data) as Record<string, unknown>;
        const type = event ?? String(parsed.type);
        if (type.endsWith('.delta')) {
          if (!type.includes('audio')) delivered.add(parsed.delta);
          return;
        }
        const response = isRecord(parsed.response) ? parsed.response : {};
        if (typeof response.id === 'string') id = response.id;
        if (!TERMINAL.has(type)) return;
        usage = usageOf(response.usage) ?? usage;
        complete = true;
      },
      usage: () => usage,
      outputTokensDelivered: () => delivered.tokens(),
      responseId: () => id,
      get final() {
        return complete && usage !== null;
      },
      get complete() {
        return complete;
      },
    };
  },

  errorBody: openaiErrorBody,

  streamError(code, message) {
    return `event: error\ndata: ${JSON.stringify({ type: 'error', code, message, param: null })}\n\n`;
  },

  callHeaders(headers, shape) {
    if (shape.stream) headers.set('accept', 'text/event-stream');
  },
};
