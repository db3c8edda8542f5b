// Streamed answers as each dialect sends them, for fake providers in tests: `deltas` text deltas of `text` each, and,
// unless the answer is cut, the events that close it with its usage. A cut answer stops before the provider reports
// its output (Anthropic has said the input in message_start; OpenAI and Responses nothing at all).
import type { ServerResponse } from 'node:http';
import { sse, startFakeProvider, type FakeProvider } from './fake-provider.js';

export type StreamDialect = 'anthropic' | 'openai' | 'responses' | 'gemini';

export interface StreamPlan {
  deltas: number;
  text: string;
  inputTokens: number;
  outputTokens: number;
  cut: boolean;
}

export function answerEvents(dialect: StreamDialect, p: StreamPlan): string[] {
  const deltas = Array.from({ length: p.deltas }, () => p.text);
  switch (dialect) {
    case 'anthropic':
      return [
        sse({ type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', content: [], usage: { input_tokens: p.inputTokens, output_tokens: 1 } } }, 'message_start'),
        sse({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, 'content_block_start'),
        ...deltas.map((text) => sse({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }, 'content_block_delta')),
        ...(p.cut
          ? []
          : [
              sse({ type: 'content_block_stop', index: 0 }, 'content_block_stop'),
              sse({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: p.outputTokens } }, 'message_delta'),
              sse({ type: 'message_stop' }, 'message_stop'),
            ]),
      ];
    case 'openai': {
      const chunk = (delta: unknown, extra = {}): string => sse({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4.1', choices: [{ index: 0, delta, finish_reason: null }], ...extra });
      return [
        chunk({ role: 'assistant', content: '' }),
        ...deltas.map((content) => chunk({ content })),
        ...(p.cut ? [] : [sse({ id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: p.inputTokens, completion_tokens: p.outputTokens, total_tokens: p.inputTokens + p.outputTokens } }), sse('[DONE]')]),
      ];
    }
    case 'responses':
      return [
        sse({ type: 'response.created', response: { id: 'resp_1', status: 'in_progress' } }, 'response.created'),
        ...deltas.map((delta) => sse({ type: 'response.output_text.delta', item_id: 'msg_1', output_index: 0, content_index: 0, delta }, 'response.output_text.delta')),
        ...(p.cut ? [] : [sse({ type: 'response.completed', response: { id: 'resp_1', status: 'completed', usage: { input_tokens: p.inputTokens, output_tokens: p.outputTokens, total_tokens: p.inputTokens + p.outputTokens } } }, 'response.completed')]),
      ];
    case 'gemini':
      return [
        ...deltas.map((text) => sse({ candidates: [{ content: { role: 'model', parts: [{ text }] } }], usageMetadata: { promptTokenCount: p.inputTokens } })),
        ...(p.cut ? [] : [sse({ candidates: [{ content: { role: 'model', parts: [] }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: p.inputTokens, candidatesTokenCount: p.outputTokens, totalTokenCount: p.inputTokens + p.outputTokens } })]),
      ];
  }
}

export const dialectOfPath = (path: string): StreamDialect =>
  path.includes('/messages') ? 'anthropic' : path.includes('/chat/completions') ? 'openai' : path.includes('/responses') ? 'responses' : 'gemini';

/**
 * A provider of every dialect that streams `plan(request)`'s answer and, when it is cut, destroys the connection
 * mid-answer (the upstream died). Headers `x-fake-deltas` and `x-fake-cut: yes` choose per request.
 */
export function startStreamingProvider(plan: (headers: Record<string, string | string[] | undefined>) => StreamPlan): Promise<FakeProvider> {
  return startFakeProvider(async (req, res: ServerResponse) => {
    const p = plan(req.headers);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const event of answerEvents(dialectOfPath(req.path), p)) {
      if (!res.write(event)) await new Promise((r) => res.once('drain', r));
    }
    if (p.cut) {
      // Let the deltas leave first: the upstream dies after delivering them.
      await new Promise((r) => setTimeout(r, 20));
      res.destroy();
    } else res.end();
  });
}
