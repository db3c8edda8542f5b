// The simulator's OpenAI Chat Completions API: POST /v1/chat/completions (JSON and SSE with include_usage).
// Prompt caching is automatic, as OpenAI's: a previously seen prefix of whole messages (≥ cacheMinTokens) is
// reported in usage.prompt_tokens_details.cached_tokens.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { decide, type AgentView } from './agent.js';
import type { Segment } from './cache.js';
import type { SimContext } from './context.js';
import { contentTokens, MESSAGE_OVERHEAD_TOKENS, outputText, textOf, textTokens } from './tokens.js';

type Body = Record<string, any>;

function error(reply: FastifyReply, status: number, type: string, message: string): FastifyReply {
  return reply.code(status).send({ error: { message, type, param: null, code: null } });
}

function segmentsOf(body: Body): Segment[] {
  const out: Segment[] = [];
  if (Array.isArray(body.tools)) {
    const bytes = JSON.stringify(body.tools);
    out.push({ bytes, tokens: textTokens(bytes), breakpoint: false });
  }
  for (const m of body.messages as Body[]) {
    let tokens = MESSAGE_OVERHEAD_TOKENS + contentTokens(m.content);
    if (Array.isArray(m.tool_calls)) tokens += textTokens(JSON.stringify(m.tool_calls));
    out.push({ bytes: JSON.stringify(m), tokens, breakpoint: true });
  }
  return out;
}

function viewOf(body: Body): AgentView {
  const messages = body.messages as Body[];
  const users = messages.filter((m) => m.role === 'user');
  return {
    firstUserText: textOf(users[0]?.content),
    lastUserText: textOf(users.at(-1)?.content),
    toolResults: messages.filter((m) => m.role === 'tool').length,
    hasTools: Array.isArray(body.tools) && body.tools.length > 0,
    nativeBudget: null,
  };
}

export async function openaiChat(ctx: SimContext, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = req.body as Body | undefined;
  if (!body || typeof body.model !== 'string') return error(reply, 400, 'invalid_request_error', 'you must provide a model parameter');
  if (!Array.isArray(body.messages) || body.messages.length === 0) return error(reply, 400, 'invalid_request_error', "'messages' must be a non-empty array");
  const max = body.max_completion_tokens ?? body.max_tokens;
  if (max !== undefined && max !== null && (!Number.isInteger(max) || max < 1)) {
    return error(reply, 400, 'invalid_request_error', 'max_completion_tokens must be a positive integer');
  }
  const fault = await ctx.fault(req, reply, (status, type, message) => error(reply, status, type, message));
  if (fault === 'handled') return reply;
  const cache = ctx.cache.account(segmentsOf(body), true);
  const wanted = ctx.outputTokensFor(req);
  const completion = typeof max === 'number' ? Math.min(wanted, max) : wanted;
  const move = decide(viewOf(body), wanted, ctx.heedsBudget(req));
  const truncated = completion < wanted;
  const id = ctx.nextId('chatcmpl-sim-');
  const created = Math.floor(Date.now() / 1000);
  const text = outputText(completion, move.text);
  const toolCall =
    move.kind === 'tool' && !truncated
      ? { id: `call_${id.slice(13)}`, type: 'function', function: { name: body.tools[0]?.function?.name ?? 'do_subtask', arguments: JSON.stringify({ n: move.subtask }) } }
      : null;
  const finish = truncated ? 'length' : toolCall ? 'tool_calls' : 'stop';
  const usage = {
    prompt_tokens: cache.totalTokens,
    completion_tokens: completion,
    total_tokens: cache.totalTokens + completion,
    prompt_tokens_details: { cached_tokens: cache.readTokens, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
  await ctx.firstByteDelay();
  if (body.stream !== true) {
    if (fault === 'reset') return void req.socket.destroy(), reply;
    return reply.send({
      id,
      object: 'chat.completion',
      created,
      model: body.model,
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null, ...(toolCall ? { tool_calls: [toolCall] } : {}) }, logprobs: null, finish_reason: finish }],
      usage,
    });
  }
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': id });
  const send = (choices: unknown[], extra: Body = {}): void => {
    res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices, ...extra })}\n\n`);
  };
  send([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
  for (const [i, piece] of ctx.chunk(text).entries()) {
    if (res.destroyed) return reply;
    send([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }]);
    if (fault === 'reset' && i === 0) return void res.destroy(), reply;
    await ctx.chunkDelay();
  }
  if (toolCall) send([{ index: 0, delta: { tool_calls: [{ index: 0, ...toolCall }] }, logprobs: null, finish_reason: null }]);
  send([{ index: 0, delta: {}, logprobs: null, finish_reason: finish }]);
  if (body.stream_options?.include_usage === true) send([], { usage });
  res.write('data: [DONE]\n\n');
  res.end();
  return reply;
}
