// Amounts as the ledger keeps them (integers: tokens, or micro-USD) and as people read them; how far a task is along.
import type { TaskRow, Unit } from './types.js';

export const USD_MICROS = 1_000_000;

export const toLedger = (unit: Unit, value: number): number =>
  unit === 'usd' ? Math.round(value * USD_MICROS) : value;
export const fromLedger = (unit: Unit, amount: number): number => (unit === 'usd' ? amount / USD_MICROS : amount);

/** A whole number with thousands separators, as en-US writes it; by hand, as Intl costs more on every model call. */
function grouped(n: number): string {
  const digits = String(Math.abs(n));
  let out = '';
  for (let i = 0; i < digits.length; i++) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? `-${out}` : out;
}

/** "50,400 tokens" or "$1.25". */
export function formatAmount(unit: Unit, amount: number): string {
  if (unit === 'usd') return `$${fromLedger('usd', amount).toFixed(amount % 10_000 === 0 ? 2 : 4)}`;
  return `${grouped(Math.round(amount))} tokens`;
}

/** The largest fraction used of any limit the task has: tokens or USD, calls, wall seconds. */
export function utilization(t: TaskRow, nowMs: number): number {
  let u = t.total > 0 ? t.used / t.total : 1;
  if (t.limitCalls !== null) u = Math.max(u, t.calls / t.limitCalls);
  if (t.limitSeconds !== null) u = Math.max(u, (nowMs - t.createdAtMs) / (t.limitSeconds * 1000));
  return u;
}
