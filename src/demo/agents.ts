// The demo's agents: a tool loop driven by the official Anthropic SDK through the gateway, one task each.
import type Anthropic from '@anthropic-ai/sdk';

export interface AgentSpec {
  role: string;
  taskId: string;
  parentId?: string;
  label: string;
  budget: number;
  policy: 'advisory' | 'hard' | 'approval';
  /** The job as the model reads it, e.g. "job: 12 subtasks". */
  job: string;
  /** Simulated output tokens per answer. */
  outputTokens: number;
  system: string;
  stream?: boolean;
}

export interface AgentResult {
  role: string;
  calls: number;
  finalText: string;
  refusal: string | null;
}

export interface AgentHooks {
  /** After each answered call, with the provider's answer (its usage included). */
  afterCall(spec: AgentSpec, message: Anthropic.Message): void;
  /** Called when the task paused for approval; resolves once more budget was approved. */
  onPaused(spec: AgentSpec, message: string): Promise<void>;
}

const TOOLS: Anthropic.Tool[] = [
  {
    name: 'do_subtask',
    description: 'Carries out subtask n of the job and returns its result.',
    input_schema: { type: 'object', properties: { n: { type: 'number' } }, required: ['n'] },
  },
];

export const DEMO_MODEL = 'claude-sonnet-4-6';

export async function runAgent(client: Anthropic, spec: AgentSpec, hooks: AgentHooks): Promise<AgentResult> {
  const headers: Record<string, string> = {
    'x-envelope-task': spec.taskId,
    'x-envelope-budget': String(spec.budget),
    'x-envelope-policy': spec.policy,
    'x-envelope-label': spec.label,
    'x-sim-output-tokens': String(spec.outputTokens),
    ...(spec.parentId ? { 'x-envelope-parent': spec.parentId } : {}),
  };
  const messages: Anthropic.MessageParam[] = [{ role: 'user', content: spec.job }];
  let calls = 0;
  for (let turn = 0; turn < 60; turn++) {
    const params = { model: DEMO_MODEL, max_tokens: 4_000, system: spec.system, tools: TOOLS, messages: [...messages] };
    let message: Anthropic.Message;
    try {
      message = spec.stream
        ? await client.messages.stream(params, { headers }).finalMessage()
        : await client.messages.create(params, { headers });
    } catch (e) {
      const err = e as { status?: number; message?: string; error?: { error?: { message?: string } } };
      const text = err.error?.error?.message ?? err.message ?? String(e);
      if (err.status === 402 && /paused/.test(text)) {
        await hooks.onPaused(spec, text);
        continue;
      }
      if (err.status === 402) return { role: spec.role, calls, finalText: '', refusal: text };
      throw e;
    }
    calls++;
    hooks.afterCall(spec, message);
    messages.push({ role: 'assistant', content: message.content });
    const use = message.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    if (!use) {
      const text = message.content.find((b): b is Anthropic.TextBlock => b.type === 'text')?.text ?? '';
      return { role: spec.role, calls, finalText: text, refusal: null };
    }
    messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: `subtask ${(use.input as { n: number }).n} done` }] });
  }
  return { role: spec.role, calls, finalText: '(turn limit reached)', refusal: null };
}
