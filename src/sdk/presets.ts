// Budgets per task type. Source: the "Recommended Budget" column of "Claude Code Task Budgets Guide 2026"
// (baeseokjae.github.io/posts/claude-code-task-budgets-guide-2026, May 2026; in the project's seed documents):
// simple bug fix 50k; feature implementation 150k–250k; codebase-wide refactor 300k–600k; documentation generation
// 100k–150k; full test suite creation 300k–500k. A preset's total is the middle of its range (the bug fix's single
// figure as it is); the same guide pairs well-specified work with effort `high` and judgment-heavy work with `xhigh`.
// Override any field per task (`env.task({ id, preset: 'feature', total: 180_000 })`), and replace the figures
// with your own runs' percentiles once you have them (`envelope calibrate`).
import type { Policy } from '../budget/types.js';

export interface Preset {
  total: number;
  /** The guide's recommended range, in tokens. */
  recommended: readonly [number, number];
  policy: Policy;
  /** The effort level the same guidance pairs with it. */
  effort: 'high' | 'xhigh' | 'max';
}

export const PRESETS = {
  'bug-fix': { total: 50_000, recommended: [50_000, 50_000], policy: 'advisory', effort: 'high' },
  feature: { total: 200_000, recommended: [150_000, 250_000], policy: 'advisory', effort: 'xhigh' },
  refactor: { total: 450_000, recommended: [300_000, 600_000], policy: 'advisory', effort: 'xhigh' },
  docs: { total: 125_000, recommended: [100_000, 150_000], policy: 'advisory', effort: 'high' },
  tests: { total: 400_000, recommended: [300_000, 500_000], policy: 'advisory', effort: 'high' },
} as const satisfies Record<string, Preset>;

export type PresetName = keyof typeof PRESETS;
