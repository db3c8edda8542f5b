// The simulator's model listings on /v1/models: Anthropic's shape for a caller that sends Anthropic's headers
// (`anthropic-version` or `x-api-key`), OpenAI's otherwise — as the gateway tells the two apart.
import type { FastifyInstance, FastifyRequest } from 'fastify';

export const ANTHROPIC_MODELS = ['claude-opus-4-7', 'claude-sonnet-4-6', 'claude-haiku-4-5'];
export const OPENAI_MODELS = ['gpt-5', 'gpt-5-mini', 'gpt-4.1', 'o4-mini'];

const CREATED = '2026-01-01T00:00:00Z';
const isAnthropic = (req: FastifyRequest): boolean => req.headers['anthropic-version'] !== undefined || req.headers['x-api-key'] !== undefined;

const anthropicModel = (id: string) => ({ type: 'model', id, display_name: id, created_at: CREATED });
const openaiModel = (id: string) => ({ id, object: 'model', created: Date.parse(CREATED) / 1000, owned_by: 'openai' });

export function registerModels(app: FastifyInstance): void {
  app.get('/v1/models', async (req) =>
    isAnthropic(req)
      ? { data: ANTHROPIC_MODELS.map(anthropicModel), has_more: false, first_id: ANTHROPIC_MODELS[0], last_id: ANTHROPIC_MODELS.at(-1) }
      : { object: 'list', data: OPENAI_MODELS.map(openaiModel) },
  );
  app.get('/v1/models/:id', (req, reply) => {
    const id = (req.params as { id: string }).id;
    if (isAnthropic(req)) {
      return ANTHROPIC_MODELS.includes(id)
        ? reply.send(anthropicModel(id))
        : reply.code(404).send({ type: 'error', error: { type: 'not_found_error', message: `model: ${id}` } });
    }
    return OPENAI_MODELS.includes(id)
      ? reply.send(openaiModel(id))
      : reply.code(404).send({ error: { message: `The model '${id}' does not exist`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
  });
}
