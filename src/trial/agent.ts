// One agent of a trial: a tool loop over plain HTTP (Anthropic Messages or OpenAI chat), through the gateway, that
// answers each tool call with its canned result until the model reports (answers without a tool call) — or until a
// budget refuses a call. It needs no SDK: `envelope trial` runs wherever the gateway does.
import { toolResult, type TrialJob } from './job.js';

export type Ending = 'report' | 'refused' | 'paused' | 'turn_limit' | 'error';

export interface AgentRun {
  name: string;
  taskId: string;
  calls: number;
  /** Tool calls answered: the subtasks it got through. */
  toolCalls: number;
  ended: Ending;
  /** The model's last words, or the refusal / error message. */
  lastText: string;
}

export interface AgentSpec {
  name: string;
  taskId: string;
  /** The x-envelope-* headers that create its task on its first call (and any the caller adds). */
  headers: Record<string, string>;
  prompt: string;
  outputTokens: number;
}

export interface AgentTarget {
  /** The gateway's base URL. */
  url: string;
  apiKey: string;
  /** Called after each answered call. */
  onCall?(run: AgentRun): void;
}

type Json = Record<string, any>;

/** The model's answer in dialect-free terms: its text, and the tool call it asks for (if any). */
interface Turn {
  text: string;
  tool: { id: string; name: string } | null;
  /** The assistant message to append to the conversation as the dialect has it. */
  assistant: Json;
}

interface Dialect {
  path: string;
  headers(apiKey: string): Record<string, string>;
  request(job: TrialJob, messages: Json[]): Json;
  first(job: TrialJob, prompt: string): Json[];
  turn(answer: Json): Turn;
  toolAnswer(call: { id: string; name: string }, content: string): Json;
  errorMessage(body: Json): string;
}

const systemText = (job: TrialJob): string => job.system.repeat(job.systemRepeat);

const ANTHROPIC: Dialect = {
  path: '/v1/messages',
  headers: (apiKey) => ({ 'x-api-key': apiKey, 'anthropic-version': '2023-06-01' }),
  first: (_job, prompt) => [{ role: 'user', content: prompt }],
  request: (job, messages) => ({
    model: job.model,
    max_tokens: job.maxTokens,
    system: job.cacheSystem ? [{ type: 'text', text: systemText(job), cache_control: { type: 'ephemeral' } }] : systemText(job),
    tools: job.tools.map((t) => ({ name: t.name, description: t.description, input_schema: { type: 'object', properties: { n: { type: 'number' } } } })),
    messages,
  }),
  turn(answer) {
    const blocks = (answer.content ?? []) as Json[];
    const use = blocks.find((b) => b.type === 'tool_use');
    return {
      text: blocks.filter((b) => b.type === 'text').map((b) => String(b.text)).join(''),
      tool: use ? { id: String(use.id), name: String(use.name) } : null,
      assistant: { role: 'assistant', content: blocks },
    };
  },
  toolAnswer: (call, content) => ({ role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content }] }),
  errorMessage: (body) => String(body.error?.message ?? JSON.stringify(body)),
};

const OPENAI: Dialect = {
  path: '/v1/chat/completions',
  headers: (apiKey) => ({ authorization: `Bearer ${apiKey}` }),
  first: (job, prompt) => [
    { role: 'system', content: systemText(job) },
    { role: 'user', content: prompt },
  ],
  request: (job, messages) => ({
    model: job.model,
    max_completion_tokens: job.maxTokens,
    tools: job.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: { type: 'object', properties: { n: { type: 'number' } } } } })),
    messages,
  }),
  turn(answer) {
    const message = (answer.choices?.[0]?.message ?? {}) as Json;
    const call = (message.tool_calls as Json[] | undefined)?.[0];
    return {
      text: String(message.content ?? ''),
      tool: call ? { id: String(call.id), name: String(call.function?.name) } : null,
      assistant: { role: 'assistant', content: message.content ?? null, ...(call ? { tool_calls: message.tool_calls } : {}) },
    };
  },
  toolAnswer: (call, content) => ({ role: 'tool', tool_call_id: call.id, content }),
  errorMessage: (body) => String(body.error?.message ?? JSON.stringify(body)),
};

const DIALECTS: Record<TrialJob['dialect'], Dialect> = { anthropic: ANTHROPIC, openai: OPENAI };

export async function runTrialAgent(job: TrialJob, spec: AgentSpec, target: AgentTarget): Promise<AgentRun> {
  const d = DIALECTS[job.dialect];
  const run: AgentRun = { name: spec.name, taskId: spec.taskId, calls: 0, toolCalls: 0, ended: 'turn_limit', lastText: '' };
  const messages = d.first(job, spec.prompt);
  const uses = new Map<string, number>();
  const headers = { 'content-type': 'application/json', ...d.headers(target.apiKey), ...spec.headers };
  while (run.calls < job.turnsMax) {
    let res: Response;
    try {
      res = await fetch(`${target.url}${d.path}`, { method: 'POST', headers, body: JSON.stringify(d.request(job, messages)) });
    } catch (e) {
      return { ...run, ended: 'error', lastText: (e as Error).message };
    }
    const body = (await res.json().catch(() => ({}))) as Json;
    if (res.status === 402) {
      const message = d.errorMessage(body);
      return { ...run, ended: /paused/.test(message) ? 'paused' : 'refused', lastText: message };
    }
    if (!res.ok) return { ...run, ended: 'error', lastText: `${res.status}: ${d.errorMessage(body)}` };
    run.calls++;
    const turn = d.turn(body);
    run.lastText = turn.text;
    target.onCall?.(run);
    messages.push(turn.assistant);
    if (!turn.tool) return { ...run, ended: 'report' };
    const tool = job.tools.find((t) => t.name === turn.tool!.name) ?? job.tools[0]!;
    const n = (uses.get(tool.name) ?? 0) + 1;
    uses.set(tool.name, n);
    run.toolCalls++;
    messages.push(d.toolAnswer(turn.tool, toolResult(tool, n)));
  }
  return run;
}
