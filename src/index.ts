// The package's public surface.
export { openEnvelope, Envelope, BudgetTask, type EnvelopeOptions, type TaskOptions, type Carry, type TaskStatus, type Reservation } from './sdk/envelope.js';
export { PRESETS, type Preset, type PresetName } from './sdk/presets.js';
export { budgetExhausted, type BudgetMiddleware } from './sdk/ai-middleware.js';
export { Ledger, type LedgerOptions, type Scope } from './ledger/ledger.js';
export { EnvelopeError, type ErrorCode } from './budget/errors.js';
export { DEFAULT_BUDGET_CONFIG, type BudgetConfig } from './budget/config.js';
export { countdownFor, type Countdown } from './budget/countdown.js';
export type { TaskView } from './budget/view.js';
export type * from './budget/types.js';
export { DEFAULT_PRICES, priceFor, costMicros, type ModelPrice, type PriceTable } from './metering/prices.js';
export { openStore } from './store/open.js';
export type { LedgerStore } from './store/store.js';
