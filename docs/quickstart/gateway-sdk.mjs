import Anthropic from '@anthropic-ai/sdk';

const claude = new Anthropic({
  baseURL: 'http://127.0.0.1:8787', // or ANTHROPIC_BASE_URL
  defaultHeaders: { 'x-envelope-task': 'triage-42', 'x-envelope-budget': '50000', 'x-envelope-policy': 'hard' },
});
const reply = await claude.messages.create({
  model: 'claude-sonnet-4-6',
  max_tokens: 1024,
  messages: [{ role: 'user', content: 'hello' }],
});
console.log(reply.usage);
