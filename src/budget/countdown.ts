// What the model is told about its budget: one short line, worded by how far along the task is.
import { formatAmount, utilization } from './rules.js';
import type { TaskRow } from './types.js';

export type CountdownLevel = 'ok' | 'scope' | 'wrap_up' | 'stop';

export interface Countdown {
  level: CountdownLevel;
  /** Empty for a measured task: the model is shown nothing. */
  text: string;
  /** Ledger units left on the task itself (never negative). */
  remaining: number;
}

export const COUNTDOWN_ADVICE: Record<CountdownLevel, string> = {
  ok: '',
  scope: 'Scope remaining work tightly.',
  wrap_up: 'Finish in-flight work and start nothing new.',
  stop: 'Budget exhausted: stop and report what is done, what is left, and the tokens needed to finish.',
};

/**
 * The countdown for the last task of `path`. The level is the most advanced of the whole path, so a
 * sub-agent whose parent is nearly spent is told to wrap up too.
 */
export function countdownFor(path: TaskRow[], nowMs: number): Countdown {
  const leaf = path.at(-1)!;
  const remaining = Math.max(0, leaf.total - leaf.used);
  // A measured task is never told anything: the model must work as it would without a budget.
  if (leaf.policy === 'measure') return { level: 'ok', text: '', remaining };
  let level: CountdownLevel = 'ok';
  const rank: Record<CountdownLevel, number> = { ok: 0, scope: 1, wrap_up: 2, stop: 3 };
  for (const t of path) {
    if (t.policy === 'measure') continue;
    const u = utilization(t, nowMs);
    const l: CountdownLevel = u >= 1 ? 'stop' : u >= t.thresholds[1] ? 'wrap_up' : u >= t.thresholds[0] ? 'scope' : 'ok';
    if (rank[l] > rank[level]) level = l;
  }
  const pct = Math.floor((leaf.used / leaf.total) * 100);
  const used = formatAmount(leaf.unit, leaf.used).replace(/ tokens$/, '');
  const advice = COUNTDOWN_ADVICE[level];
  const text = `[Envelope task budget] ${used} of ${formatAmount(leaf.unit, leaf.total)} used (${pct}%); ${formatAmount(leaf.unit, remaining)} remaining.${advice ? ` ${advice}` : ''}`;
  return { level, text, remaining };
}
