// The burn-down chart of the selected task (uPlot): what is left against the time since the task started, in the
// task's unit (and, thinner, what is left once the calls in flight are counted), against the levels where the
// countdown changes (70 % and 85 % used by default) and where the budget runs out. Elapsed time, not the clock:
// a task that ran for seconds fills the chart instead of dropping in one vertical line.
import uPlot from '/dashboard/vendor/uPlot.esm.js';
import { amount, amountWithUnit, clock, duration } from './format.js';

const HEIGHT = 220;
/** An open task's last level is drawn on to now while it was active this recently; after that the chart ends. */
const LIVE_MS = 10 * 60_000;

/** Points in time order, one per instant (the last observation of an instant wins). */
function merge(points) {
  const sorted = [...points].sort((a, b) => a.atMs - b.atMs);
  const out = [];
  for (const p of sorted) {
    if (out.length && out.at(-1).atMs === p.atMs) out[out.length - 1] = p;
    else out.push(p);
  }
  return out;
}

export class BurnChart {
  constructor(container, caption) {
    this.container = container;
    this.caption = caption;
    this.plot = null;
    this.taskId = null;
    this.points = [];
    this.thresholds = [0.7, 0.85];
    this.unit = 'tokens';
    this.closed = false;
    new ResizeObserver(() => this.plot?.setSize({ width: this.width(), height: HEIGHT })).observe(container);
  }

  width() {
    return Math.max(240, this.container.clientWidth);
  }

  /** A new task: its history from GET /tasks/:id/history. */
  show(history) {
    this.taskId = history.task.id;
    this.unit = history.task.unit;
    this.thresholds = history.thresholds ?? [0.7, 0.85];
    this.points = merge(history.points);
    this.closed = history.task.state === 'closed';
    this.plot?.destroy();
    this.plot = new uPlot(this.options(), this.data(), this.container);
    this.describe();
  }

  /** A live update of the shown task. */
  add(task) {
    if (task.id !== this.taskId || !this.plot) return;
    this.closed = task.state === 'closed';
    this.points = merge([...this.points, { atMs: task.updatedAtMs, used: task.used, reserved: task.reserved, total: task.total }]);
    this.plot.setData(this.data());
    this.describe();
  }

  clear() {
    this.plot?.destroy();
    this.plot = null;
    this.taskId = null;
    this.caption.textContent = '';
  }

  /** Whether the last level is drawn on to now: an open task that had something happen lately. */
  live() {
    return !this.closed && Date.now() - this.points.at(-1).atMs < LIVE_MS;
  }

  data() {
    const pts = this.live() ? [...this.points, { ...this.points.at(-1), atMs: Math.max(Date.now(), this.points.at(-1).atMs) }] : this.points;
    const [scope, wrap] = this.thresholds;
    const start = this.points[0].atMs;
    return [
      pts.map((p) => (p.atMs - start) / 1000),
      pts.map((p) => p.total - p.used),
      pts.map((p) => p.total - p.used - p.reserved),
      pts.map((p) => p.total * (1 - scope)),
      pts.map((p) => p.total * (1 - wrap)),
      pts.map(() => 0),
    ];
  }

  options() {
    const stepped = uPlot.paths.stepped({ align: 1 });
    const [scope, wrap] = this.thresholds;
    const fmt = (v) => (v === null || v === undefined ? '—' : amount(this.unit, v));
    return {
      width: this.width(),
      height: HEIGHT,
      scales: { x: { time: false } },
      legend: { live: true },
      cursor: { points: { size: 6 } },
      series: [
        { label: 'since start', value: (_u, v) => (v === null ? '—' : `${duration(v)} (${clock(this.points[0].atMs + v * 1000)})`) },
        { label: 'left', stroke: '#1565c0', width: 2, fill: 'rgba(21,101,192,0.10)', paths: stepped, points: { show: true, size: 5 }, value: (_u, v) => fmt(v) },
        { label: 'after calls in flight', stroke: '#7fa7d9', width: 1, paths: stepped, points: { show: false }, value: (_u, v) => fmt(v) },
        { label: `${Math.round(scope * 100)} % used`, stroke: '#8a6d00', width: 1.5, dash: [8, 4], paths: stepped, points: { show: false }, value: (_u, v) => fmt(v) },
        { label: `${Math.round(wrap * 100)} % used`, stroke: '#c43e00', width: 1.5, dash: [3, 3], paths: stepped, points: { show: false }, value: (_u, v) => fmt(v) },
        { label: '100 % used', stroke: '#b71c1c', width: 1.5, dash: [12, 3, 2, 3], points: { show: false }, value: (_u, v) => fmt(v) },
      ],
      // Ticks at least 64 px apart: short labels that never run into each other at phone width.
      axes: [{ space: 64, values: (_u, ticks) => ticks.map((v) => duration(v)) }, { size: 72, values: (_u, ticks) => ticks.map((v) => amount(this.unit, v)) }],
    };
  }

  describe() {
    const last = this.points.at(-1);
    const [scope, wrap] = this.thresholds;
    const a = (v) => amountWithUnit(this.unit, v);
    const inFlight = last.reserved > 0 ? ` (${a(last.total - last.used - last.reserved)} after calls in flight)` : '';
    const span = duration((last.atMs - this.points[0].atMs) / 1000);
    const quiet = !this.closed && !this.live() ? ` Quiet since ${clock(last.atMs)}.` : '';
    this.caption.textContent =
      `Left over time: now ${a(last.total - last.used)} of ${a(last.total)}${inFlight}, from ${this.points.length} observations over ${span}.${quiet} ` +
      `Dashed lines: ${Math.round(scope * 100)} % used (${amount(this.unit, last.total * (1 - scope))} left), ` +
      `${Math.round(wrap * 100)} % used (${amount(this.unit, last.total * (1 - wrap))} left), 100 % used (nothing left).`;
    this.caption.dataset.points = String(this.points.length);
  }
}
