// The tenants panel (SPEC §4a): per tenant, this period's spend against its envelope, the busiest minute's tokens
// against its TPM limit, and the peak-hour burn ratio (peak hour ÷ median hour over the week kept), as
// `envelope report --tenants` shows them. From GET /envelope/v1/tenants (a tenant key sees its own row).
import { el } from './burn-bar.js';
import { amount, count } from './format.js';

const share = (x, of) => (of ? `${((x / of) * 100).toFixed(1)} %` : '–');

export class TenantsView {
  constructor(body, note) {
    this.body = body;
    this.note = note;
  }

  render(tenants) {
    const rows = tenants.map((t) => {
      const unit = t.spend?.unit ?? 'tokens';
      const total = t.envelope?.total ?? null;
      const tpm = t.limits?.tpm ?? null;
      const b = t.burn;
      return el(
        'tr',
        { 'data-tenant': t.tenant },
        el('th', { scope: 'row', text: t.tenant }),
        el('td', { 'data-head': 'Period', 'data-field': 'period', text: t.spend?.period ?? '–' }),
        el('td', { 'data-head': 'Spent / envelope', 'data-field': 'spend', text: t.spend ? `${amount(unit, t.spend.used)} of ${total === null ? 'no cap' : `${amount(unit, total)} (${share(t.spend.used, total)})`}` : '–' }),
        el('td', { 'data-head': 'Peak-minute TPM / limit', 'data-field': 'tpm', text: `${count(b.peakMinuteTokens)} of ${tpm === null ? 'no limit' : `${count(tpm)} (${share(b.peakMinuteTokens, tpm)})`}` }),
        el('td', { 'data-head': 'Peak ÷ median hour', 'data-field': 'burn', text: b.peakHourRatio === null ? '–' : `${b.peakHourRatio.toFixed(2)}× (${count(b.peakHourTokens)} ÷ ${count(b.medianHourTokens)})` }),
      );
    });
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 5, text: 'No tenant has an envelope or a rate limit.' })));
    this.body.replaceChildren(...rows);
    this.note.textContent = '';
  }

  clear() {
    this.body.replaceChildren();
    this.note.textContent = '';
  }

  failed(message) {
    this.note.textContent = `Cannot load tenants: ${message}`;
  }
}
