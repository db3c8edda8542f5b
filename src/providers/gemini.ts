// Google Gemini API: https://ai.google.dev/api/generate-content — generateContent (JSON) and
// streamGenerateContent?alt=sse, with the model in the path; countTokens and the model listing are forwarded.
// Usage from usageMetadata: promptTokenCount (cachedContentTokenCount is its cached part, toolUsePromptTokenCount
// comes on top) and candidatesTokenCount + thoughtsTokenCount (thinking is billed as output, outside the candidates).
// The countdown is a text part on the last user content; generationConfig.maxOutputTokens degrades. The caller's
// `?key=` passes through upstream untouched and is never logged.
import { EnvelopeError, type ErrorCode } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';
import { appendTo, member, need, parsedMember, scanAt, scanBody, setMember, splice, stringMember, valueAt, type Edit, type JsonNode } from './json-scan.js';
import { optionalMax } from './openai.js';
import { conversationOf, count, DeliveredOutput, isRecord, multiplier, scannedConversation, type CallPlan, type CallShape, type Provider, type ScannedCall, type StreamMeter } from './provider.js';

/** Gemini's error statuses (google.rpc.Code names) by Envelope's codes. */
const STATUS: Record<ErrorCode, string> = {
  invalid_request: 'INVALID_ARGUMENT',
  not_found: 'NOT_FOUND',
  conflict: 'ALREADY_EXISTS',
  budget_exceeded: 'RESOURCE_EXHAUSTED',
  budget_paused: 'RESOURCE_EXHAUSTED',
  task_closed: 'FAILED_PRECONDITION',
  price_unknown: 'INVALID_ARGUMENT',
  unauthorized: 'UNAUTHENTICATED',
  forbidden: 'PERMISSION_DENIED',
  unsupported_media_type: 'INVALID_ARGUMENT',
  overloaded: 'UNAVAILABLE',
  rate_limited: 'RESOURCE_EXHAUSTED',
  upstream_error: 'UNAVAILABLE',
  store_unavailable: 'UNAVAILABLE',
  request_too_large: 'INVALID_ARGUMENT',
  internal: 'INTERNAL',
};

const bad = (message: string): EnvelopeError => new EnvelopeError('invalid_request', message);

/** generationConfig.candidateCount: at most 8 candidates a request. */
const GEMINI_CANDIDATES_MAX = 8;

/** `/v1beta/models/{model}:{method}`: the model and the method from a call's path. */
const CALL_PATH = /\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;

function usageOf(u: unknown): Usage | null {
  if (!isRecord(u)) return null;
  const cached = count(u.cachedContentTokenCount);
  return {
    inputTokens: Math.max(0, count(u.promptTokenCount) - cached) + count(u.toolUsePromptTokenCount),
    outputTokens: count(u.candidatesTokenCount) + count(u.thoughtsTokenCount),
    cacheWriteTokens: 0,
    cacheReadTokens: cached,
  };
}

const errorBody = (code: ErrorCode, message: string): unknown => ({ error: { code: new EnvelopeError(code, message).httpStatus, message, status: STATUS[code] } });

const isUserContent = (c: unknown): c is Record<string, unknown> => isRecord(c) && (c.role === undefined || c.role === 'user');

/** isUserContent on a scanned content: an object whose role is absent or "user". */
function userContent(raw: Buffer, c: JsonNode): boolean {
  const role = member(raw, c, 'role');
  return c.kind === 'object' && (role === undefined || stringMember(raw, c, 'role') === 'user');
}

/** `parse` and `prepare` on the bytes (issue 16); anything off the common path throws ScanFallback. */
function scan(raw: Buffer, path: string): ScannedCall {
  const m = CALL_PATH.exec(path);
  need(m !== null);
  const body = scanBody(raw);
  const contents = member(raw, body, 'contents');
  need(contents?.kind === 'array' && contents.children!.length > 0);
  need(contents.children!.every((c) => c.kind === 'object' && (member(raw, c, 'parts') === undefined || member(raw, c, 'parts')!.kind === 'array')));
  const config = member(raw, body, 'generationConfig');
  need(config === undefined || config.kind === 'object');
  const maxTokens = optionalMax(raw, member(raw, config, 'maxOutputTokens'));
  const last = contents.children!.at(-1)!;
  const parts = member(raw, last, 'parts');
  const tools = parts !== undefined && scanAt(raw, parts, 2).children!.some((p) => member(raw, p, 'functionResponse') !== undefined);
  const candidates = member(raw, config, 'candidateCount');
  const isUser = userContent(raw, last);
  const shape: CallShape = {
    model: decodeURIComponent(m[1]!),
    maxTokens,
    stream: m[2] === 'streamGenerateContent',
    taskBudget: null,
    turnStart: isUser && !tools,
    messageCount: contents.children!.length,
    conversation: scannedConversation('gemini', raw, [member(raw, body, 'systemInstruction'), contents.children![0]], () => [parsedMember(raw, body, 'systemInstruction'), valueAt(raw, contents.children![0]!)]),
    continues: null,
    // Each candidate is billed its own output.
    ...(config ? multiplier(candidates ? { candidateCount: valueAt(raw, candidates) } : {}, 'candidateCount', GEMINI_CANDIDATES_MAX) : { choices: 1, multiplierUnknown: null }),
  };
  return {
    shape,
    strip: () => [raw],
    prepare(plan) {
      const edits: Edit[] = [];
      if (plan.maxTokens !== null) {
        const generationConfig = config ? (valueAt(raw, config) as Record<string, unknown>) : {};
        edits.push(setMember(raw, body, 'generationConfig', JSON.stringify({ ...generationConfig, maxOutputTokens: plan.maxTokens })));
      }
      if (plan.countdown) {
        const part = `{"text":${JSON.stringify(plan.countdown)}}`;
        if (!isUser) edits.push(appendTo(raw, contents, `{"role":"user","parts":[${part}]}`));
        else edits.push(parts ? appendTo(raw, parts, part) : appendTo(raw, last, `"parts":[${part}]`));
      }
      return splice(raw, edits);
    },
  };
}

export const gemini: Provider = {
  name: 'gemini',
  system: 'gcp.gemini',
  family: { name: 'gemini', defaultUrl: 'https://generativelanguage.googleapis.com', basePath: '', describe: 'Gemini API base URL, without /v1beta' },
  routes: [
    { method: 'POST', path: /^\/v1(beta|alpha)?\/models\/[^/:]+:(generateContent|streamGenerateContent)$/, label: '/v1beta/models/{model}:generateContent|streamGenerateContent', kind: 'call', keepQuery: true },
    { method: 'POST', path: /^\/v1(beta|alpha)?\/models\/[^/:]+:countTokens$/, label: '/v1beta/models/{model}:countTokens', kind: 'forward', keepQuery: true },
    { method: 'GET', path: /^\/v1(beta|alpha)?\/models(\/[^/]+)?$/, label: '/v1beta/models[/{model}]', kind: 'forward', keepQuery: true },
  ],
  ownsCaller: (h, path) => h['x-goog-api-key'] !== undefined || (path?.startsWith('/v1beta/') ?? false),
  aiSdkProvider: 'google',

  parse(body: unknown, path: string): CallShape {
    const m = CALL_PATH.exec(path);
    if (!m) throw bad(`${path} is not a generateContent or streamGenerateContent call`);
    if (!isRecord(body)) throw bad('Invalid JSON payload received: the request body must be a JSON object.');
    if (!Array.isArray(body.contents) || body.contents.length === 0) throw bad('* GenerateContentRequest.contents: contents is not specified');
    if (!body.contents.every((c) => isRecord(c) && (c.parts === undefined || Array.isArray(c.parts)))) {
      throw bad('* GenerateContentRequest.contents: each content needs a list of parts');
    }
    const config = body.generationConfig;
    if (config !== undefined && !isRecord(config)) throw bad('* GenerateContentRequest.generation_config: must be an object');
    const max = isRecord(config) ? config.maxOutputTokens : undefined;
    if (max !== undefined && max !== null && (!Number.isInteger(max) || (max as number) < 1)) {
      throw bad('* GenerateContentRequest.generation_config.max_output_tokens: must be a positive whole number');
    }
    const last = body.contents.at(-1) as Record<string, unknown>;
    const tools = Array.isArray(last.parts) && last.parts.some((p) => isRecord(p) && p.functionResponse !== undefined);
    return {
      model: decodeURIComponent(m[1]!),
      maxTokens: typeof max === 'number' ? max : null,
      stream: m[2] === 'streamGenerateContent',
      taskBudget: null,
      turnStart: isUserContent(last) && !tools,
      messageCount: body.contents.length,
      conversation: conversationOf('gemini', body.systemInstruction, body.contents[0]),
      continues: null,
      // Each candidate is billed its own output.
      ...(isRecord(config) ? multiplier(config, 'candidateCount', GEMINI_CANDIDATES_MAX) : { choices: 1, multiplierUnknown: null }),
    };
  },

  scan,

  prepare(body, plan: CallPlan) {
    const out: Record<string, unknown> = { ...body };
    if (plan.maxTokens !== null) out.generationConfig = { ...(isRecord(body.generationConfig) ? body.generationConfig : {}), maxOutputTokens: plan.maxTokens };
    if (plan.countdown) {
      // At the very end, after every cached prefix: a text part of the last user content, or a new user content.
      const contents = [...(body.contents as Record<string, unknown>[])];
      const last = contents.at(-1)!;
      const part = { text: plan.countdown };
      if (isUserContent(last)) contents[contents.length - 1] = { ...last, parts: [...((last.parts as unknown[] | undefined) ?? []), part] };
      else contents.push({ role: 'user', parts: [part] });
      out.contents = contents;
    }
    return out;
  },

  strip: (body) => body,

  usageFromResponse(json: unknown): Usage | null {
    return isRecord(json) ? usageOf(json.usageMetadata) : null;
  },

  streamMeter(): StreamMeter {
    let usage: Usage | null = null;
    let complete = false;
    const delivered = new DeliveredOutput();
    return {
      push(_event, data) {
        // Every chunk carries the usage so far; the one with a finish reason carries all of it. Its parts (text,
        // thoughts, function calls) are what a cut stream is charged for.
        const chunk = JSON.parse(data) as Record<string, unknown>;
        usage = usageOf(chunk.usageMetadata) ?? usage;
        if (!Array.isArray(chunk.candidates)) return;
        for (const c of chunk.candidates) {
          if (!isRecord(c)) continue;
          if (typeof c.finishReason === 'string') complete = true;
          const parts = isRecord(c.content) && Array.isArray(c.content.parts) ? c.content.parts : [];
          for (const p of parts) if (isRecord(p)) delivered.add(p.functionCall !== undefined ? JSON.stringify(p.functionCall) : p.text);
        }
      },
      usage: () => usage,
      outputTokensDelivered: () => delivered.tokens(),
      get final() {
        return complete && usage !== null;
      },
      get complete() {
        return complete;
      },
    };
  },

  errorBody,

  streamError(code, message) {
    return `data: ${JSON.stringify(errorBody(code, message))}\r\n\r\n`;
  },

  async countInputTokens(req) {
    const answer = await req.post(req.path.replace(CALL_PATH, (_all, model: string) => `/models/${model}:countTokens`), {
      generateContentRequest: { model: `models/${CALL_PATH.exec(req.path)?.[1] ?? ''}`, ...req.body },
    });
    if (!isRecord(answer) || typeof answer.totalTokens !== 'number') throw new EnvelopeError('upstream_error', 'countTokens answered without totalTokens');
    return answer.totalTokens;
  },
};
