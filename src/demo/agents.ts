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
  /** A model that never heeds the countdown (the simulator's agent told so): only enforcement stops it. */
  ignoresBudget?: boolean;
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

/** A role's system prompt: a few kilobytes of context, as a real agent re-reads on every call. */
export const demoSystem = (role: string): string =>
  `You are the ${role} agent of a report-writing team. Work through your subtasks with the do_subtask tool. ` +
  'Context: '.concat('the customer wants a two-page brief on budget-aware agents, with sources and a risk list. '.repeat(70));

/**
 * The demo's team, one envelope each (SPEC §6, `envelope demo`): an orchestrator (hard) plans and later synthesises;
 * research (advisory) and drafting (hard) heed the countdown and end with their own reports, research over many
 * small calls (scoping, then wrapping up), drafting over few large ones (told to stop on its last call); QA's model
 * ignores the countdown, so its approval budget pauses it until someone approves more.
 */
export function demoAgents(run: string): { orchestrator: AgentSpec; research: AgentSpec; drafting: AgentSpec; qa: AgentSpec } {
  const agent = (role: string, rest: Omit<AgentSpec, 'role' | 'taskId' | 'parentId' | 'label' | 'system'>): AgentSpec => ({
    role,
    taskId: `${run}/${role}`,
    parentId: run,
    label: role,
    system: demoSystem(role),
    ...rest,
  });
  return {
    orchestrator: { role: 'orchestrator', taskId: run, label: 'report-writing', budget: 100_000, policy: 'hard', job: 'job: 2 subtasks', outputTokens: 400, system: demoSystem('orchestrator') },
    research: agent('research', { budget: 20_000, policy: 'advisory', job: 'job: 40 subtasks', outputTokens: 600, stream: true }),
    drafting: agent('drafting', { budget: 20_000, policy: 'hard', job: 'job: 12 subtasks', outputTokens: 2_600 }),
    qa: agent('qa', { budget: 20_000, policy: 'approval', job: 'job: 30 subtasks', outputTokens: 900, ignoresBudget: true }),
  };
}

export async function runAgent(client: Anthropic, spec: AgentSpec, hooks: AgentHooks): Promise<AgentResult> {
  const headers: Record<string, string> = {
    'x-envelope-task': spec.taskId,
    'x-envelope-budget': String(spec.budget),
    'x-envelope-policy': spec.policy,
    'x-envelope-label': spec.label,
    'x-sim-output-tokens': String(spec.outputTokens),
    ...(spec.parentId ? { 'x-envelope-parent': spec.parentId } : {}),
    ...(spec.ignoresBudget ? { 'x-sim-agent': 'ignores-budget' } : {}),
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
