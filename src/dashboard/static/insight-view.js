// The calibration cards (a uPlot histogram per label with its percentile lines and recommended budget) and
// the cost-per-label table with the coverage ratio of a price the user enters.
import uPlot from '/dashboard/vendor/uPlot.esm.js';
import { el } from './burn-bar.js';
import { amount, count, usd } from './format.js';
import { coverage, COVERAGE_TARGET, FALLBACK } from './insight.js';

const PRICES_KEY = 'envelope.prices';
const LINES = [
  { key: 'p50', label: 'p50', color: '#2e7d32', dash: [] },
  { key: 'p75', label: 'p75', color: '#8a6d00', dash: [6, 3] },
  { key: 'p90', label: 'p90', color: '#c43e00', dash: [3, 3] },
  { key: 'p99', label: 'p99', color: '#b71c1c', dash: [1, 3] },
  { key: 'recommended', label: 'recommended', color: '#1565c0', dash: [10, 3, 2, 3] },
];

/**
 * Draws the vertical percentile lines on top of the bars, each labelled at the top beside its line. Labels go in
 * the first row where they overlap no other label, so lines far apart share the top row and only close ones step
 * down; a label that would run off the plot's right edge sits to the left of its line.
 */
function linesPlugin(cal) {
  return {
    hooks: {
      draw: [
        (u) => {
          const { ctx } = u;
          const dpr = devicePixelRatio;
          const { left, top, width, height } = u.bbox;
          ctx.save();
          ctx.font = `${Math.round(11 * dpr)}px sans-serif`;
          // uPlot leaves its axis text settings on the context.
          ctx.textAlign = 'left';
          ctx.textBaseline = 'alphabetic';
          const pad = 3 * dpr;
          const rows = [];
          for (const line of LINES) {
            const v = cal[line.key];
            if (v === null || v === undefined) continue;
            const x = Math.round(u.valToPos(v, 'x', true));
            ctx.strokeStyle = line.color;
            ctx.lineWidth = 1.5 * dpr;
            ctx.setLineDash(line.dash.map((d) => d * dpr));
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            const w = ctx.measureText(line.label).width;
            const tx = x + pad + w <= left + width ? x + pad : Math.max(left, x - pad - w);
            let row = rows.findIndex((spans) => spans.every(([a, b]) => tx + w + pad <= a || tx >= b + pad));
            if (row === -1) row = rows.push([]) - 1;
            rows[row].push([tx, tx + w]);
            const y = top + (12 + row * 13) * dpr;
            ctx.fillStyle = 'rgba(255,255,255,0.85)';
            ctx.fillRect(tx - 1, y - 10 * dpr, w + 2, 12 * dpr);
            ctx.fillStyle = line.color;
            ctx.fillText(line.label, tx, y);
          }
          ctx.restore();
        },
      ],
    },
  };
}

export class InsightView {
  constructor(cards, source, costBody) {
    this.cards = cards;
    this.source = source;
    this.costBody = costBody;
    this.plots = [];
    this.rows = [];
    new ResizeObserver(() => {
      for (const { plot, box } of this.plots) plot.setSize({ width: Math.max(220, box.clientWidth), height: 160 });
    }).observe(cards);
  }

  prices() {
    try {
      return JSON.parse(localStorage.getItem(PRICES_KEY) ?? '{}');
    } catch {
      return {};
    }
  }

  /** `method`: the server's description of its calibration, or null when the page computed it. */
  render(calibrated, runCount, method) {
    this.rows = calibrated;
    this.source.textContent = runCount === 0
      ? 'No finished runs yet: closed tasks become run records, and calibration starts from them.'
      : calibrated.some((c) => c.fromServer)
        ? `${count(runCount)} run records; percentiles, recommended budgets and bins from GET /envelope/v1/calibration${method ? `: ${method}` : '.'}`
        : `${count(runCount)} run records (GET /envelope/v1/runs); computed in the page: nearest-rank percentiles, recommended = p${FALLBACK.percentile} × ${1 + FALLBACK.headroom}, at least ${count(FALLBACK.minimumTokens)} tokens.`;
    for (const { plot } of this.plots) plot.destroy();
    this.plots = [];
    this.cards.replaceChildren(...calibrated.map((c) => this.card(c)));
    this.renderCosts();
  }

  card(c) {
    const name = c.unit === 'usd' ? `${c.label} (USD)` : c.label;
    const box = el('div', { class: 'plot' });
    const summary = LINES.map((l) => `${l.label} ${c[l.key] === null ? '—' : amount(c.unit, c[l.key])}`).join(' · ');
    const share = (x) => (x === null ? '—' : `${Math.round(x * 100)} %`);
    const h = c.histogram;
    const notes = [
      `set at p${c.percentile}`,
      `exhausted ${share(c.exhaustionRate)}`,
      `≥95 % used ${share(c.nearTotalShare)}`,
      h.overflow ? `${count(h.overflow)} beyond the last bin` : null,
    ].filter(Boolean);
    const card = el(
      'figure',
      { class: 'card', 'data-label': c.label },
      el('h3', { text: name }),
      box,
      el(
        'figcaption',
        {},
        el('span', { class: 'stats', 'data-field': 'percentiles', text: `n ${count(c.n)} · ${summary}` }),
        el('span', { class: 'meta', text: ` · ${notes.join(' · ')}` }),
        c.warnings.length ? el('ul', { class: 'warnings' }, ...c.warnings.map((w) => el('li', { text: w }))) : null,
      ),
    );
    // Bars are centred on their bin; the scale reaches the lines drawn beyond the last bin.
    const width = h.edges.length > 1 ? h.edges[1] - h.edges[0] : 1;
    const xs = h.counts.map((_, i) => (h.edges[i] + h.edges[i + 1]) / 2);
    const top = Math.max(h.edges.at(-1), ...LINES.map((l) => c[l.key] ?? -Infinity)) + width;
    queueMicrotask(() => {
      const plot = new uPlot(
        {
          width: Math.max(220, box.clientWidth),
          height: 160,
          legend: { show: false },
          cursor: { show: false },
          scales: { x: { time: false, range: [h.edges[0] - width / 2, top] }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
          series: [{}, { label: 'runs', fill: 'rgba(96,125,139,0.45)', stroke: '#546e7a', paths: uPlot.paths.bars({ size: [0.92, Infinity], align: 0 }), points: { show: false } }],
          axes: [{ values: (_u, ticks) => ticks.map((v) => amount(c.unit, v)), size: 36 }, { size: 34, values: (_u, ticks) => ticks.map((v) => (Number.isInteger(v) ? String(v) : '')) }],
          plugins: [linesPlugin(c)],
        },
        [xs, h.counts],
        box,
      );
      this.plots.push({ plot, box });
    });
    return card;
  }

  renderCosts() {
    const prices = this.prices();
    const rows = this.rows.map((c) => {
      const perRun = c.runs > 0 ? c.costUsd / c.runs : 0;
      const input = el('input', { type: 'number', min: '0', step: '0.01', inputmode: 'decimal', 'aria-label': `Price per run for ${c.label} in USD`, value: prices[c.label] ?? '' });
      const cover = el('td', { 'data-head': 'Coverage', 'data-field': 'coverage' });
      const showCoverage = () => {
        const price = Number(input.value);
        const ratio = coverage(price, perRun);
        cover.textContent = ratio === null ? '—' : `${ratio.toFixed(1)}× ${ratio >= COVERAGE_TARGET ? '✓ meets' : '✗ below'} ${COVERAGE_TARGET}×`;
        cover.className = ratio === null ? '' : ratio >= COVERAGE_TARGET ? 'ok' : 'short';
      };
      input.addEventListener('input', () => {
        const all = this.prices();
        if (input.value === '') delete all[c.label];
        else all[c.label] = Number(input.value);
        localStorage.setItem(PRICES_KEY, JSON.stringify(all));
        showCoverage();
      });
      showCoverage();
      return el(
        'tr',
        { 'data-label': c.label },
        el('th', { scope: 'row', text: c.unit === 'usd' ? `${c.label} (USD)` : c.label }),
        el('td', { 'data-head': 'Runs', text: count(c.runs) }),
        el('td', { 'data-head': 'Tokens', text: count(c.tokens) }),
        el('td', { 'data-head': 'Cost', 'data-field': 'cost', text: usd(c.costUsd) }),
        el('td', { 'data-head': 'Cost / run', 'data-field': 'cost-per-run', text: usd(perRun) }),
        el('td', { 'data-head': 'Price / run' }, input),
        cover,
      );
    });
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 7, text: 'No run records yet.' })));
    this.costBody.replaceChildren(...rows);
  }
}

