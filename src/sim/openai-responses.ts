// The simulator's OpenAI Responses API: POST /v1/responses (JSON and SSE), as the Agents SDK, Codex CLI and the AI
// SDK's `openai()` call it. Usage as OpenAI shapes it: input_tokens counts the whole context (cached part in
// input_tokens_details.cached_tokens), output_tokens counts reasoning too (output_tokens_details.reasoning_tokens).
// Responses are kept (bounded) so `previous_response_id` continues one: its context is counted again as input.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decide, type AgentView } from './agent.js';
import type { Segment } from './cache.js';
import type { SimContext } from './context.js';
import { contentTokens, MESSAGE_OVERHEAD_TOKENS, outputText, textOf, textTokens } from './tokens.js';

type Item = Record<string, any>;

function error(reply: FastifyReply, status: number, type: string, message: string, param: string | null = null): FastifyReply {
  return reply.code(status).send({ error: { message, type, param, code: null } });
}

/** `input` as a list of items: a string is one user message. */
const itemsOf = (input: unknown): Item[] =>
  typeof input === 'string' ? [{ type: 'message', role: 'user', content: input }] : Array.isArray(input) ? (input as Item[]) : [];

const isMessage = (i: Item): boolean => (i.type === undefined || i.type === 'message') && typeof i.role === 'string';

function itemTokens(i: Item): number {
  if (isMessage(i)) return MESSAGE_OVERHEAD_TOKENS + contentTokens(i.content);
  if (i.type === 'function_call') return MESSAGE_OVERHEAD_TOKENS + textTokens(`${i.name ?? ''}${i.arguments ?? ''}`);
  if (i.type === 'function_call_output') return MESSAGE_OVERHEAD_TOKENS + (typeof i.output === 'string' ? textTokens(i.output) : contentTokens(i.output));
  return textTokens(JSON.stringify(i));
}

/** Tools, instructions and every item of the context, in order; each item ends a cacheable prefix (OpenAI caches automatically). */
function segmentsOf(body: Item, context: Item[]): Segment[] {
  const out: Segment[] = [];
  if (Array.isArray(body.tools) && body.tools.length) {
    const bytes = JSON.stringify(body.tools);
    out.push({ bytes, tokens: textTokens(bytes), breakpoint: false });
  }
  if (typeof body.instructions === 'string') out.push({ bytes: JSON.stringify(body.instructions), tokens: textTokens(body.instructions), breakpoint: false });
  for (const i of context) out.push({ bytes: JSON.stringify(i), tokens: itemTokens(i), breakpoint: true });
  return out;
}

function viewOf(body: Item, context: Item[]): AgentView {
  const users = context.filter((i) => isMessage(i) && i.role === 'user');
  // Agents put context of their own first (Codex: its environment); the job is the first message that states one.
  const job = users.find((u) => /\d+\s+subtasks?/i.test(textOf(u.content))) ?? users[0];
  return {
    firstUserText: textOf(job?.content),
    lastUserText: textOf(users.at(-1)?.content),
    toolResults: context.filter((i) => i.type === 'function_call_output').length,
    hasTools: Array.isArray(body.tools) && body.tools.some((t: Item) => t?.type === 'function'),
    nativeBudget: null,
  };
}

function validate(body: Item | undefined, reply: FastifyReply): body is Item {
  if (!body || typeof body !== 'object') return void error(reply, 400, 'invalid_request_error', 'the body must be a JSON object'), false;
  if (typeof body.model !== 'string' || body.model === '') return void error(reply, 400, 'invalid_request_error', "Missing required parameter: 'model'.", 'model'), false;
  if (body.input === undefined && body.previous_response_id === undefined) {
    return void error(reply, 400, 'invalid_request_error', "Missing required parameter: 'input'.", 'input'), false;
  }
  const max = body.max_output_tokens;
  if (max !== undefined && max !== null && (!Number.isInteger(max) || max < 16)) {
    return void error(reply, 400, 'invalid_request_error', `Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got ${max} instead.`, 'max_output_tokens'), false;
  }
  return true;
}


export async function openaiResponses(ctx: SimContext, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = req.body as Item | undefined;
  if (!validate(body, reply)) return reply;
  let context = itemsOf(body.input);
  if (typeof body.previous_response_id === 'string') {
    const before = ctx.responses.get(body.previous_response_id);
    if (!before) return error(reply, 400, 'invalid_request_error', `Previous response with id '${body.previous_response_id}' not found.`, 'previous_response_id');
    context = [...before, ...context];
  }
  const fault = await ctx.fault(req, reply, (status, type, message) => error(reply, status, type, message));
  if (fault === 'handled') return reply;

  const cache = ctx.cache.account(segmentsOf(body, context), true);
  const wanted = ctx.outputTokensFor(req);
  const max = typeof body.max_output_tokens === 'number' ? body.max_output_tokens : Number.POSITIVE_INFINITY;
  const reasoning = Math.min(ctx.reasoningTokensFor(req), max);
  const visible = Math.min(wanted, max - reasoning);
  const incomplete = visible < wanted;
  const move = decide(viewOf(body, context), wanted, ctx.heedsBudget(req));
  const id = ctx.nextId('resp_sim_');
  const n = id.slice(9);
  const text = outputText(visible, move.text);
  const tool = move.kind === 'tool' && !incomplete ? ((body.tools as Item[]).find((t) => t?.type === 'function')?.name as string) : null;
  const output: Item[] = [];
  if (reasoning > 0) output.push({ id: `rs_${n}`, type: 'reasoning', summary: [] });
  output.push({ id: `msg_${n}`, type: 'message', status: incomplete ? 'incomplete' : 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [], logprobs: [] }] });
  if (tool) output.push({ id: `fc_${n}`, type: 'function_call', status: 'completed', arguments: JSON.stringify({ n: move.kind === 'tool' ? move.subtask : 0 }), call_id: `call_${n}`, name: tool });
  const usage = {
    input_tokens: cache.totalTokens,
    input_tokens_details: { cached_tokens: cache.readTokens },
    output_tokens: visible + reasoning,
    output_tokens_details: { reasoning_tokens: reasoning },
    total_tokens: cache.totalTokens + visible + reasoning,
  };
  const response = (status: string, out: Item[], u: typeof usage | null): Item => ({
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    background: false,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: body.model,
    output: out,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: null },
    store: body.store !== false,
    temperature: body.temperature ?? 1,
    text: body.text ?? { format: { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1,
    truncation: body.truncation ?? 'disabled',
    usage: u,
    user: null,
    metadata: body.metadata ?? {},
  });
  // Kept for previous_response_id (as OpenAI does unless store is false): the context and what was answered.
  if (body.store !== false) ctx.responses.set(id, [...context, ...output]);
  const final = response(incomplete ? 'incomplete' : 'completed', output, usage);
  await ctx.firstByteDelay();
  if (body.stream !== true) {
    if (fault === 'reset') return void req.socket.destroy(), reply;
    return reply.send(final);
  }

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': id });
  let seq = 0;
  const send = (type: string, data: Item): void => {
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...data })}\n\n`);
  };
  send('response.created', { response: response('in_progress', [], null) });
  send('response.in_progress', { response: response('in_progress', [], null) });
  for (const [index, item] of output.entries()) {
    if (item.type === 'message') {
      send('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress', content: [] } });
      const part = { type: 'output_text', text: '', annotations: [], logprobs: [] };
      send('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part });
      for (const [i, delta] of ctx.chunk(text).entries()) {
        if (res.destroyed) return reply;
        send('response.output_text.delta', { item_id: item.id, output_index: index, content_index: 0, delta, logprobs: [] });
        if (fault === 'reset' && i === 0) return void res.destroy(), reply;
        await ctx.chunkDelay();
      }
      send('response.output_text.done', { item_id: item.id, output_index: index, content_index: 0, text, logprobs: [] });
      send('response.content_part.done', { item_id: item.id, output_index: index, content_index: 0, part: { ...part, text } });
    } else if (item.type === 'function_call') {
      send('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress', arguments: '' } });
      send('response.function_call_arguments.delta', { item_id: item.id, output_index: index, delta: item.arguments });
      send('response.function_call_arguments.done', { item_id: item.id, output_index: index, arguments: item.arguments });
    } else {
      send('response.output_item.added', { output_index: index, item });
    }
    send('response.output_item.done', { output_index: index, item });
  }
  send(incomplete ? 'response.incomplete' : 'response.completed', { response: final });
  res.end();
  return reply;
}

export function registerOpenaiResponses(app: FastifyInstance, ctx: SimContext): void {
  app.post('/v1/responses', (req, reply) => openaiResponses(ctx, req, reply));
}
