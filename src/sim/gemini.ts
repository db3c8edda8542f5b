// The simulator's Gemini API (v1beta, also under v1 and v1alpha): POST /v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse
// and :countTokens, GET /v1beta/models[/{model}]. Usage as Gemini shapes it: promptTokenCount counts the whole prompt
// (its cached part in cachedContentTokenCount), candidatesTokenCount the answer, thoughtsTokenCount the thinking
// apart from it (header x-sim-reasoning-tokens), all of them in totalTokenCount. Caching is implicit, as Gemini 2.5's.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decide, type AgentView } from './agent.js';
import type { Segment } from './cache.js';
import type { SimContext } from './context.js';
import { MESSAGE_OVERHEAD_TOKENS, outputText, textTokens } from './tokens.js';

type Body = Record<string, any>;

const STATUS_OF: Record<number, string> = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 529: 'UNAVAILABLE' };

export function error(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).send({ error: { code: status, message, status: STATUS_OF[status] ?? 'UNKNOWN' } });
}

export const GEMINI_MODELS = ['gemini-2.5-pro', 'gemini-2.5-flash', 'gemini-2.5-flash-lite', 'gemini-3-pro-preview'];

const modelInfo = (id: string): Body => ({
  name: `models/${id}`,
  version: '001',
  displayName: id,
  description: `Simulated ${id}`,
  inputTokenLimit: 1_048_576,
  outputTokenLimit: 65_536,
  supportedGenerationMethods: ['generateContent', 'countTokens', 'createCachedContent', 'batchGenerateContent'],
  temperature: 1,
  topP: 0.95,
  topK: 64,
  maxTemperature: 2,
  thinking: true,
});

function partTokens(p: Body): number {
  if (typeof p?.text === 'string') return textTokens(p.text);
  if (p?.functionCall) return MESSAGE_OVERHEAD_TOKENS + textTokens(`${p.functionCall.name ?? ''}${JSON.stringify(p.functionCall.args ?? {})}`);
  if (p?.functionResponse) return MESSAGE_OVERHEAD_TOKENS + textTokens(JSON.stringify(p.functionResponse.response ?? {}));
  return textTokens(JSON.stringify(p ?? null));
}

const partsOf = (c: unknown): Body[] => (Array.isArray((c as Body)?.parts) ? (c as Body).parts : []);
const textOfParts = (parts: Body[]): string => parts.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('\n');

/** Tools, the system instruction and every content, in order; each content ends a cacheable prefix. */
function segmentsOf(body: Body): Segment[] {
  const out: Segment[] = [];
  if (Array.isArray(body.tools) && body.tools.length) {
    const bytes = JSON.stringify(body.tools);
    out.push({ bytes, tokens: textTokens(bytes), breakpoint: false });
  }
  if (body.systemInstruction) {
    const bytes = JSON.stringify(body.systemInstruction);
    out.push({ bytes, tokens: partsOf(body.systemInstruction).reduce((n, p) => n + partTokens(p), 0), breakpoint: false });
  }
  for (const c of body.contents as Body[]) {
    out.push({ bytes: JSON.stringify(c), tokens: MESSAGE_OVERHEAD_TOKENS + partsOf(c).reduce((n, p) => n + partTokens(p), 0), breakpoint: true });
  }
  return out;
}

const functionNames = (body: Body): string[] =>
  ((body.tools as Body[] | undefined) ?? []).flatMap((t) => ((t?.functionDeclarations as Body[] | undefined) ?? []).map((f) => String(f.name)));

function viewOf(body: Body): AgentView {
  const contents = body.contents as Body[];
  const users = contents.filter((c) => (c.role ?? 'user') === 'user' && partsOf(c).some((p) => typeof p?.text === 'string'));
  return {
    firstUserText: textOfParts(partsOf(users[0])),
    lastUserText: textOfParts(partsOf(users.at(-1))),
    toolResults: contents.reduce((n, c) => n + partsOf(c).filter((p) => p?.functionResponse).length, 0),
    hasTools: functionNames(body).length > 0,
    nativeBudget: null,
  };
}

function validate(body: Body | undefined, reply: FastifyReply): body is Body {
  if (!body || typeof body !== 'object') return void error(reply, 400, 'Invalid JSON payload received.'), false;
  if (!Array.isArray(body.contents) || body.contents.length === 0) return void error(reply, 400, '* GenerateContentRequest.contents: contents is not specified'), false;
  const max = body.generationConfig?.maxOutputTokens;
  if (max !== undefined && (!Number.isInteger(max) || max < 1)) return void error(reply, 400, '* GenerateContentRequest.generation_config.max_output_tokens: must be a positive integer'), false;
  return true;
}


async function generate(ctx: SimContext, model: string, stream: boolean, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = req.body as Body | undefined;
  if (!validate(body, reply)) return reply;
  const fault = await ctx.fault(req, reply, (status, _type, message) => error(reply, status, message));
  if (fault === 'handled') return reply;
  const cache = ctx.cache.account(segmentsOf(body), true);
  const wanted = ctx.outputTokensFor(req);
  const max = body.generationConfig?.maxOutputTokens ?? Number.POSITIVE_INFINITY;
  // Thinking counts against maxOutputTokens, as on Gemini 2.5; it is billed as output, apart from the candidates.
  const thoughts = Math.min(ctx.reasoningTokensFor(req), max);
  const candidates = Math.min(wanted, max - thoughts);
  const truncated = candidates < wanted;
  const move = decide(viewOf(body), wanted, ctx.heedsBudget(req));
  const text = outputText(candidates, move.text);
  const tool = move.kind === 'tool' && !truncated ? functionNames(body)[0] : undefined;
  const responseId = ctx.nextId('gsim');
  const usage = (out: number): Body => ({
    promptTokenCount: cache.totalTokens,
    ...(out > 0 ? { candidatesTokenCount: out } : {}),
    totalTokenCount: cache.totalTokens + out + thoughts,
    ...(cache.readTokens > 0 ? { cachedContentTokenCount: cache.readTokens } : {}),
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: cache.totalTokens }],
    ...(cache.readTokens > 0 ? { cacheTokensDetails: [{ modality: 'TEXT', tokenCount: cache.readTokens }] } : {}),
    ...(thoughts > 0 ? { thoughtsTokenCount: thoughts } : {}),
  });
  const call = tool && move.kind === 'tool' ? { functionCall: { name: tool, args: { n: move.subtask } } } : null;
  const finishReason = truncated ? 'MAX_TOKENS' : 'STOP';
  const chunkOf = (parts: Body[], finished: boolean, out: number): Body => ({
    candidates: [{ content: { parts, role: 'model' }, ...(finished ? { finishReason } : {}), index: 0 }],
    usageMetadata: usage(out),
    modelVersion: model,
    responseId,
  });
  await ctx.firstByteDelay();
  if (!stream) {
    if (fault === 'reset') return void req.socket.destroy(), reply;
    return reply.send(chunkOf([{ text }, ...(call ? [call] : [])], true, candidates));
  }
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const pieces = ctx.chunk(text);
  let sent = 0;
  for (const [i, piece] of pieces.entries()) {
    if (res.destroyed) return reply;
    sent += piece.length;
    const last = i === pieces.length - 1;
    // Every chunk carries the usage so far; the last one the whole of it and the finish reason.
    const parts: Body[] = [{ text: piece }, ...(last && call ? [call] : [])];
    res.write(`data: ${JSON.stringify(chunkOf(parts, last, last ? candidates : Math.ceil(sent / 4)))}\r\n\r\n`);
    if (fault === 'reset' && i === 0) return void res.destroy(), reply;
    await ctx.chunkDelay();
  }
  res.end();
  return reply;
}

function countTokens(ctx: SimContext, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const body = (req.body ?? {}) as Body;
  // The request's own fields, or a whole GenerateContentRequest under generateContentRequest.
  const inner: Body = body.generateContentRequest ?? body;
  if (!Array.isArray(inner.contents)) return error(reply, 400, '* CountTokensRequest.contents: contents is not specified');
  const total = ctx.cache.account(segmentsOf(inner), false).totalTokens;
  return reply.send({ totalTokens: total, promptTokensDetails: [{ modality: 'TEXT', tokenCount: total }] });
}

/** The API versions a Gemini path may name (the gateway serves them all). */
const VERSIONS = ['v1beta', 'v1', 'v1alpha'];

export function registerGemini(app: FastifyInstance, ctx: SimContext): void {
  for (const version of VERSIONS) registerVersion(app, ctx, version);
}

function registerVersion(app: FastifyInstance, ctx: SimContext, version: string): void {
  app.post(`/${version}/models/*`, (req, reply) => {
    const target = (req.params as { '*': string })['*'];
    const at = target.lastIndexOf(':');
    const model = at > 0 ? target.slice(0, at) : target;
    const method = at > 0 ? target.slice(at + 1) : '';
    if (method === 'generateContent') return generate(ctx, model, false, req, reply);
    if (method === 'streamGenerateContent') return generate(ctx, model, true, req, reply);
    if (method === 'countTokens') return countTokens(ctx, req, reply);
    return error(reply, 404, `Method ${method || '(none)'} is not found for models/${model}.`);
  });
  // /v1/models is the OpenAI and Anthropic listing's: Gemini's listing is served under v1beta.
  if (version !== 'v1beta') return;
  app.get(`/${version}/models`, async () => ({ models: GEMINI_MODELS.map(modelInfo) }));
  app.get(`/${version}/models/:model`, (req, reply) => {
    const id = (req.params as { model: string }).model;
    return GEMINI_MODELS.includes(id) ? reply.send(modelInfo(id)) : error(reply, 404, `models/${id} is not found for API version ${version}.`);
  });
}
