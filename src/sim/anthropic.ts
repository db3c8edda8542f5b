// The simulator's Anthropic Messages API: POST /v1/messages (JSON and SSE) and /v1/messages/count_tokens.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { decide, type AgentMove, type AgentView } from './agent.js';
import type { PromptCache, Segment } from './cache.js';
import { blockTokens, MESSAGE_OVERHEAD_TOKENS, outputText, textOf, textTokens } from './tokens.js';
import type { SimContext } from './context.js';

type Body = Record<string, any>;

function error(reply: FastifyReply, status: number, type: string, message: string): FastifyReply {
  return reply.code(status).send({ type: 'error', error: { type, message } });
}

/** Tools, system blocks and message blocks in prompt order, each marked where the client put a cache breakpoint. */
function segmentsOf(body: Body): Segment[] {
  const out: Segment[] = [];
  for (const tool of (body.tools as unknown[]) ?? []) {
    const bytes = JSON.stringify(tool);
    out.push({ bytes, tokens: textTokens(bytes), breakpoint: Boolean((tool as Body).cache_control) });
  }
  if (typeof body.system === 'string') out.push({ bytes: JSON.stringify(body.system), tokens: textTokens(body.system), breakpoint: false });
  else for (const b of (body.system as unknown[]) ?? []) out.push({ bytes: JSON.stringify(b), tokens: blockTokens(b), breakpoint: Boolean((b as Body).cache_control) });
  for (const m of body.messages as Body[]) {
    const blocks: unknown[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : (m.content ?? []);
    out.push({ bytes: `{"role":${JSON.stringify(m.role)}}`, tokens: MESSAGE_OVERHEAD_TOKENS, breakpoint: false });
    for (const b of blocks) out.push({ bytes: JSON.stringify(b), tokens: blockTokens(b), breakpoint: Boolean((b as Body).cache_control) });
  }
  return out;
}

export function anthropicInputTokens(body: Body, cache: PromptCache, write: boolean) {
  return cache.account(segmentsOf(body), write);
}

function viewOf(body: Body): AgentView {
  const messages = body.messages as Body[];
  const users = messages.filter((m) => m.role === 'user');
  let toolResults = 0;
  for (const m of messages) if (Array.isArray(m.content)) for (const b of m.content) if (b?.type === 'tool_result') toolResults++;
  const tb = body.output_config?.task_budget;
  return {
    firstUserText: textOf(users[0]?.content),
    lastUserText: textOf(users.at(-1)?.content),
    toolResults,
    hasTools: Array.isArray(body.tools) && body.tools.length > 0,
    nativeBudget: tb && typeof tb.total === 'number' ? { total: tb.total, remaining: tb.remaining ?? tb.total } : null,
  };
}

function validate(body: Body | undefined, reply: FastifyReply): body is Body {
  if (!body || typeof body !== 'object') return void error(reply, 400, 'invalid_request_error', 'body must be JSON'), false;
  if (typeof body.model !== 'string') return void error(reply, 400, 'invalid_request_error', 'model: Field required'), false;
  if (!Array.isArray(body.messages) || body.messages.length === 0) return void error(reply, 400, 'invalid_request_error', 'messages: Field required'), false;
  return true;
}

interface Answer {
  id: string;
  move: AgentMove;
  text: string;
  outputTokens: number;
  stopReason: 'end_turn' | 'tool_use' | 'max_tokens';
  toolName: string;
}

function answer(ctx: SimContext, body: Body, req: FastifyRequest): Answer {
  const wanted = ctx.outputTokensFor(req);
  const max = Number(body.max_tokens);
  const outputTokens = Math.min(wanted, max);
  const move = decide(viewOf(body), wanted, ctx.heedsBudget(req));
  const truncated = outputTokens < wanted;
  const toolName = (body.tools?.[0]?.name as string | undefined) ?? 'do_subtask';
  return {
    id: ctx.nextId('msg_sim_'),
    move,
    text: outputText(outputTokens, move.text),
    outputTokens,
    stopReason: truncated ? 'max_tokens' : move.kind === 'tool' ? 'tool_use' : 'end_turn',
    toolName,
  };
}

function contentOf(a: Answer): Body[] {
  const content: Body[] = [{ type: 'text', text: a.text }];
  if (a.move.kind === 'tool' && a.stopReason === 'tool_use') {
    content.push({ type: 'tool_use', id: `toolu_${a.id.slice(8)}`, name: a.toolName, input: { n: a.move.subtask } });
  }
  return content;
}

export async function anthropicMessages(ctx: SimContext, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = req.body as Body | undefined;
  if (!validate(body, reply)) return reply;
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return error(reply, 400, 'invalid_request_error', 'max_tokens: Field required');
  const tb = body.output_config?.task_budget;
  if (tb && (typeof tb.total !== 'number' || tb.total < 20_000)) {
    return error(reply, 400, 'invalid_request_error', 'output_config.task_budget.total: must be at least 20000');
  }
  const fault = await ctx.fault(req, reply, (status, type, message) => error(reply, status, type, message));
  if (fault === 'handled') return reply;
  const cache = anthropicInputTokens(body, ctx.cache, true);
  const usage = {
    input_tokens: cache.totalTokens - cache.readTokens - cache.writeTokens,
    cache_creation_input_tokens: cache.writeTokens,
    cache_read_input_tokens: cache.readTokens,
  };
  const a = answer(ctx, body, req);
  await ctx.firstByteDelay();
  if (body.stream !== true) {
    if (fault === 'reset') return void req.socket.destroy(), reply;
    return reply.send({
      id: a.id,
      type: 'message',
      role: 'assistant',
      model: body.model,
      content: contentOf(a),
      stop_reason: a.stopReason,
      stop_sequence: null,
      usage: { ...usage, output_tokens: a.outputTokens, service_tier: 'standard' },
    });
  }
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': a.id });
  const send = (event: string, data: Body): void => {
    res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`);
  };
  send('message_start', {
    message: { id: a.id, type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
  });
  send('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
  send('ping', {});
  const chunks = ctx.chunk(a.text);
  for (const [i, piece] of chunks.entries()) {
    if (res.destroyed) return reply;
    send('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece } });
    if (fault === 'reset' && i === 0) return void res.destroy(), reply;
    await ctx.chunkDelay();
  }
  send('content_block_stop', { index: 0 });
  const blocks = contentOf(a);
  if (blocks[1]) {
    const { input, ...start } = blocks[1];
    send('content_block_start', { index: 1, content_block: { ...start, input: {} } });
    send('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: JSON.stringify(input) } });
    send('content_block_stop', { index: 1 });
  }
  send('message_delta', { delta: { stop_reason: a.stopReason, stop_sequence: null }, usage: { output_tokens: a.outputTokens } });
  send('message_stop', {});
  res.end();
  return reply;
}

export async function anthropicCountTokens(ctx: SimContext, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = req.body as Body | undefined;
  if (!validate(body, reply)) return reply;
  return reply.send({ input_tokens: anthropicInputTokens(body, ctx.cache, false).totalTokens });
}
