// Budgets per task type, from the recommended figures practitioners publish for Claude Code task budgets
// (simple bug fix 50k; feature 150k–250k; codebase refactor 300k–600k; documentation 100k–150k; full test suite
// 300k–500k): the middle of each recommended range. Measure your own runs and replace them (`envelope calibrate`).
import type { Policy } from '../budget/types.js';

export interface Preset {
  total: number;
  policy: Policy;
  /** The effort level the same guidance pairs with it. */
  effort: 'high' | 'xhigh' | 'max';
}

export const PRESETS = {
  'bug-fix': { total: 50_000, policy: 'advisory', effort: 'high' },
  feature: { total: 200_000, policy: 'advisory', effort: 'xhigh' },
  refactor: { total: 450_000, policy: 'advisory', effort: 'xhigh' },
  docs: { total: 125_000, policy: 'advisory', effort: 'high' },
  tests: { total: 400_000, policy: 'advisory', effort: 'high' },
} as const satisfies Record<string, Preset>;

export type PresetName = keyof typeof PRESETS;
