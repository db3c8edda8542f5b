// The x-envelope-* headers on every budgeted response.
import type { TaskRow } from '../budget/types.js';
import { fromLedger } from '../budget/rules.js';
import { shownIdOf } from '../budget/spec.js';

/** `tenant`: the caller's, whose own ids name its tasks. */
export function budgetHeaders(t: TaskRow, tenant: string): Record<string, string> {
  const d = (x: number): string => String(fromLedger(t.unit, x));
  return {
    'x-envelope-task': shownIdOf(tenant, t.id),
    'x-envelope-budget-total': d(t.total),
    'x-envelope-budget-used': d(t.used),
    'x-envelope-budget-remaining': d(Math.max(0, t.total - t.used - t.reserved)),
    'x-envelope-budget-state': t.state,
  };
}

/** The closing SSE comment: every SSE parser ignores it; a client that wants the settled figures reads it. */
export function closingComment(t: TaskRow, tenant: string): string {
  const figures = {
    task: shownIdOf(tenant, t.id),
    used: fromLedger(t.unit, t.used),
    remaining: fromLedger(t.unit, Math.max(0, t.total - t.used - t.reserved)),
    state: t.state,
  };
  return `: envelope ${JSON.stringify(figures)}\n\n`;
}
