// The task tree: every task the caller may see, kept current by the live feed, shown as one page of a
// flattened tree (newest root first, each root followed by its sub-tasks), filtered and paged so that
// thousands of tasks stay usable.

export const PAGE_SIZE = 50;

export class TaskStore {
  constructor() {
    /** id → TaskView */
    this.byId = new Map();
    this.tenant = null;
  }

  /** The feed's first message: every task of the scope. */
  replaceAll(tasks, tenant) {
    this.byId = new Map(tasks.map((t) => [t.id, t]));
    this.tenant = tenant;
  }

  upsert(tasks) {
    for (const t of tasks) this.byId.set(t.id, t);
  }

  get(id) {
    return this.byId.get(id);
  }

  get size() {
    return this.byId.size;
  }

  /** Tasks per state, for the summary line. */
  countsByState() {
    const counts = {};
    for (const t of this.byId.values()) counts[t.state] = (counts[t.state] ?? 0) + 1;
    return counts;
  }

  /** Depth-first order with depths; a task whose parent is not visible to the caller starts its own tree. */
  ordered() {
    const children = new Map();
    const roots = [];
    for (const t of this.byId.values()) {
      if (t.parentId !== null && this.byId.has(t.parentId)) {
        if (!children.has(t.parentId)) children.set(t.parentId, []);
        children.get(t.parentId).push(t);
      } else {
        roots.push(t);
      }
    }
    const byAge = (a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : 1);
    roots.sort((a, b) => -byAge(a, b));
    const out = [];
    const walk = (t, depth) => {
      out.push({ task: t, depth });
      for (const c of (children.get(t.id) ?? []).sort(byAge)) walk(c, depth + 1);
    };
    for (const r of roots) walk(r, 0);
    return out;
  }

  /** One page of the filtered tree. */
  page(filter, pageIndex) {
    const text = filter.text.trim().toLowerCase();
    const rows = this.ordered().filter(({ task: t }) => {
      if (filter.state && t.state !== filter.state) return false;
      if (filter.openOnly && t.state === 'closed') return false;
      if (text && !t.id.toLowerCase().includes(text) && !t.label.toLowerCase().includes(text)) return false;
      return true;
    });
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    const index = Math.min(Math.max(0, pageIndex), pages - 1);
    return { rows: rows.slice(index * PAGE_SIZE, (index + 1) * PAGE_SIZE), total: rows.length, index, pages, all: rows };
  }
}
