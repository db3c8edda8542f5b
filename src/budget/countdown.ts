// What the model is told about its budget: one short line, worded by how far along the task is — as projected
// with the cost of the call it is about to make, so that the "stop and report" line arrives while a final call
// still fits (SPEC §1a) and an agent that heeds it ends with its own report, not a refusal.
import { formatAmount, utilization } from './amounts.js';
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
  stop: 'This is the last call the budget allows: stop and report what is done, what is left, and the tokens needed to finish.',
};

/** The call about to be made, per task of the path (ledger units): its expected cost, and the least a call holds. */
export interface NextCall {
  expected: number[];
  holdMin: number[];
}

const RANK: Record<CountdownLevel, number> = { ok: 0, scope: 1, wrap_up: 2, stop: 3 };

/**
 * How far along one task is. Spend is projected: used + held by other calls + this call's expected cost. It is
 * "stop" when after this call not even one more would be admitted (projected + the larger of another call of the
 * same cost and the least a call holds passes the total): this call is the last, so the model reports in it.
 */
function levelOf(t: TaskRow, nowMs: number, expected: number, holdMin: number): CountdownLevel {
  const projected = t.used + t.reserved + expected;
  let u = Math.max(utilization(t, nowMs), t.total > 0 ? projected / t.total : 1);
  let last = projected + Math.max(expected, holdMin) > t.total;
  if (t.limitCalls !== null) {
    const calls = t.calls + t.callsReserved + 1;
    u = Math.max(u, calls / t.limitCalls);
    last ||= calls + 1 > t.limitCalls;
  }
  if (u >= 1 || last) return 'stop';
  return u >= t.thresholds[1] ? 'wrap_up' : u >= t.thresholds[0] ? 'scope' : 'ok';
}

/**
 * The countdown for the last task of `path`, as the path stands before the call `next` describes (without it: the
 * figures as they are). The level is the most advanced of the whole path, so a sub-agent whose parent is nearly
 * spent is told to wrap up too.
 */
export function countdownFor(path: TaskRow[], nowMs: number, next?: NextCall): Countdown {
  const leaf = path.at(-1)!;
  const remaining = Math.max(0, leaf.total - leaf.used);
  // A measured task is never told anything: the model must work as it would without a budget.
  if (leaf.policy === 'measure') return { level: 'ok', text: '', remaining };
  let level: CountdownLevel = 'ok';
  path.forEach((t, i) => {
    if (t.policy === 'measure') return;
    const l = next ? levelOf(t, nowMs, next.expected[i]!, next.holdMin[i]!) : levelOf(t, nowMs, 0, 0);
    if (RANK[l] > RANK[level]) level = l;
  });
  const pct = Math.floor((leaf.used / leaf.total) * 100);
  const used = formatAmount(leaf.unit, leaf.used).replace(/ tokens$/, '');
  const advice = COUNTDOWN_ADVICE[level];
  const text = `[Envelope task budget] ${used} of ${formatAmount(leaf.unit, leaf.total)} used (${pct}%); ${formatAmount(leaf.unit, remaining)} remaining.${advice ? ` ${advice}` : ''}`;
  return { level, text, remaining };
}
