import Anthropic from '@anthropic-ai/sdk';
import { openEnvelope } from 'envelope-budgets';

const env = await openEnvelope({ store: 'sqlite:./envelope.db' }); // or memory:, redis://…, postgres://…
const task = await env.task({ id: 'triage-43', preset: 'bug-fix', policy: 'hard' }); // 50,000 tokens
const research = await task.child({ id: 'triage-43/research', total: 20_000 }); // a sub-agent's envelope
const claude = research.wrap(new Anthropic({ baseURL: 'http://127.0.0.1:8788' })); // the simulator; same API
await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 1024, messages: [{ role: 'user', content: 'find the cause' }] });
const status = await task.status(); // state, used, %, calls, subtasks left, estimate to finish, countdown, events
const carry = await task.carry(); // {type, total, remaining}: after a compaction, env.resume('triage-43', carry)
console.log(status.state, status.used, status.percentUsed, carry.remaining);
await env.close();
