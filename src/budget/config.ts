// The knobs of the budget rules, with the defaults SPEC §1 names.

export interface BudgetConfig {
  /** A token task's total may not be smaller (Anthropic's own floor for task_budget.total). */
  minimumTokens: number;
  /** Utilisation at which the countdown says "scope tightly" and "start nothing new". */
  thresholds: [number, number];
  /** Default overrun fraction for advisory tasks. */
  overrun: number;
  /** Hard and approval budgets lower max_tokens down to this before they refuse a call. */
  floorOutputTokens: number;
  /**
   * A reservation not settled, or kept alive by its holder (Ledger.keepAlive), within this time is released by the
   * sweeper: how long a dead process's calls keep holding budget.
   */
  reservationTtlMs: number;
  /** Deepest allowed task tree (root is depth 1). */
  depthMax: number;
  /** Bytes of request body per input token in estimates (lower is more cautious; tokenizers take 3–4+). */
  bytesPerToken: number;
  /** Conversations whose baselines a task keeps (the `loop` meter); the least recent is dropped past it. */
  conversationsMax: number;
  /**
   * `projected` (SPEC §1a): estimates anchored on the conversation's baseline, the countdown projected with the next
   * call's cost. `whole-body`: every call estimated from its whole body, the countdown on the figures as they stand —
   * how admission worked before; kept to measure the difference (`envelope trial --compare`, the bench).
   */
  admission: 'projected' | 'whole-body';
  /** The span of a rate limit's sliding window: tokens and requests per minute are per this long (budget/rates.ts). */
  rateWindowMs: number;
  /** Each rule asserts what it decided (budget/invariants.ts); off only with ENVELOPE_ASSERTIONS=off. */
  assertions: boolean;
}

export const DEFAULT_BUDGET_CONFIG: BudgetConfig = {
  minimumTokens: 20_000,
  thresholds: [0.7, 0.85],
  overrun: 0.1,
  floorOutputTokens: 1_024,
  reservationTtlMs: 2 * 60_000,
  depthMax: 16,
  bytesPerToken: 3,
  conversationsMax: 8,
  admission: 'projected',
  rateWindowMs: 60_000,
  assertions: true,
};
