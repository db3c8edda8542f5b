// A provider's wire format, as far as budgets care: what a request asks for, how to apply a budget plan to it,
// where the usage is in its answers, and what its errors look like. A new provider is one new file.
import { createHash } from 'node:crypto';
import type { ErrorCode } from '../budget/errors.js';
import type { Usage } from '../budget/types.js';

export type DialectName = 'anthropic' | 'openai';

/** Anthropic's `output_config.task_budget`, as a client may send it. */
export interface TaskBudgetField {
  type: 'tokens';
  total: number;
  remaining?: number;
}

export interface CallShape {
  model: string;
  /** Output the call asks for; null when the client left it to the provider's default. */
  maxTokens: number | null;
  stream: boolean;
  taskBudget: TaskBudgetField | null;
  /** True when the last user turn is a new request rather than tool results (a new agentic turn). */
  turnStart: boolean;
  messageCount: number;
  /**
   * Which conversation of its task the request continues (the `loop` meter keeps a baseline per conversation):
   * the same system prompt and first message give the same id. Null when the request has no such identity.
   */
  conversation: string | null;
}

export interface CallPlan {
  /** Output cap to send; null leaves the client's request as it is (a measure task with no cap of its own). */
  maxTokens: number | null;
  /** Text appended after the last cache breakpoint, or null. */
  countdown: string | null;
  /** For models with native task budgets: what to send in `output_config.task_budget`. */
  nativeBudget: { total: number; remaining: number } | null;
}

/** Follows a response stream's events and knows the usage so far. */
export interface StreamMeter {
  push(event: string | undefined, data: string): void;
  usage(): Usage | null;
  /** True once the provider said the message is complete. */
  readonly complete: boolean;
}

export interface Dialect {
  readonly name: DialectName;
  /** Reads what budgeting needs from a request body; throws `invalid_request` on a body the provider would refuse. */
  parse(body: unknown): CallShape;
  /** A copy of the body with the plan applied and Envelope's own fields removed; the original is not changed. */
  prepare(body: Record<string, unknown>, plan: CallPlan): Record<string, unknown>;
  /** The body as forwarded when no task applies: Envelope's own fields removed. */
  strip(body: Record<string, unknown>): Record<string, unknown>;
  usageFromResponse(json: unknown): Usage | null;
  streamMeter(): StreamMeter;
  errorBody(code: ErrorCode, message: string): unknown;
}

/** A conversation's id from what identifies it (its system prompt and first message): 16 hex digits of SHA-256. */
export function conversationOf(dialect: string, system: unknown, first: unknown): string {
  return createHash('sha256').update(JSON.stringify([dialect, system ?? null, first ?? null])).digest('hex').slice(0, 16);
}

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);

/** Feeds one stream event to a meter; a malformed event is skipped (its bytes still reach the client untouched). */
export function pushEvent(meter: StreamMeter, event: string | undefined, data: string): void {
  try {
    meter.push(event, data);
  } catch {
    // ignored: the usage it carried is simply not seen
  }
}
