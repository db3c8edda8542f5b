// The event stream panel: the ledger's durable events (GET /envelope/v1/events, SSE), newest first.
import { el } from './burn-bar.js';
import { clock, eventText } from './format.js';

export const EVENT_TYPES = ['threshold_crossed', 'exhausted', 'overrun', 'paused', 'approved', 'closed', 'reservation_expired', 'usage_estimated'];
const KEEP = 200;

const SYMBOLS = {
  threshold_crossed: '▲',
  exhausted: '■',
  overrun: '⚠',
  paused: '‖',
  approved: '＋',
  closed: '✓',
  reservation_expired: '⌛',
  usage_estimated: '≈',
};

export class EventLog {
  /** @param {HTMLOListElement} list  @param {(id: string) => object | undefined} taskOf  @param {(id: string) => void} onSelect */
  constructor(list, taskOf, onSelect) {
    this.list = list;
    this.taskOf = taskOf;
    this.onSelect = onSelect;
    this.lastSeq = 0;
  }

  clear() {
    this.list.replaceChildren();
    this.lastSeq = 0;
  }

  add(e) {
    // A reconnect resumes after the last seq (Last-Event-ID); anything older is already shown.
    if (e.seq <= this.lastSeq) return;
    this.lastSeq = e.seq;
    const task = this.taskOf(e.taskId);
    const name = el('button', { type: 'button', class: 'link', text: e.taskId, 'aria-label': `Show ${e.taskId}` });
    name.addEventListener('click', () => this.onSelect(e.taskId));
    const item = el(
      'li',
      { class: `event ev-${e.type}`, 'data-seq': e.seq, 'data-type': e.type, 'data-task-id': e.taskId },
      el('time', { datetime: new Date(e.atMs).toISOString(), text: clock(e.atMs) }),
      el('span', { class: 'sym', 'aria-hidden': 'true', text: SYMBOLS[e.type] ?? '•' }),
      name,
      el('span', { class: 'what', text: eventText(e, task) }),
    );
    // Events arrive in seq order; newest goes on top.
    this.list.prepend(item);
    while (this.list.children.length > KEEP) this.list.lastElementChild.remove();
  }
}
