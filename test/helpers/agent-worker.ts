// An agent process: resumes task `id` on a SQLite file (same settings → the same task) and runs tool-loop turns
// through a wrapped Anthropic client, printing "turn <used-by-this-call>" after each (each step is a conversation of
// its own, charged its output by the loop meter). Never exits by itself in
// `forever` mode, so the test can kill it mid-task.
import Anthropic from '@anthropic-ai/sdk';
import { openEnvelope } from '../../src/sdk/envelope.js';

const [db, simUrl, id, turnsText] = process.argv.slice(2);
const env = await openEnvelope({ store: `sqlite:${db}`, sweepIntervalMs: 0 });
const task = await env.task({ id: id!, total: 200_000, policy: 'hard', label: 'restart' });
const claude = task.wrap(new Anthropic({ apiKey: 'k', baseURL: simUrl! }));
for (let i = 0; i < Number(turnsText); i++) {
  const r = await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 1_000, messages: [{ role: 'user', content: `step ${i}` }] });
  process.stdout.write(`turn ${r.usage.output_tokens}\n`);
}
await env.close();
