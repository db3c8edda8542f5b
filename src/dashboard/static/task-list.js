// Renders one page of the task tree. Rows are keyed by task id and updated in place; the focusable parts (the
// task's name and its buttons) are only replaced when they change, so a live update does not take focus away.
import { actionButtons, burnBar, el, stateBadge } from './burn-bar.js';
import { figures, percent, plural } from './format.js';

/** A sub-task named after its parent ("run-7/research") shows only its own part under it. */
function shortId(t) {
  const rest = t.parentId && t.id.startsWith(t.parentId) ? t.id.slice(t.parentId.length) : '';
  return /^[/:.@_-]./.test(rest) ? `…${rest}` : t.id;
}

const metaOf = (t, showTenant) =>
  [t.label, t.policy, t.unit === 'usd' ? 'USD' : `${t.meter} meter`, plural(t.calls, 'call'), showTenant ? `tenant ${t.tenant}` : null].filter(Boolean).join(' · ');

export class TaskList {
  /**
   * @param {HTMLElement} list the <ul>
   * @param {{ onSelect(id: string): void, onApprove(id: string): void, onClose(id: string): void }} actions
   */
  constructor(list, actions) {
    this.list = list;
    this.actions = actions;
    /** id → the row's elements and what they last showed */
    this.rows = new Map();
  }

  render(page, selectedId, showTenant) {
    const next = [];
    const keep = new Map();
    for (const { task, depth } of page.rows) {
      let row = this.rows.get(task.id);
      if (!row || row.depth !== depth) {
        row = this.build(task, depth);
      }
      this.update(row, task, task.id === selectedId, showTenant);
      keep.set(task.id, row);
      next.push(row.li);
    }
    this.rows = keep;
    const current = [...this.list.children];
    if (current.length !== next.length || current.some((n, i) => n !== next[i])) this.list.replaceChildren(...next);
  }

  build(t, depth) {
    const select = el(
      'button',
      { type: 'button', class: 'task-name', title: t.id, 'aria-label': `Show ${t.id}` },
      depth > 0 ? el('span', { class: 'branch', 'aria-hidden': 'true', text: '└ ' }) : null,
      el('span', { class: 'id', text: depth > 0 ? shortId(t) : t.id }),
    );
    select.addEventListener('click', () => this.actions.onSelect(t.id));
    const row = {
      depth,
      select,
      badge: el('span'),
      pct: el('span', { class: 'pct', 'data-field': 'percent' }),
      bar: el('div'),
      figures: el('div', { class: 'figures', 'data-field': 'figures' }),
      meta: el('span', { class: 'meta' }),
      buttons: el('span'),
      task: null,
      state: null,
    };
    row.li = el(
      'li',
      { class: 'task', 'data-task-id': t.id, 'data-depth': depth, style: { '--depth': String(depth) } },
      el('div', { class: 'line1' }, select, row.badge, row.pct),
      row.bar,
      row.figures,
      el('div', { class: 'line4' }, row.meta, row.buttons),
    );
    return row;
  }

  update(row, t, selected, showTenant) {
    row.li.classList.toggle('selected', selected);
    row.select.setAttribute('aria-pressed', selected ? 'true' : 'false');
    row.meta.textContent = metaOf(t, showTenant);
    if (row.task === t) return;
    row.task = t;
    if (row.state !== t.state) {
      row.state = t.state;
      row.badge = replace(row.badge, stateBadge(t.state));
      row.buttons = replace(row.buttons, actionButtons(t, this.actions.onApprove, this.actions.onClose));
    }
    row.pct.textContent = percent(t.utilization);
    row.bar = replace(row.bar, burnBar(t));
    row.figures.textContent = figures(t);
  }
}

function replace(old, fresh) {
  old.replaceWith(fresh);
  return fresh;
}
