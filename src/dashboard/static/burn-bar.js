// The pieces of a task row: its state badge, its burn bar (used, reserved, left) and its buttons.
// Everything is written as text nodes: task ids and labels come from API callers.
import { amount, figures, percent, STATES, stateText } from './format.js';

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    // CSSOM, not a style attribute: the page's CSP allows no inline style attributes.
    else if (k === 'style') for (const [prop, value] of Object.entries(v)) node.style.setProperty(prop, value);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function stateBadge(state) {
  const s = STATES[state] ?? { text: state, symbol: '?' };
  return el('span', { class: `badge state-${state}`, 'data-field': 'state' }, el('span', { class: 'sym', 'aria-hidden': 'true', text: s.symbol }), ` ${s.text}`);
}

/** A bar of used / reserved / left, scaled to the larger of the total and what is spent or held. */
export function burnBar(t) {
  const scale = Math.max(t.total, t.used + t.reserved) || 1;
  const pct = (v) => `${Math.max(0, Math.min(100, (v / scale) * 100)).toFixed(2)}%`;
  const label = `${t.id}: ${figures(t)}, ${percent(t.utilization)}, ${stateText(t.state)}`;
  const bar = el('div', {
    class: `bar state-${t.state}`,
    role: 'meter',
    'aria-label': label,
    'aria-valuemin': 0,
    'aria-valuemax': t.total,
    'aria-valuenow': Math.min(t.used, t.total),
    'aria-valuetext': `${amount(t.unit, t.used)} of ${amount(t.unit, t.total)} used`,
  });
  bar.append(
    el('span', { class: 'seg used', style: { width: pct(t.used) } }),
    el('span', { class: 'seg reserved', style: { width: pct(t.reserved) } }),
  );
  // Where the total ends when a task has run over it.
  if (t.used + t.reserved > t.total) bar.append(el('span', { class: 'over-mark', style: { left: pct(t.total) } }));
  return bar;
}

export function actionButtons(t, onApprove, onClose) {
  const box = el('span', { class: 'actions' });
  if (t.state === 'paused') {
    const b = el('button', { type: 'button', class: 'approve', 'aria-label': `Approve more budget for ${t.id}`, text: 'Approve…' });
    b.addEventListener('click', () => onApprove(t.id));
    box.append(b);
  }
  if (t.state !== 'closed') {
    const b = el('button', { type: 'button', class: 'quiet close', 'aria-label': `Close ${t.id}`, text: 'Close…' });
    b.addEventListener('click', () => onClose(t.id));
    box.append(b);
  }
  return box;
}
