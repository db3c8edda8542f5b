// Plain data shared by the rules, the ledger and every store. Amounts are integers in "ledger units":
// tokens for a `tokens` task, micro-USD (1e-6 USD) for a `usd` task, so every store can add them exactly.

export type Unit = 'tokens' | 'usd';
/** `measure`: counted, never shown a countdown, never refused or lowered; its run record is unbudgeted. */
export type Policy = 'advisory' | 'hard' | 'approval' | 'measure';
export type TaskState = 'active' | 'scoping' | 'wrapping_up' | 'exhausted' | 'paused' | 'closed';
/**
 * How a token task counts a call (SPEC §1a). `loop`: its output plus the input the task has not been charged for
 * yet (what the agentic loop adds). `billed`: every token the provider bills. A USD task is always billed.
 */
export type Meter = 'loop' | 'billed';
export type Outcome = 'completed' | 'exhausted' | 'paused' | 'failed';
export type EventType =
  | 'threshold_crossed'
  | 'exhausted'
  | 'overrun'
  | 'paused'
  | 'approved'
  | 'closed'
  | 'reservation_expired'
  | 'usage_estimated'
  | 'rate_limited'
  | 'period_reset';

/** How often a tenant envelope starts over (UTC calendar day, ISO week from Monday, calendar month), or never. */
export type Period = 'day' | 'week' | 'month' | 'none';

/**
 * One bucket of a sliding rate window (budget/rates.ts): its index (time ÷ the bucket's length), and the tokens and
 * requests counted in it.
 */
export type RateBucket = [index: number, tokens: number, requests: number];

/** A rate limit and the window it is checked against: tokens and requests per minute, each optional. */
export interface RateLimit {
  tpm: number | null;
  rpm: number | null;
  /** Oldest first; only the buckets still inside the window are kept. */
  window: RateBucket[];
  /** When the last `rate_limited` event was written for this limit (at most one a window). */
  limitedAtMs: number | null;
}

/**
 * A tenant's rate limits (set by the operator), checked at admission: a row of its own, so that in Redis Cluster it
 * lives on a slot of its own (SPEC §4a) and never contends with the tenant's budgets.
 */
export interface RateRow extends RateLimit {
  tenant: string;
  updatedAtMs: number;
  version: number;
}

/**
 * What a tenant envelope has burned, for `envelope report --tenants`: settled billed tokens of the current minute,
 * and per hour (the last HOURS_KEPT) with each hour's busiest minute.
 */
export interface Burn {
  minute: [index: number, tokens: number];
  hours: Array<[index: number, tokens: number, peakMinuteTokens: number]>;
}

/**
 * One conversation of a task, as its last settled call left it: the baseline the `loop` meter charges against,
 * and the anchor of the next call's estimate. A task keeps a few (CONVERSATIONS_MAX), the least recent dropped.
 */
export interface Conversation {
  /** CallShape.conversation: a digest of its system prompt and first message. */
  key: string;
  /** Whole input (input + cache writes + cache reads) and output tokens of its last settled call. */
  inputTokens: number;
  outputTokens: number;
  /** Size of that call's request as the client sent it (before anything Envelope added). */
  bodyBytes: number;
  /** What its last calls cost, newest last (at most RECENT_CALLS_MAX): the next call is expected to cost as much. */
  recent: CallCost[];
  /** The id the provider gave its last answer (OpenAI Responses): a call that continues from it is this conversation. */
  responseId: string | null;
  atMs: number;
}

/** One settled call's cost in every measure a task on the path may count in. */
export interface CallCost {
  /** Meter `loop`: output plus fresh input, in tokens. */
  loop: number;
  /** Meter `billed`: every billed token. */
  billed: number;
  costMicros: number;
}

/** Token usage of one model call, in the providers' own fields. `inputTokens` excludes cache reads and writes. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheReadTokens: number;
}

/**
 * A reply that came without exact usage (SPEC §2): the provider's stream broke, or it never said. What it delivered,
 * as far as Envelope saw it; the rules charge an estimate from it (budget/delivered.ts), never zero.
 */
export interface Delivered {
  /** `stream_cut`: the stream ended before the provider said it was complete; `no_usage`: it ended without usage. */
  reason: 'stream_cut' | 'no_usage';
  /** What the provider had reported before it stopped (Anthropic's message_start: the input), or null. */
  reported: Usage | null;
  /** Output tokens estimated from the text, reasoning and tool-call bytes it delivered (StreamMeter.outputTokensDelivered). */
  outputTokens: number;
}

export interface TaskRow {
  id: string;
  tenant: string;
  label: string;
  unit: Unit;
  /** Always `billed` for a USD task. */
  meter: Meter;
  /** Ledger units. */
  total: number;
  /** Ledger units that approvals added to `total` since creation: `total − totalApproved` is what was asked for. */
  totalApproved: number;
  policy: Policy;
  /** Advisory only: the fraction of `total` a task may run over before calls are refused. */
  overrun: number;
  limitCalls: number | null;
  limitSeconds: number | null;
  /** Utilisation fractions at which the state becomes `scoping` and `wrapping_up`. */
  thresholds: [number, number];
  parentId: string | null;
  /** Root first, this task last. Never changes after creation. */
  pathIds: string[];
  /** Ledger units settled, and held by pending reservations. */
  used: number;
  reserved: number;
  tokensUsed: number;
  costMicros: number;
  calls: number;
  callsReserved: number;
  state: TaskState;
  models: string[];
  progressDone: number | null;
  progressTotal: number | null;
  /** The conversations this task's calls belong to, least recent first; bounded. */
  conversations: Conversation[];
  createdAtMs: number;
  updatedAtMs: number;
  closedAtMs: number | null;
  outcome: Outcome | null;
  /** Bumped by every change; optimistic stores compare it. */
  version: number;
  /** Tokens and requests per minute this task may use (with its descendants), and their window; absent: none. */
  rate?: RateLimit;
  /** A tenant envelope only (id `~tenant`): how often it starts over, when the current period began, what it burned. */
  period?: Period;
  periodStartMs?: number;
  burn?: Burn;
}

export type ReservationStatus = 'pending' | 'settled' | 'released' | 'expired';

export interface ReservationRow {
  id: string;
  taskId: string;
  pathIds: string[];
  /** Ledger units held on each task of `pathIds`, same order. */
  amounts: number[];
  model: string | null;
  /** Input tokens held on a billed task (the whole input's worst case), and the output tokens granted (per choice). */
  inputTokens: number;
  outputTokens: number;
  /** Answers the call asked for (OpenAI `n`): each may use `outputTokens`. */
  choices: number;
  /** The conversation the call continues, and the size of its request as the client sent it: settling moves the
   *  conversation's baseline to this call. */
  conversation: string | null;
  bodyBytes: number;
  status: ReservationStatus;
  createdAtMs: number;
  expiresAtMs: number;
  /** Ledger units charged on each task of `pathIds` at settlement. */
  settledAmounts: number[] | null;
  /** What the call counts in the rate windows of its path (tokens: its worst case until settled), and where. */
  rated?: { bucket: number; tokens: number };
  /** The same in its tenant's window, counted at admission (Ledger.reserve) and corrected after settlement. */
  admitted?: { tenant: string; bucket: number; tokens: number };
}

export interface EventDraft {
  type: EventType;
  taskId: string;
  tenant: string;
  atMs: number;
  data: Record<string, unknown>;
}

export interface StoredEvent extends EventDraft {
  /** Store-wide, strictly increasing: what `Last-Event-ID` resumes from. */
  seq: number;
}

/** One finished task: the input of calibration and pricing. Amounts in display units (tokens or USD). */
export interface RunRecord {
  task: string;
  tenant: string;
  label: string;
  model: string | null;
  models: string[];
  unit: Unit;
  meter: Meter;
  total: number;
  used: number;
  tokensUsed: number;
  costUsd: number;
  calls: number;
  durationMs: number;
  outcome: Outcome;
  budgeted: boolean;
  parent: string | null;
  closedAtMs: number;
}

/** A change the rules decided; a store writes it in one atomic step. */
export interface Mutation {
  tasks: TaskRow[];
  /** A tenant's rate row (admission, its correction, the operator's limits). */
  rate?: RateRow;
  reservation?: ReservationRow;
  events: EventDraft[];
  run?: RunRecord;
}
