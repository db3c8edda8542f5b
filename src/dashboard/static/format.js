// How the page writes numbers, states and events: one place, so every panel reads the same.

const tokensFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const usdFmt = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4 });

/** "12,345" for tokens, "$1.2345" for USD. */
export const amount = (unit, value) => (unit === 'usd' ? usdFmt.format(value) : tokensFmt.format(value));
/** "12,345 tokens" or "$1.25". */
export const amountWithUnit = (unit, value) => (unit === 'usd' ? usdFmt.format(value) : `${tokensFmt.format(value)} tokens`);
export const count = (n) => tokensFmt.format(n);
/** "1 call", "23 calls". */
export const plural = (n, word) => `${tokensFmt.format(n)} ${word}${n === 1 ? '' : 's'}`;
export const usd = (v) => usdFmt.format(v);
/** Whole percent, rounded down like the countdown the model reads. */
export const percent = (fraction) => `${Math.floor(fraction * 100)} %`;

export const clock = (ms) => new Date(ms).toLocaleTimeString('en-GB', { hour12: false });

/** Seconds as a short elapsed time: 0.4 s, 12 s, 3 min, 2 h 05. */
export function duration(seconds) {
  const s = Math.max(0, seconds);
  if (s < 10) return `${Number(s.toFixed(s < 1 ? 2 : 1))} s`;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5_400) return `${Number((s / 60).toFixed(s < 600 ? 1 : 0))} min`;
  const h = Math.floor(s / 3_600);
  return `${h} h ${String(Math.round((s - h * 3_600) / 60)).padStart(2, '0')}`;
}

/** Each state has a word and a symbol as well as a colour, so it reads without colour. */
export const STATES = {
  active: { text: 'active', symbol: '●' },
  scoping: { text: 'scoping', symbol: '◔' },
  wrapping_up: { text: 'wrapping up', symbol: '◑' },
  exhausted: { text: 'exhausted', symbol: '■' },
  paused: { text: 'paused', symbol: '‖' },
  closed: { text: 'closed', symbol: '✓' },
};

export const stateText = (state) => STATES[state]?.text ?? state;

/** "31,250 used · 0 reserved · 18,750 left of 50,000 tokens" */
export function figures(t) {
  const a = (v) => amount(t.unit, v);
  return `${a(t.used)} used · ${a(t.reserved)} reserved · ${a(t.remaining)} left of ${amountWithUnit(t.unit, t.total)}`;
}

const ledgerToDisplay = (unit, v) => (unit === 'usd' ? v / 1_000_000 : v);

/** One line for an event of the stream; `task` (the task's view, if known) gives the unit. */
const ESTIMATE_REASONS = {
  stream_cut: 'the provider’s stream broke before its usage',
  no_usage: 'the provider answered without usage',
  usage_implausible: 'the provider reported usage past any call’s reach',
};

export function eventText(e, task) {
  const unit = task?.unit ?? 'tokens';
  const a = (v) => amountWithUnit(unit, ledgerToDisplay(unit, Number(v)));
  const d = e.data ?? {};
  switch (e.type) {
    case 'threshold_crossed':
      return `crossed ${Math.round(Number(d.threshold) * 100)} % — now ${stateText(d.state)}`;
    case 'exhausted':
      return `exhausted at ${percent(Number(d.utilization))} (${a(d.used)})`;
    case 'paused':
      return `paused for approval at ${percent(Number(d.utilization))} (${a(d.used)})`;
    case 'approved':
      return `approved +${a(d.add)} → total ${a(d.total)}, now ${stateText(d.state)}`;
    case 'overrun':
      return `overran by ${a(d.over)} (${d.policy})`;
    case 'closed':
      return `closed: ${d.outcome}, ${a(d.used)} of ${a(d.total)}`;
    case 'reservation_expired':
      return `a reservation expired; ${a(d.released ?? 0)} released`;
    case 'usage_estimated':
      return `charged an estimate of ${a(d.charged ?? 0)}: ${ESTIMATE_REASONS[d.reason] ?? d.reason}`;
    default:
      return e.type;
  }
}
