// The scripted agent: works through a job of N subtasks with one tool call per turn, and obeys Envelope's
// countdown (or Anthropic's native task_budget): past 85 % it starts nothing new, told "stop" it reports; or, told to
// ignore budgets (header x-sim-agent: ignores-budget), it works on until refused.
import { COUNTDOWN_ADVICE } from '../budget/countdown.js';

export type AgentMove =
  | { kind: 'tool'; subtask: number; text: string }
  | { kind: 'final'; reason: 'done' | 'wrap_up' | 'stop' | 'chat'; text: string };

export interface AgentView {
  /** Text of the first user message (the job). */
  firstUserText: string;
  /** Text of the last user turn (where the countdown is). */
  lastUserText: string;
  /** Subtasks already done: tool results so far. */
  toolResults: number;
  hasTools: boolean;
  /** Anthropic's native budget, when sent. */
  nativeBudget: { total: number; remaining: number } | null;
}

export const DEFAULT_SUBTASKS = 6;

export function jobSize(firstUserText: string): number {
  const m = /(\d+)\s+subtasks?/i.exec(firstUserText);
  return m ? Math.min(1_000, Number(m[1])) : DEFAULT_SUBTASKS;
}

function level(v: AgentView): 'ok' | 'wrap_up' | 'stop' {
  if (v.lastUserText.includes(COUNTDOWN_ADVICE.stop)) return 'stop';
  if (v.lastUserText.includes(COUNTDOWN_ADVICE.wrap_up)) return 'wrap_up';
  if (v.nativeBudget) {
    const left = v.nativeBudget.remaining / v.nativeBudget.total;
    if (left <= 0) return 'stop';
    if (left <= 0.15) return 'wrap_up';
  }
  return 'ok';
}

/** The agent's next move; one that does not heed the budget (`heeds` false) works through its job whatever it is told. */
export function decide(v: AgentView, outputTokens: number, heeds = true): AgentMove {
  const n = jobSize(v.firstUserText);
  const done = Math.min(v.toolResults, n);
  if (!v.hasTools) return { kind: 'final', reason: 'chat', text: `Answer to: ${v.lastUserText.slice(0, 40)}` };
  const l = heeds ? level(v) : 'ok';
  if (l === 'stop') {
    return {
      kind: 'final',
      reason: 'stop',
      text: `Stopping at the budget's last call: ${done} of ${n} subtasks done, ${n - done} left, about ${((n - done) * outputTokens * 4).toLocaleString('en-US')} tokens to finish.`,
    };
  }
  if (l === 'wrap_up') {
    return { kind: 'final', reason: 'wrap_up', text: `Wrapping up: ${done} of ${n} subtasks complete; starting nothing new. Left: ${n - done}.` };
  }
  if (done >= n) return { kind: 'final', reason: 'done', text: `All ${n} subtasks complete.` };
  return { kind: 'tool', subtask: done + 1, text: `Working on subtask ${done + 1} of ${n}.` };
}
