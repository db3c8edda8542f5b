// The Approve and Close dialogs. Both call the admin API and keep the dialog open with the server's message
// when it refuses (a tenant key acting on another tenant's task, a task closed meanwhile).
import { amountWithUnit, stateText } from './format.js';

/** What to add, as the refusal message suggests: a fifth of the total, or what the task is over by, rounded up. */
export function suggestedAdd(t) {
  const need = Math.max(t.total / 5, t.used + t.reserved - t.total);
  return t.unit === 'usd' ? Math.ceil(need * 100) / 100 : Math.ceil(need / 1_000) * 1_000;
}

export class Dialogs {
  /** @param {() => import('./api.js').Api} api the current connection  @param {(id: string) => object | undefined} taskOf  @param {(view: object) => void} onChanged */
  constructor(api, taskOf, onChanged) {
    this.api = api;
    this.taskOf = taskOf;
    this.onChanged = onChanged;
    this.approve = document.getElementById('approve-dialog');
    this.close = document.getElementById('close-dialog');
    this.wire(this.approve, 'approve', async (id) => {
      const input = document.getElementById('approve-add');
      const add = Number(input.value);
      if (!(add > 0)) throw new Error('enter an amount greater than zero');
      return this.api().post(`/tasks/${encodeURIComponent(id)}/approve`, { add });
    });
    this.wire(this.close, 'close', (id) => this.api().post(`/tasks/${encodeURIComponent(id)}/close`, {}));
  }

  wire(dialog, name, act) {
    const error = document.getElementById(`${name}-error`);
    const submit = document.getElementById(`${name}-submit`);
    document.getElementById(`${name}-cancel`).addEventListener('click', () => dialog.close());
    document.getElementById(`${name}-form`).addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      submit.disabled = true;
      try {
        const view = await act(dialog.dataset.taskId);
        dialog.close();
        this.onChanged(view);
      } catch (e) {
        error.textContent = `Refused: ${e.message}`;
      } finally {
        submit.disabled = false;
      }
    });
  }

  openApprove(id) {
    const t = this.taskOf(id);
    if (!t) return;
    const input = document.getElementById('approve-add');
    document.getElementById('approve-title').textContent = `Approve more budget for ${id}`;
    document.getElementById('approve-text').textContent =
      `${id} is ${stateText(t.state)}: ${amountWithUnit(t.unit, t.used)} used of ${amountWithUnit(t.unit, t.total)}. How much should be added to its total?`;
    document.getElementById('approve-label').textContent = t.unit === 'usd' ? 'Add (USD)' : 'Add (tokens)';
    input.step = t.unit === 'usd' ? '0.01' : '1';
    input.min = t.unit === 'usd' ? '0.01' : '1';
    input.value = String(suggestedAdd(t));
    document.getElementById('approve-error').textContent = '';
    this.approve.dataset.taskId = id;
    this.approve.showModal();
    input.select();
  }

  openClose(id) {
    const t = this.taskOf(id);
    if (!t) return;
    document.getElementById('close-title').textContent = `Close ${id}?`;
    document.getElementById('close-text').textContent =
      `Calls naming it are refused from then on; its run record (${amountWithUnit(t.unit, t.used)} used of ${amountWithUnit(t.unit, t.total)}) goes to calibration.`;
    document.getElementById('close-error').textContent = '';
    this.close.dataset.taskId = id;
    this.close.showModal();
  }
}
