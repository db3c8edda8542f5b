// The in-process library: openEnvelope() → env.task() → budgeted work, on the same ledger as the gateway.
import { EnvelopeError } from '../budget/errors.js';
import { countdownFor, type Countdown } from '../budget/countdown.js';
import { fromLedger, type ReserveGrant } from '../budget/rules.js';
import type { TaskSpecInput } from '../budget/spec.js';
import type { Outcome, RunRecord, StoredEvent, TaskRow, Usage } from '../budget/types.js';
import type { TaskView } from '../budget/view.js';
import { Ledger, type LedgerOptions } from '../ledger/ledger.js';
import { openStore, DEFAULT_STORE_URL } from '../store/open.js';
import type { LedgerStore } from '../store/store.js';
import { DEFAULT_CALL_POLICY, type CallPolicy } from '../pipeline/budgeted-call.js';
import { newCallEnv, type CallEnv } from '../pipeline/run-call.js';
import { budgetedFetch, type Fetch } from './budgeted-fetch.js';
import { budgetExhausted, budgetMiddleware, type BudgetMiddleware } from './ai-middleware.js';
import { PRESETS, type PresetName } from './presets.js';

export interface EnvelopeOptions extends LedgerOptions {
  /** A store URL (`memory:`, `sqlite:PATH`, `redis://…`, `redis+cluster://…`, `postgres://…`) or an open store. */
  store?: string | LedgerStore;
  /** How often expired reservations are released; 0 turns the sweeper off. */
  sweepIntervalMs?: number;
  /** How calls are estimated and which models take native budgets: the gateway's settings (`envelope serve`). */
  call?: Partial<CallPolicy>;
}

/** The budget as Anthropic's `output_config.task_budget` shapes it: what a compacted context resumes from. */
export interface Carry {
  type: 'tokens' | 'usd';
  total: number;
  remaining: number;
}

export interface TaskStatus extends TaskView {
  /** Share of the tightest limit used, in percent to one decimal, rounded down (227 of 50,000 is 0.4, never 0). */
  percentUsed: number;
  /** As last reported with `task.progress(done, total)`; null until then. */
  subtasks: { done: number; left: number; total: number } | null;
  /** The line the model is shown on its next call. */
  countdown: Countdown['text'];
  events: StoredEvent[];
  children: TaskView[];
}

/** A task's settings; with `preset` (bug-fix, feature, refactor, docs, tests) the total, policy and label default from it. */
export type TaskOptions = Omit<TaskSpecInput, 'parent' | 'parentId' | 'total'> & { total?: number; preset?: PresetName };

function withPreset(options: TaskOptions): Record<string, unknown> {
  const { preset, ...rest } = options;
  if (preset === undefined) {
    if (rest.total === undefined) throw new EnvelopeError('invalid_request', 'a task needs a total, or a preset (bug-fix, feature, refactor, docs, tests)');
    return rest;
  }
  const p = PRESETS[preset];
  if (!p) throw new EnvelopeError('invalid_request', `unknown preset "${preset}"; use one of ${Object.keys(PRESETS).join(', ')}`);
  return { label: preset, total: p.total, policy: p.policy, ...rest };
}

/** What task.wrap() needs of a client: the official Anthropic and OpenAI SDKs have `withOptions({ fetch })`. */
export interface WrappableClient {
  withOptions(options: { fetch?: Fetch }): this;
}

/** @google/genai's GoogleGenAI: it keeps its options on the client, and `httpOptions.fetch` is its transport. */
export interface GoogleGenAILike {
  readonly models: unknown;
}

interface GoogleGenAIOptions {
  apiKey?: string;
  vertexai?: boolean;
  project?: string;
  location?: string;
  apiVersion?: string;
  httpOptions?: { fetch?: Fetch; [k: string]: unknown };
}

const isGoogleGenAI = (c: unknown): c is GoogleGenAILike =>
  typeof c === 'object' && c !== null && 'models' in c && 'apiClient' in c && typeof (c as { withOptions?: unknown }).withOptions !== 'function';

export class Envelope {
  readonly ledger: Ledger;
  /** What every budgeted call shares, as in the gateway: the call policy, native-budget turns. */
  readonly callEnv: CallEnv;
  private readonly sweeper: NodeJS.Timeout | undefined;

  constructor(ledger: Ledger, sweepIntervalMs: number, callPolicy: CallPolicy = DEFAULT_CALL_POLICY) {
    this.ledger = ledger;
    this.callEnv = newCallEnv(ledger, callPolicy);
    if (sweepIntervalMs > 0) {
      this.sweeper = setInterval(() => void this.ledger.sweep().catch(() => undefined), sweepIntervalMs);
      this.sweeper.unref();
    }
  }

  /** Creates a task, or resumes it when the id exists with the same settings (a restarted process). */
  async task(options: TaskOptions & { parent?: string }): Promise<BudgetTask> {
    const row = await this.ledger.createTask(withPreset(options));
    return new BudgetTask(this, row.id);
  }

  /**
   * A handle on an existing task after a restart or a compaction, without restating its settings. With the
   * `carry` the conversation kept, a lower `remaining` is charged; the budget is never reset.
   */
  async resume(id: string, carry?: Carry): Promise<BudgetTask> {
    const row = await this.ledger.task(id);
    const task = new BudgetTask(this, row.id);
    if (carry) await task.applyCarry(carry);
    return task;
  }

  events(afterSeq = 0, limit = 1_000): Promise<StoredEvent[]> {
    return this.ledger.events({ afterSeq, limit });
  }

  runs(label?: string): Promise<RunRecord[]> {
    return this.ledger.runs(label ? { label } : {});
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await this.ledger.shutdown();
  }
}

/** One model call's hold on the budget: settle it with the real usage, or release it. */
export interface Reservation {
  id: string;
  outputTokens: number;
  grant: ReserveGrant;
  settle(usage: Usage): Promise<void>;
  release(): Promise<void>;
}

export class BudgetTask {
  readonly env: Envelope;
  readonly id: string;

  constructor(env: Envelope, id: string) {
    this.env = env;
    this.id = id;
  }

  private get ledger(): Ledger {
    return this.env.ledger;
  }

  /**
   * The same client, budgeted: every model call (Anthropic messages create / stream / beta; OpenAI chat completions
   * and responses, create and stream; @google/genai generateContent and generateContentStream) reserves, gets the
   * countdown, is enforced and settled exactly as through the gateway. A refusal is the SDK's own API error (402).
   * Anthropic and OpenAI clients come back from their own `withOptions`; a GoogleGenAI client as a new client with
   * the same key, backend and HTTP options (Gemini API or Vertex AI express mode).
   */
  wrap<C extends WrappableClient | GoogleGenAILike>(client: C): C {
    if (isGoogleGenAI(client)) {
      const { apiKey, vertexai, project, location, apiVersion, httpOptions } = client as unknown as GoogleGenAIOptions;
      const http = httpOptions ?? {};
      const fetch = this.budgeted(http.fetch);
      const Client = client.constructor as new (options: GoogleGenAIOptions) => C;
      return new Client({ apiKey, vertexai, project, location, apiVersion, httpOptions: { ...http, fetch } });
    }
    const own = (client as unknown as { fetch?: Fetch }).fetch;
    return (client as WrappableClient).withOptions({ fetch: this.budgeted(typeof own === 'function' ? own.bind(client) : undefined) }) as C;
  }

  /** A budgeted fetch over `base` (the client's own, else the global one). */
  private budgeted(base: Fetch | undefined): Fetch {
    return budgetedFetch({ env: this.env.callEnv, taskId: this.id, base: base ?? ((input, init) => fetch(input, init)) });
  }

  /** Middleware for the Vercel AI SDK: `wrapLanguageModel({ model, middleware: task.middleware() })`. */
  middleware(): BudgetMiddleware {
    return budgetMiddleware(this.env.callEnv, this.id);
  }

  /** A `stopWhen` condition that ends a generateText/streamText loop once this task is exhausted. */
  stopWhenExhausted(): () => Promise<boolean> {
    return budgetExhausted(this.ledger, this.id);
  }

  /** A sub-agent's envelope: its usage also counts against this task and every ancestor. */
  async child(options: TaskOptions): Promise<BudgetTask> {
    const parent = await this.ledger.task(this.id);
    const row = await this.ledger.createTask({ tenant: parent.tenant, ...withPreset(options), parent: this.id });
    return new BudgetTask(this.env, row.id);
  }

  async row(): Promise<TaskRow> {
    return this.ledger.task(this.id);
  }

  async status(): Promise<TaskStatus> {
    const row = await this.row();
    const path = await this.ledger.pathOf(row);
    const [events, children] = await Promise.all([
      this.ledger.events({ taskId: this.id }),
      this.ledger.listTasks({ parentId: this.id, limit: 1_000 }),
    ]);
    const view = this.ledger.view(row);
    return {
      ...view,
      percentUsed: Math.floor(view.utilization * 1_000 + 1e-9) / 10,
      subtasks: view.progress && { done: view.progress.done, left: view.progress.total - view.progress.done, total: view.progress.total },
      countdown: countdownFor(path, this.ledger.now()).text,
      events,
      children: children.map((c) => this.ledger.view(c)),
    };
  }

  async carry(): Promise<Carry> {
    const t = await this.row();
    return {
      type: t.unit,
      total: fromLedger(t.unit, t.total),
      remaining: fromLedger(t.unit, Math.max(0, t.total - t.used - t.reserved)),
    };
  }

  /** Resumes from a carried budget: a lower `remaining` than the ledger's is charged; a higher one is ignored. */
  async applyCarry(carry: Carry): Promise<void> {
    const t = await this.row();
    if (carry.type !== t.unit) throw new EnvelopeError('invalid_request', `carry is in ${carry.type}, task in ${t.unit}`);
    await this.ledger.lowerRemaining(this.id, carry.remaining);
  }

  /** Holds the worst case of one call; the hold is released if never settled within the time-to-live. */
  async reserve(worst: { inputTokens: number; outputTokens: number; model?: string; minOutputTokens?: number; ttlMs?: number }): Promise<Reservation> {
    const grant = await this.ledger.reserve({
      taskId: this.id,
      model: worst.model ?? null,
      inputTokens: worst.inputTokens,
      outputTokensMax: worst.outputTokens,
      outputTokensMin: worst.minOutputTokens ?? Math.min(worst.outputTokens, this.ledger.config.floorOutputTokens),
      ttlMs: worst.ttlMs,
    });
    const ledger = this.ledger;
    return {
      id: grant.reservation.id,
      outputTokens: grant.outputTokens,
      grant,
      async settle(usage: Usage) {
        await ledger.settle(grant.reservation.id, usage);
      },
      async release() {
        await ledger.release(grant.reservation.id);
      },
    };
  }

  async approve(add: number): Promise<TaskRow> {
    return this.ledger.approve(this.id, add);
  }

  /** Reports subtasks done of the total: status() then shows what is left and estimates the tokens to finish. */
  async progress(done: number, total: number): Promise<void> {
    await this.ledger.progress(this.id, done, total);
  }

  async close(outcome?: Outcome): Promise<TaskRow> {
    return this.ledger.close(this.id, outcome);
  }
}

export async function openEnvelope(options: EnvelopeOptions = {}): Promise<Envelope> {
  const store = typeof options.store === 'object' ? options.store : await openStore(options.store ?? DEFAULT_STORE_URL);
  const ledger = new Ledger(store, options);
  return new Envelope(ledger, options.sweepIntervalMs ?? 5_000, { ...DEFAULT_CALL_POLICY, ...options.call });
}
