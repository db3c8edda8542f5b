// The dashboard page: signs in with the admin token or a tenant key, follows the live task feed and the event
// stream, and wires the panels together. Every figure comes from the gateway; the page decides nothing.
import { Api, forgetToken, LiveStream, savedToken, saveToken } from './api.js';
import { BurnChart } from './burn-chart.js';
import { actionButtons, stateBadge } from './burn-bar.js';
import { Dialogs } from './dialogs.js';
import { EVENT_TYPES, EventLog } from './event-log.js';
import { amountWithUnit, clock, count, figures, percent, plural, STATES, usd } from './format.js';
import { calibrate, groupRuns, serverCalibration } from './insight.js';
import { InsightView } from './insight-view.js';
import { TaskList } from './task-list.js';
import { TenantsView } from './tenants-view.js';
import { PAGE_SIZE, TaskStore } from './tasks.js';

const $ = (id) => document.getElementById(id);

class Dashboard {
  constructor() {
    this.api = null;
    this.store = new TaskStore();
    this.streams = [];
    this.selectedId = null;
    this.pageIndex = 0;
    this.filter = { text: '', state: '', openOnly: false };
    this.renderPending = false;
    this.insightTimer = null;
    this.tenantsTimer = null;
    this.countdownTimer = null;
    this.actionsKey = null;
    this.list = new TaskList($('task-list'), {
      onSelect: (id) => this.select(id, { scroll: true }),
      onApprove: (id) => this.dialogs.openApprove(id),
      onClose: (id) => this.dialogs.openClose(id),
    });
    this.chart = new BurnChart($('burn-chart'), $('burn-caption'));
    this.events = new EventLog($('event-list'), (id) => this.store.get(id), (id) => this.select(id, { scroll: true }));
    this.dialogs = new Dialogs(() => this.api, (id) => this.store.get(id), (view) => this.applyLocal(view));
    this.insight = new InsightView($('calibration'), $('calibration-source'), document.querySelector('#cost-table tbody'));
    this.tenants = new TenantsView(document.querySelector('#tenant-table tbody'), $('tenants-note'));
    this.wireControls();
  }

  wireControls() {
    $('sign-in-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.signIn($('token').value.trim());
    });
    $('sign-out').addEventListener('click', () => {
      forgetToken();
      this.disconnect();
      history.replaceState(null, '', location.pathname);
      this.showSignIn('');
    });
    $('filter-text').addEventListener('input', (ev) => this.setFilter({ text: ev.target.value }));
    $('filter-state').addEventListener('change', (ev) => this.setFilter({ state: ev.target.value }));
    $('filter-open').addEventListener('change', (ev) => this.setFilter({ openOnly: ev.target.checked }));
    $('filters').addEventListener('submit', (ev) => ev.preventDefault());
    $('page-prev').addEventListener('click', () => this.turnPage(-1));
    $('page-next').addEventListener('click', () => this.turnPage(1));
  }

  async start() {
    const token = savedToken();
    try {
      await new Api(token).check();
      this.connect(token);
    } catch (e) {
      if (e.status !== 401) return this.status(`Cannot reach the admin API: ${e.message}`);
      if (token) forgetToken();
      this.showSignIn(token ? `The saved token was refused: ${e.message}.` : '');
    }
  }

  async signIn(token) {
    $('sign-in-error').textContent = '';
    try {
      await new Api(token).check();
    } catch (e) {
      $('sign-in-error').textContent =
        e.status === 401
          ? `Refused: ${e.message}. Use the gateway's --admin-token (ENVELOPE_ADMIN_TOKEN) or a tenant key from --tenant-keys.`
          : `Cannot reach the admin API: ${e.message}`;
      return;
    }
    saveToken(token);
    $('token').value = '';
    this.connect(token);
  }

  showSignIn(message) {
    $('board').hidden = true;
    $('who').hidden = true;
    $('sign-out').hidden = true;
    $('sign-in').hidden = false;
    $('sign-in-error').textContent = message;
    this.status('Not connected');
    $('token').focus();
  }

  status(text) {
    $('conn').textContent = text;
  }

  connect(token) {
    this.api = new Api(token);
    this.reset();
    $('sign-in').hidden = true;
    $('board').hidden = false;
    $('sign-out').hidden = false;
    this.status('Connecting…');
    this.openStreams();
    void this.loadInsight();
    void this.loadTenants();
    const wanted = new URLSearchParams(location.hash.slice(1)).get('task');
    if (wanted) this.select(wanted);
  }

  /** A new connection may have another scope: nothing of the last one stays on screen. */
  reset() {
    this.tenants.clear();
    this.store = new TaskStore();
    this.selectedId = null;
    this.pageIndex = 0;
    this.events.clear();
    this.chart.clear();
    $('detail-title').textContent = 'No tasks yet';
    $('detail-body').hidden = true;
    this.scheduleRender();
  }

  /** Nothing chosen yet: show the open task that changed last (else the task that changed last), not an empty box. */
  selectDefault() {
    if (this.selectedId) return;
    let best = null;
    for (const t of this.store.byId.values()) {
      const open = t.state !== 'closed';
      if (!best || (open && !best.open) || (open === best.open && t.updatedAtMs > best.t.updatedAtMs)) best = { t, open };
    }
    if (best) void this.select(best.t.id, { remember: false });
  }

  disconnect() {
    for (const s of this.streams) s.close();
    this.streams = [];
  }

  openStreams() {
    this.disconnect();
    const tasks = this.api.stream('/task-updates');
    tasks.addEventListener('snapshot', (ev) => {
      const d = JSON.parse(ev.data);
      this.store.replaceAll(d.tasks, d.scope.tenant);
      const who = $('who');
      who.hidden = false;
      who.textContent = d.scope.tenant === null ? (this.api.token ? 'admin' : 'admin (open on loopback)') : `tenant ${d.scope.tenant}`;
      this.status('● Live');
      this.scheduleRender();
      const shown = this.selectedId && this.store.get(this.selectedId);
      if (shown) this.showFigures(shown);
      else this.selectDefault();
    });
    tasks.addEventListener('tasks', (ev) => {
      const changed = JSON.parse(ev.data).tasks;
      this.store.upsert(changed);
      for (const t of changed) if (t.id === this.selectedId) this.onSelectedChanged(t);
      this.selectDefault();
      this.scheduleRender();
      this.scheduleTenants();
    });
    const events = this.api.stream('/events');
    for (const type of EVENT_TYPES) {
      events.addEventListener(type, (ev) => {
        const e = JSON.parse(ev.data);
        this.events.add(e);
        if (type === 'closed') this.scheduleInsight();
      });
    }
    for (const s of [tasks, events]) {
      s.addEventListener('error', () => this.onStreamError(s));
      s.addEventListener('open', () => this.streams.every((x) => x.readyState === LiveStream.OPEN) && this.status('● Live'));
    }
    this.streams = [tasks, events];
  }

  /** A stream retries by itself after a network error; a refusal (e.g. a revoked key) closes it for good. */
  async onStreamError(stream) {
    if (stream.readyState !== LiveStream.CLOSED) {
      this.status('Reconnecting…');
      return;
    }
    this.status('Disconnected');
    try {
      await this.api.check();
      setTimeout(() => this.streams.includes(stream) && this.openStreams(), 2_000);
    } catch (e) {
      if (e.status === 401) {
        forgetToken();
        this.disconnect();
        this.showSignIn(`The token was refused: ${e.message}.`);
      } else {
        setTimeout(() => this.streams.includes(stream) && this.openStreams(), 2_000);
      }
    }
  }

  /** An approve or close answered with the task's new view; the feed will confirm it. */
  applyLocal(view) {
    this.store.upsert([view]);
    if (view.id === this.selectedId) this.onSelectedChanged(view);
    this.scheduleRender();
  }

  setFilter(change) {
    Object.assign(this.filter, change);
    this.pageIndex = 0;
    this.scheduleRender();
  }

  turnPage(delta) {
    this.pageIndex += delta;
    this.scheduleRender();
  }

  scheduleRender() {
    if (this.renderPending) return;
    this.renderPending = true;
    setTimeout(() => {
      this.renderPending = false;
      this.render();
    }, 0);
  }

  render() {
    const page = this.store.page(this.filter, this.pageIndex);
    this.pageIndex = page.index;
    const tenants = new Set([...this.store.byId.values()].map((t) => t.tenant));
    this.list.render(page, this.selectedId, this.store.tenant === null && tenants.size > 1);
    const counts = this.store.countsByState();
    const parts = Object.keys(STATES).filter((s) => counts[s]).map((s) => `${count(counts[s])} ${STATES[s].text}`);
    $('counts').textContent = `${count(this.store.size)} tasks${parts.length ? `: ${parts.join(' · ')}` : ''}`;
    const first = page.total === 0 ? 0 : page.index * PAGE_SIZE + 1;
    const last = Math.min(page.total, (page.index + 1) * PAGE_SIZE);
    $('page-info').textContent = `${count(first)}–${count(last)} of ${count(page.total)}`;
    $('page-prev').disabled = page.index === 0;
    $('page-next').disabled = page.index >= page.pages - 1;
    $('empty').hidden = this.store.size !== 0;
  }

  /**
   * Shows a task in the detail panel. `remember`: put it in the address (a chosen task, not the default one);
   * `scroll`: bring the panel into view where it sits below the list (one column: phones, narrow windows).
   */
  async select(id, { remember = true, scroll = false } = {}) {
    this.selectedId = id;
    if (remember) history.replaceState(null, '', `#task=${encodeURIComponent(id)}`);
    this.scheduleRender();
    $('detail-title').textContent = id;
    $('detail-body').hidden = false;
    if (scroll && matchMedia('(max-width: 999px)').matches) $('detail').scrollIntoView({ block: 'start', behavior: 'smooth' });
    try {
      const [info, burn] = await Promise.all([
        this.api.get(`/tasks/${encodeURIComponent(id)}`),
        this.api.get(`/tasks/${encodeURIComponent(id)}/history`),
      ]);
      if (this.selectedId !== id) return;
      this.showFigures(this.store.get(id) ?? info);
      $('detail-countdown').textContent = `Next countdown the model reads: ${info.countdown}`;
      this.chart.show(burn);
    } catch (e) {
      if (this.selectedId !== id) return;
      $('detail-figures').textContent = `Cannot show ${id}: ${e.message}`;
      $('detail-meta').textContent = '';
      $('detail-countdown').textContent = '';
      $('detail-actions').replaceChildren();
      this.actionsKey = null;
      this.chart.clear();
    }
  }

  onSelectedChanged(t) {
    this.showFigures(t);
    this.chart.add(t);
    // The countdown wording is the gateway's; re-read it once updates settle.
    clearTimeout(this.countdownTimer);
    this.countdownTimer = setTimeout(async () => {
      try {
        const info = await this.api.get(`/tasks/${encodeURIComponent(t.id)}`);
        if (info.id === this.selectedId) $('detail-countdown').textContent = `Next countdown the model reads: ${info.countdown}`;
      } catch {
        // the next update tries again
      }
    }, 300);
  }

  showFigures(t) {
    const figs = $('detail-figures');
    figs.replaceChildren(stateBadge(t.state), ` ${percent(t.utilization)} · ${figures(t)}`);
    const meta = [
      `label ${t.label}`,
      `${t.policy} policy`,
      // How a call is counted: a USD task is always billed; `billed tokens` is every token the provider billed.
      t.unit === 'usd' ? 'billed' : `${t.meter} meter, ${count(t.tokensUsed)} billed tokens`,
      `tenant ${t.tenant}`,
      `${plural(t.calls, 'call')}${t.callsInFlight ? ` (${t.callsInFlight} in flight)` : ''}`,
      `cost ${usd(t.costUsd)}`,
      t.models.length ? `models ${t.models.join(', ')}` : null,
      t.parentId ? `sub-task of ${t.parentId}` : null,
      t.estimateToFinish !== null ? `estimate to finish ${amountWithUnit(t.unit, t.estimateToFinish)}` : null,
      `started ${clock(t.createdAtMs)}`,
      t.outcome ? `outcome ${t.outcome}` : null,
    ].filter(Boolean);
    $('detail-meta').textContent = meta.join(' · ');
    // Rebuilt only when they change, so a live update does not take focus off them.
    const actionsKey = `${t.id}\u0000${t.state}`;
    if (this.actionsKey !== actionsKey) {
      this.actionsKey = actionsKey;
      $('detail-actions').replaceChildren(actionButtons(t, (id) => this.dialogs.openApprove(id), (id) => this.dialogs.openClose(id)));
    }
  }

  scheduleInsight() {
    clearTimeout(this.insightTimer);
    this.insightTimer = setTimeout(() => void this.loadInsight(), 400);
  }

  /** At most one tenants read a second while spending goes on. */
  scheduleTenants() {
    this.tenantsTimer ??= setTimeout(() => {
      this.tenantsTimer = null;
      void this.loadTenants();
    }, 1_000);
  }

  async loadTenants() {
    try {
      this.tenants.render((await this.api.get('/tenants')).tenants);
    } catch (e) {
      this.tenants.failed(e.message);
    }
  }

  /** Calibration from GET /calibration when the gateway has it, else computed here from GET /runs. */
  async loadInsight() {
    try {
      const { runs } = await this.api.get('/runs');
      let server = null;
      try {
        server = serverCalibration(await this.api.get('/calibration'));
      } catch (e) {
        if (e.status !== 404) throw e;
      }
      this.insight.render(calibrate(groupRuns(runs), server), runs.length, server?.method ?? null);
    } catch (e) {
      $('calibration-source').textContent = `Cannot load run records: ${e.message}`;
    }
  }
}

void new Dashboard().start();
