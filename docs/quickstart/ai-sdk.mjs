import { generateText, jsonSchema, stepCountIs, tool, wrapLanguageModel } from 'ai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { openEnvelope } from 'envelope-budgets';

const env = await openEnvelope({ store: 'sqlite:./envelope.db' });
const task = await env.task({ id: 'docs-7', preset: 'docs' }); // 125,000 tokens, advisory
const anthropic = createAnthropic({ baseURL: 'http://127.0.0.1:8788/v1' }); // the simulator; drop baseURL for the real API
const model = wrapLanguageModel({ model: anthropic('claude-sonnet-4-6'), middleware: task.middleware() });
const writeSection = tool({
  description: 'Writes section n of the guide.',
  inputSchema: jsonSchema({ type: 'object', properties: { n: { type: 'number' } }, required: ['n'] }),
  execute: async ({ n }) => `section ${n} written`,
});
const result = await generateText({
  model,
  tools: { writeSection },
  prompt: 'Write the user guide: 3 subtasks.',
  stopWhen: [stepCountIs(20), task.stopWhenExhausted()], // the loop also ends when the budget is spent
});
console.log(result.steps.length, result.totalUsage.totalTokens, (await task.status()).used);
await env.close();
