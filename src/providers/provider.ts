// What a provider is, as far as budgets care: its wire format (a Dialect: what a request asks for, how a budget plan
// is applied to it, where the usage is in its answers, what its errors look like) plus where it is served and where
// it goes (routes, its upstream family and base URL, headers, native budgets). A provider is one file in this folder,
// listed once in registry.ts, which the gateway, the SDK wrappers, insight and the CLI iterate.
import { createHash } from 'node:crypto';
import type { ErrorCode } from '../budget/errors.js';
import type { Delivered, Usage } from '../budget/types.js';
import type { BodyParts, JsonNode } from './json-scan.js';

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
   * A stable short id of the conversation the call belongs to (its system prompt and first message), for the loop
   * meter's per-conversation baseline; null when the body does not show it (a continued Responses call: the
   * pipeline then takes the conversation of the response it continues).
   */
  conversation: string | null;
  /** The provider-held context the call continues (OpenAI Responses `previous_response_id`), or null. */
  continues: string | null;
  /** Answers the provider generates for the one request (OpenAI `n`, Gemini `candidateCount`): each may use the output cap. */
  choices: number;
  /**
   * A field that multiplies the output in a way Envelope cannot hold for (an `n` that is not a whole number in the
   * provider's range, a multiplier the dialect does not know), named for the error; null when there is none. Hard
   * and approval budgets refuse such a call; others hold one choice and let the provider judge the field.
   */
  multiplierUnknown: string | null;
}

export interface CallPlan {
  /** Output cap to send; null leaves the client's request as it is (a measure task with no cap of its own). */
  maxTokens: number | null;
  /** Text appended after the last cache breakpoint, or null. */
  countdown: string | null;
  /** For models with native task budgets: what to send in `output_config.task_budget`. */
  nativeBudget: { total: number; remaining: number } | null;
}

/**
 * A request read from its bytes by a scan (json-scan.ts) rather than parsed: what budgeting needs, and the body as
 * forwarded, the plan spliced into the client's bytes. Equal, once parsed, to what `parse` and `prepare` make of the
 * parsed body (test/body-scan.test.ts holds every dialect to that).
 */
export interface ScannedCall {
  shape: CallShape;
  /** The body with the plan applied and Envelope's own fields removed. */
  prepare(plan: CallPlan): BodyParts;
  /** The body as forwarded when no task applies: Envelope's own fields removed (the same bytes when there are none). */
  strip(): BodyParts;
}

/** Follows a response stream's events and knows the usage so far. */
export interface StreamMeter {
  push(event: string | undefined, data: string): void;
  /** The usage the provider reported so far (final once `final` is true), or null. */
  usage(): Usage | null;
  /** True once the provider reported the usage of the whole answer. */
  readonly final: boolean;
  /** Output tokens estimated from the text, reasoning and tool-call bytes delivered so far (DeliveredOutput). */
  outputTokensDelivered(): number;
  /** True once the provider said the message is complete. */
  readonly complete: boolean;
  /** The id the provider gave the answer, once seen (what a later call may continue from). */
  responseId?(): string | null;
}

/** The headers of a call on its way upstream, whatever holds them (a plain record in the gateway, `Headers` in process). */
export interface HeaderBag {
  get(name: string): string | undefined;
  set(name: string, value: string): void;
}

/** A wire format: enough to budget a call whatever carries it (the gateway, a wrapped SDK, the AI SDK middleware). */
export interface Dialect<Body = unknown> {
  readonly name: string;
  /** The GenAI system name for telemetry (`anthropic`, `openai`, `gcp.gemini`). */
  readonly system: string;
  /**
   * Reads what budgeting needs from a request body (and the path it was sent to, where the model or streaming may
   * be named); throws `invalid_request` on a body the provider would refuse or Envelope could not rewrite.
   */
  parse(body: unknown, path: string): CallShape;
  /**
   * Reads a request from its bytes without parsing them whole; throws ScanFallback (json-scan.ts) for a body it does
   * not read by ranges, which is then parsed and read by `parse`. Absent: every body is parsed.
   */
  scan?(raw: Buffer, path: string): ScannedCall;
  /** A copy of the body with the plan applied and Envelope's own fields removed; the original is not changed. */
  prepare(body: Body, plan: CallPlan): Body;
  /** The body as forwarded when no task applies: Envelope's own fields removed. */
  strip(body: Body): Body;
  usageFromResponse(json: unknown): Usage | null;
  errorBody(code: ErrorCode, message: string): unknown;
  /** The id the provider gave a JSON answer, when later calls can continue from it. */
  responseId?(json: unknown): string | null;
}

/** A provider's upstream: the base URL setting `--NAME-url` and what `--upstream X=NAME:URL` names. */
export interface UpstreamFamily {
  readonly name: string;
  readonly defaultUrl: string;
  /** The start of a served path that the base URL already holds (OpenAI's base URL ends in /v1). */
  readonly basePath: string;
  /** For `--help`: how a base URL of this family is written. */
  readonly describe: string;
}

export interface ProviderRoute {
  readonly method: 'POST' | 'GET';
  /** The path the gateway serves, or a pattern over it (Gemini puts the model in the path). */
  readonly path: string | RegExp;
  /** How the route reads in errors, metrics and docs (a pattern's path with `{model}` in it). */
  readonly label: string;
  /** `call`: a budgeted model call; `forward`: passed on as it is (token counts, model listings). */
  readonly kind: 'call' | 'forward';
  /** Keep the query string upstream (Gemini's `?alt=sse` and `?key=`); otherwise it is dropped. */
  readonly keepQuery?: boolean;
}

/** What an exact count of a call's input needs: the body and a way to ask the provider with the caller's own headers. */
export interface CountRequest {
  body: Record<string, unknown>;
  path: string;
  /** POSTs a JSON body to a path of this provider's upstream (with the caller's headers); resolves with its JSON. */
  post(path: string, body: unknown): Promise<unknown>;
}

export interface Provider<Body = Record<string, unknown>> extends Dialect<Body> {
  readonly family: UpstreamFamily;
  readonly routes: readonly ProviderRoute[];
  /** Reads an SSE answer's usage as its events pass. */
  streamMeter(): StreamMeter;
  /** True when the caller's headers (or path) are this provider's own: picks the provider of a shared path (/v1/models) and the shape of a 404. */
  ownsCaller?(headers: Readonly<Record<string, string | string[] | undefined>>, path?: string): boolean;
  /** The AI SDK's provider id for this provider's models, when it is not the family's name (`google` for Gemini). */
  readonly aiSdkProvider?: string;
  /** An error as one SSE event, for a stream that broke after its headers went out. */
  streamError(code: ErrorCode, message: string): string;
  /** Native task budgets (Anthropic's `output_config.task_budget`): the beta header a call that carries one needs. */
  readonly nativeBudget?: { readonly betaHeader: string };
  /** Headers the call needs upstream once planned (the beta header of a native budget, `accept` for a stream). */
  callHeaders?(headers: HeaderBag, shape: CallShape, plan: CallPlan): void;
  /**
   * The exact input tokens of a call, for the admission step near a budget's edge (issue 12): the provider's count
   * endpoint or a local tokenizer. Absent: the estimate stands.
   */
  countInputTokens?(req: CountRequest): Promise<number>;
}

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A token count as a provider reports it: a positive finite number, rounded up (a fraction is never charged as less); else 0. */
export const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.ceil(v) : 0);

/**
 * Reads a field that multiplies the output (OpenAI `n`, Gemini `candidateCount`): absent or null is one answer; a whole
 * number from 1 to `max` is that many; anything else cannot be held for (CallShape.multiplierUnknown names it).
 */
export function multiplier(body: Record<string, unknown>, field: string, max: number): { choices: number; multiplierUnknown: string | null } {
  const v = body[field];
  if (v === undefined || v === null) return { choices: 1, multiplierUnknown: null };
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max) return { choices: v, multiplierUnknown: null };
  return { choices: 1, multiplierUnknown: `${field} ${shownValue(v)} is not a whole number from 1 to ${max}` };
}

/** A client's value as an error message may quote it: short, and never by walking a structure (it may be hostile). */
export function shownValue(v: unknown): string {
  if (typeof v === 'object' && v !== null) return Array.isArray(v) ? 'a list' : 'an object';
  const text = typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : String(v);
  return text.length > 42 ? `${text.slice(0, 40)}…` : text;
}

/**
 * Counts the output a stream delivered, for a reply cut short (SPEC §2: charged an estimate, never zero). Tokenizers
 * take three bytes or more a token, and a delta holds at least one: the larger of the two overestimates, a little.
 */
export class DeliveredOutput {
  private bytes = 0;
  private deltas = 0;

  /** One delta of output text, reasoning or tool-call arguments (anything else is ignored). */
  add(text: unknown): void {
    if (typeof text !== 'string' || text.length === 0) return;
    this.bytes += Buffer.byteLength(text);
    this.deltas++;
  }

  tokens(): number {
    return Math.max(this.deltas, Math.ceil(this.bytes / 3));
  }
}

/**
 * Patterns for stream events as a provider writes them (issue 16: the relay runs on every token, and parsing each
 * delta was most of its cost). `plainEvent` takes the data's JSON as a template, literal where it is literal, with
 * PLAIN pieces where values vary; data that matches the whole pattern is that JSON, and its TEXT group is the
 * delta's text exactly as JSON.parse would give it (a string with no escapes and no control bytes is its own value).
 * Data written any other way (an escape, another field, another order) does not match, and is parsed as before.
 */
export const PLAIN = {
  /** Any string that needs no unescaping. */
  STRING: String.raw`"[^"\\\u0000-\u001f]*"`,
  /** A whole number as JSON writes it. */
  INT: String.raw`(?:0|[1-9]\d*)`,
  /** The delta's text (group 1), a string that needs no unescaping. */
  TEXT: String.raw`"([^"\\\u0000-\u001f]*)"`,
};

const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const joined = (strings: TemplateStringsArray, pieces: string[]): string => strings.reduce((out, s, i) => out + literal(s) + (pieces[i] ?? ''), '');

/** The whole data matched against the template (see PLAIN). */
export const plainEvent = (strings: TemplateStringsArray, ...pieces: string[]): RegExp => new RegExp(`^${joined(strings, pieces)}$`);

/** A part of a plainEvent template that may be absent. */
export const optionalPart = (strings: TemplateStringsArray, ...pieces: string[]): string => `(?:${joined(strings, pieces)})?`;

/**
 * What a relayed stream is charged: the usage the provider reported for the whole answer, or, when the stream ended
 * without it (cut, or a server that leaves usage out), what it delivered, for the ledger to estimate from.
 */
export function streamCharge(meter: StreamMeter): { usage: Usage | null; delivered: Delivered | null } {
  if (meter.final) return { usage: meter.usage(), delivered: null };
  return { usage: null, delivered: { reason: meter.complete ? 'no_usage' : 'stream_cut', reported: meter.usage(), outputTokens: meter.outputTokensDelivered() } };
}

/**
 * What a JSON answer is charged: the usage it reports; for valid JSON without usage (a server that leaves it out),
 * what it delivered, estimated from its size (bytes ÷ 3 over the whole body overestimates its output). Null when the
 * body is no JSON at all: nothing a client could use was delivered.
 */
export function jsonCharge(dialect: Dialect, text: string): { usage: Usage | null; delivered: Delivered | null; responseId: string | null } | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const usage = dialect.usageFromResponse(json);
  const responseId = dialect.responseId?.(json) ?? null;
  if (usage) return { usage, delivered: null, responseId };
  return { usage: null, delivered: { reason: 'no_usage', reported: null, outputTokens: Math.ceil(Buffer.byteLength(text) / 3) }, responseId };
}

/** Feeds one stream event to a meter; a malformed event is skipped (its bytes still reach the client untouched). */
export function pushEvent(meter: StreamMeter, event: string | undefined, data: string): void {
  try {
    meter.push(event, data);
  } catch {
    // ignored: the usage it carried is simply not seen
  }
}

/** A conversation's id from what identifies it (its system prompt and first message): 16 hex digits of SHA-256. */
export function conversationOf(dialect: string, system: unknown, first: unknown): string {
  return createHash('sha256').update(JSON.stringify([dialect, system ?? null, first ?? null])).digest('hex').slice(0, 16);
}

const CONVERSATIONS_KEPT = 4_096;
/** Conversation ids of scanned bodies by the sha256 of the bytes they were made from, oldest first. */
const scannedConversations = new Map<string, string>();

/**
 * conversationOf for a scanned body, from the bytes of the values it is made of (`nodes`, the system prompt and the
 * first message where the dialect finds them): the same id, with `args` parsed and encoded again only for bytes not
 * seen lately. An agent sends the same opening on every call, and for a 76 KB system prompt parsing, encoding and
 * hashing it again was ~0.4 ms a call; hashing its bytes is ~0.05 ms.
 */
export function scannedConversation(dialect: string, raw: Buffer, nodes: Array<JsonNode | undefined>, args: () => [unknown, unknown]): string {
  const h = createHash('sha256').update(dialect);
  // Each value's kind and length before its bytes: no two lists of values give the same stream.
  for (const n of nodes) {
    h.update(n ? `|${n.kind}:${n.end - n.start}|` : '|-|');
    if (n) h.update(raw.subarray(n.start, n.end));
  }
  const key = h.digest('base64');
  let id = scannedConversations.get(key);
  if (id === undefined) {
    id = conversationOf(dialect, ...args());
    if (scannedConversations.size >= CONVERSATIONS_KEPT) scannedConversations.delete(scannedConversations.keys().next().value!);
    scannedConversations.set(key, id);
  }
  return id;
}

/** Text blocks or parts can be appended to this content: a string or a list (the countdown goes there). */
export const appendable = (content: unknown): boolean => typeof content === 'string' || Array.isArray(content);

/** Merges one value into a comma-separated header (`anthropic-beta`), keeping what the client already asked for. */
export function withListValue(existing: string | undefined, value: string): string {
  const values = (existing ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!values.includes(value)) values.push(value);
  return values.join(',');
}
