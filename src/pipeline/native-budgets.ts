// Models that take Anthropic's native `output_config.task_budget` (the beta header is providers/anthropic.ts's).
// Configuration, not code: Anthropic's docs list these as of late 2026.

/** Anthropic refuses a task_budget.total below this; under it Envelope injects its text countdown instead. */
export const NATIVE_BUDGET_FLOOR_TOKENS = 20_000;

export const DEFAULT_NATIVE_MODELS = [
  'claude-opus-4-7',
  'claude-opus-4-8',
  'claude-opus-5',
  'claude-opus-5-5',
  'claude-sonnet-5-5',
  'claude-haiku-5-5',
  'claude-mythos-5',
  'claude-mythos-5-1',
  'claude-fable-5',
  'claude-fable-5-1',
];

/** True for a listed model or a dated snapshot of one (`claude-opus-4-7-20261101`). */
export function supportsNativeBudget(model: string, natives: readonly string[]): boolean {
  return natives.some((n) => model === n || (model.startsWith(`${n}-`) && /^\d{8}$/.test(model.slice(n.length + 1))));
}

/**
 * The `remaining` sent to the model, held for a whole agentic turn. Anthropic counts spend within a turn from
 * the context itself, and a changed `remaining` invalidates its prompt cache: so a fresh value is sent only
 * when a turn starts or the context shrank (a compaction), and the same value on every call in between.
 */
export class NativeBudgetTurns {
  private readonly byTask = new Map<string, { remaining: number; messageCount: number }>();
  private readonly entriesMax: number;

  constructor(entriesMax = 10_000) {
    this.entriesMax = entriesMax;
  }

  remainingFor(taskId: string, ledgerRemaining: number, turnStart: boolean, messageCount: number): number {
    const held = this.byTask.get(taskId);
    const fresh = turnStart || !held || messageCount < held.messageCount;
    const remaining = fresh ? ledgerRemaining : held.remaining;
    this.byTask.delete(taskId);
    this.byTask.set(taskId, { remaining, messageCount });
    if (this.byTask.size > this.entriesMax) this.byTask.delete(this.byTask.keys().next().value as string);
    return remaining;
  }
}
