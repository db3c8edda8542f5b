// `envelope sim`: a deterministic stand-in for every API the gateway serves (SPEC §7): Anthropic Messages, OpenAI Chat
// and Responses, Gemini, and their model listings.
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { anthropicCountTokens, anthropicMessages } from './anthropic.js';
import { SimContext, type SimOptions } from './context.js';
import { error as geminiError, registerGemini } from './gemini.js';
import { registerModels } from './models.js';
import { openaiChat } from './openai.js';
import { registerOpenaiResponses } from './openai-responses.js';

export interface Sim {
  url: string;
  context: SimContext;
  app: FastifyInstance;
  close(): Promise<void>;
}

export function buildSim(options: Partial<SimOptions> = {}): { app: FastifyInstance; context: SimContext } {
  const context = new SimContext(options);
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024, forceCloseConnections: true, keepAliveTimeout: 65_000 });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    context.record(req, body as string);
    try {
      done(null, JSON.parse(body as string));
    } catch {
      const err = Object.assign(new Error('the body is not valid JSON'), { statusCode: 400 });
      done(err, undefined);
    }
  });
  app.post('/v1/messages', (req, reply) => anthropicMessages(context, req, reply));
  app.post('/v1/messages/count_tokens', (req, reply) => anthropicCountTokens(context, req, reply));
  app.post('/v1/chat/completions', (req, reply) => openaiChat(context, req, reply));
  registerOpenaiResponses(app, context);
  registerGemini(app, context);
  registerModels(app);
  // A request a route cannot read, or a path it does not serve, is answered as that provider would: in its shape.
  app.setErrorHandler((e, req, reply) => {
    const status = (e as { statusCode?: number }).statusCode ?? 400;
    return providerError(req.url, reply, status < 500 ? status : 400, `the simulator could not read this request: ${(e as Error).message}`);
  });
  app.setNotFoundHandler((req, reply) => providerError(req.url, reply, 404, `no route ${req.method} ${req.url.split('?')[0]}`));
  app.get('/sim/requests', async () => ({ requests: context.log }));
  app.delete('/sim/requests', async () => {
    context.log.length = 0;
    return { cleared: true };
  });
  return { app, context };
}

/** An error in the shape of the provider a path belongs to: Gemini's versions and methods, Anthropic's messages, else OpenAI. */
function providerError(url: string, reply: FastifyReply, status: number, message: string): FastifyReply {
  if (/^\/v1(beta|alpha)?\/models\/[^/]*:/.test(url) || /^\/v1(beta|alpha)\//.test(url)) return geminiError(reply, status, message);
  if (url.startsWith('/v1/messages')) return reply.code(status).send({ type: 'error', error: { type: status === 404 ? 'not_found_error' : 'invalid_request_error', message } });
  return reply.code(status).send({ error: { message, type: 'invalid_request_error', param: null, code: null } });
}

export async function startSim(options: Partial<SimOptions> = {}, port = 0, host = '127.0.0.1'): Promise<Sim> {
  const { app, context } = buildSim(options);
  await app.listen({ port, host });
  const addr = app.server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  return { url: `http://${host}:${actual}`, context, app, close: () => app.close() };
}
