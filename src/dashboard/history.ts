// A task's burn over time, for the dashboard's burn-down chart: rebuilt from the durable events (creation,
// thresholds, pauses, approvals, closing) and the figures the live feed saw while someone was watching.
import { fromLedger } from '../budget/rules.js';
import type { StoredEvent, TaskRow } from '../budget/types.js';

/** One observation of a task, in ledger units. */
export interface BurnSample {
  atMs: number;
  used: number;
  reserved: number;
  total: number;
}

/** One point of the chart, in display units (tokens or USD). `exact` is false where only a threshold was recorded. */
export interface BurnPoint {
  atMs: number;
  used: number;
  reserved: number;
  total: number;
  source: 'created' | 'event' | 'sample' | 'now';
  exact: boolean;
  /** The event that marks this point, if any. */
  event?: string;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function burnHistory(row: TaskRow, events: StoredEvent[], samples: readonly BurnSample[]): BurnPoint[] {
  const d = (x: number): number => fromLedger(row.unit, x);
  // A threshold event records a utilisation; it is the budget's own only when no call or time limit applies.
  const utilisationIsBudget = row.limitCalls === null && row.limitSeconds === null;
  const points: BurnPoint[] = [];
  let total = row.total - row.totalApproved;
  let used = 0;
  points.push({ atMs: row.createdAtMs, used: 0, reserved: 0, total: d(total), source: 'created', exact: true });

  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    let exact = true;
    switch (e.type) {
      case 'approved':
        total = num(e.data.total) ?? total;
        break;
      case 'threshold_crossed': {
        const u = num(e.data.utilization);
        if (!utilisationIsBudget || u === null) continue;
        used = Math.max(used, Math.round(u * total));
        exact = false;
        break;
      }
      case 'exhausted':
      case 'paused':
      case 'overrun':
      case 'closed':
        used = num(e.data.used) ?? used;
        total = num(e.data.total) ?? total;
        break;
      default:
        continue;
    }
    points.push({ atMs: e.atMs, used: d(used), reserved: 0, total: d(total), source: 'event', exact, event: e.type });
  }
  for (const s of samples) {
    points.push({ atMs: s.atMs, used: d(s.used), reserved: d(s.reserved), total: d(s.total), source: 'sample', exact: true });
  }
  points.push({ atMs: row.updatedAtMs, used: d(row.used), reserved: d(row.reserved), total: d(row.total), source: 'now', exact: true });
  // Stable by time: an event and the sample of the same change keep their recorded order.
  return points.map((p, i) => ({ p, i })).sort((a, b) => a.p.atMs - b.p.atMs || a.i - b.i).map(({ p }) => p);
}
