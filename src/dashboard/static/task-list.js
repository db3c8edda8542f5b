// Renders one page of the task tree. Rows are keyed by task id and rebuilt only when their task changed, so a
// live update does not steal focus from a button the user is on.
import { actionButtons, burnBar, el, stateBadge } from './burn-bar.js';
import { figures, percent, plural } from './format.js';

export class TaskList {
  /**
   * @param {HTMLElement} list the <ul>
   * @param {{ onSelect(id: string): void, onApprove(id: string): void, onClose(id: string): void }} actions
   */
  constructor(list, actions) {
    this.list = list;
    this.actions = actions;
    /** id → { li, task, depth, selected, showTenant } last rendered */
    this.rows = new Map();
  }

  render(page, selectedId, showTenant) {
    const next = [];
    const keep = new Map();
    for (const { task, depth } of page.rows) {
      let row = this.rows.get(task.id);
      const selected = task.id === selectedId;
      if (!row || row.task !== task || row.depth !== depth || row.selected !== selected || row.showTenant !== showTenant) {
        const li = this.build(task, depth, selected, showTenant);
        if (row) row.li.replaceWith(li);
        row = { li, task, depth, selected, showTenant };
      }
      keep.set(task.id, row);
      next.push(row.li);
    }
    this.rows = keep;
    const current = [...this.list.children];
    if (current.length !== next.length || current.some((n, i) => n !== next[i])) this.list.replaceChildren(...next);
  }

  build(t, depth, selected, showTenant) {
    const select = el(
      'button',
      { type: 'button', class: 'task-name', title: t.id, 'aria-pressed': selected ? 'true' : 'false', 'aria-label': `Show ${t.id}` },
      depth > 0 ? el('span', { class: 'branch', 'aria-hidden': 'true', text: '└ ' }) : null,
      el('span', { class: 'id', text: depth > 0 ? shortId(t) : t.id }),
    );
    select.addEventListener('click', () => this.actions.onSelect(t.id));
    const meta = [t.label, t.policy, t.unit === 'usd' ? 'USD' : null, plural(t.calls, 'call'), showTenant ? `tenant ${t.tenant}` : null]
      .filter(Boolean)
      .join(' · ');
    return el(
      'li',
      {
        class: `task${selected ? ' selected' : ''}`,
        'data-task-id': t.id,
        'data-depth': depth,
        style: { '--depth': String(depth) },
      },
      el('div', { class: 'line1' }, select, stateBadge(t.state), el('span', { class: 'pct', 'data-field': 'percent', text: percent(t.utilization) })),
      burnBar(t),
      el('div', { class: 'figures', 'data-field': 'figures', text: figures(t) }),
      el('div', { class: 'line4' }, el('span', { class: 'meta', text: meta }), actionButtons(t, this.actions.onApprove, this.actions.onClose)),
    );
  }
}

/** A sub-task named after its parent ("run-7/research") shows only its own part under it. */
function shortId(t) {
  const rest = t.parentId && t.id.startsWith(t.parentId) ? t.id.slice(t.parentId.length) : '';
  return /^[/:.@_-]./.test(rest) ? `…${rest}` : t.id;
}
