// Webhooks: every stored event POSTed as JSON to each configured URL, in seq order, signed, retried with backoff.
//
// What a receiver gets (one event per request):
//   body                    the StoredEvent as JSON: {"type","taskId","tenant","atMs","data","seq"}
//   content-type            application/json
//   x-envelope-event        the event type, e.g. threshold_crossed
//   x-envelope-event-id     the event's seq: store-wide, increasing; dedupe on it
//   x-envelope-attempt      1 on the first try, 2 on the first retry, …
//   x-envelope-timestamp    Unix seconds when this attempt was signed
//   x-envelope-signature    sha256=<hex HMAC-SHA256 of `${timestamp}.${raw body}` with the target's secret>
// Signing the timestamp with the body lets a receiver refuse replays: check the signature with verifySignature(),
// which also refuses timestamps more than 5 minutes away from its clock.
//
// Delivery: a 2xx answer delivers. A network error, a timeout, 408, 429 or 5xx is retried after 0.5 s, 1 s, 2 s …
// (capped at 30 s; a Retry-After header is honoured within the cap) up to `maxAttempts` tries in all; any other
// answer is final. An event that cannot be delivered is reported to `onDelivery` and skipped, so one dead receiver
// cannot hold the others back forever. Each target keeps a cursor (the seq of its last event) saved after each
// event: a restart resumes after it, so in normal operation no event is lost or sent twice (a crash between a
// delivery and its cursor save re-sends that one event: receivers should dedupe on x-envelope-event-id).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { EnvelopeError } from '../budget/errors.js';
import type { EventType, StoredEvent } from '../budget/types.js';
import { MemoryCursorStore, type CursorStore } from './webhook-cursors.js';

export const SIGNATURE_HEADER = 'x-envelope-signature';
export const TIMESTAMP_HEADER = 'x-envelope-timestamp';
export const EVENT_HEADER = 'x-envelope-event';
export const EVENT_ID_HEADER = 'x-envelope-event-id';
export const ATTEMPT_HEADER = 'x-envelope-attempt';

/** Replays older (or clocks further apart) than this are refused by verifySignature. */
export const SIGNATURE_TOLERANCE_SEC = 300;

export interface WebhookTarget {
  url: string;
  /** The shared HMAC key; never logged. */
  secret: string;
  /** Names the target's cursor; defaults to the URL. */
  id?: string;
  /** Only these event types (default: all). */
  types?: EventType[];
  /** Only this tenant's events (default: all). */
  tenant?: string;
}

/** Where events come from: a Ledger satisfies it (`ledger.events`, `ledger.onChange`). */
export interface EventSource {
  events(q: { afterSeq: number; limit: number }): Promise<StoredEvent[]>;
  onChange?(listener: () => void): () => void;
}

export interface DeliveryReport {
  targetId: string;
  seq: number;
  type: EventType;
  delivered: boolean;
  attempts: number;
  /** The last HTTP status, or null when the last attempt got no answer. */
  status: number | null;
  /** Why the last attempt failed, without the secret or body. */
  error?: string;
}

export interface WebhookOptions {
  targets: WebhookTarget[];
  source: EventSource;
  cursors?: CursorStore;
  /** Where a target without a saved cursor starts: after the newest event (`now`), or after this seq (0: all). */
  startAfter?: 'now' | number;
  maxAttempts?: number;
  backoffMs?: number;
  backoffMaxMs?: number;
  /** Per attempt: connect, headers and body. */
  timeoutMs?: number;
  /** Polls the source this often for events written by other processes. */
  pollMs?: number;
  /** After a change in this process, wait this long so a burst of changes costs one read. */
  debounceMs?: number;
  onDelivery?: (report: DeliveryReport) => void;
  /** A pass that failed (e.g. the store was unreachable); the next poll tries again from the same cursor. */
  onError?: (error: unknown) => void;
}

const PAGE = 500;

export class WebhookDispatcher {
  private readonly options: Required<Omit<WebhookOptions, 'onDelivery' | 'onError'>> &
    Pick<WebhookOptions, 'onDelivery' | 'onError'>;
  private readonly loops: TargetLoop[];
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(options: WebhookOptions) {
    // Options given as undefined take the default too.
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as WebhookOptions;
    this.options = {
      cursors: new MemoryCursorStore(),
      startAfter: 'now',
      maxAttempts: 6,
      backoffMs: 500,
      backoffMaxMs: 30_000,
      timeoutMs: 10_000,
      pollMs: 1_000,
      debounceMs: 20,
      ...given,
    };
    const ids = new Set<string>();
    this.loops = options.targets.map((t) => {
      checkTarget(t);
      const id = t.id ?? t.url;
      if (ids.has(id)) throw new EnvelopeError('invalid_request', `two webhook targets share the id ${id}`);
      ids.add(id);
      return new TargetLoop(id, t, this.options, this.abort.signal);
    });
  }

  /** Starts polling and listening for changes; the first pass runs at once. */
  start(): this {
    this.timer = setInterval(() => this.background(), this.options.pollMs);
    this.timer.unref();
    this.unsubscribe = this.options.source.onChange?.(() => {
      if (this.debounce) return;
      this.debounce = setTimeout(() => {
        this.debounce = undefined;
        this.background();
      }, this.options.debounceMs);
      this.debounce.unref();
    });
    this.background();
    return this;
  }

  /** Delivers everything the source holds now, to every target; resolves when all have caught up. */
  async drain(): Promise<void> {
    await this.kick();
  }

  private kick(): Promise<void> {
    return Promise.all(this.loops.map((l) => l.kick())).then(() => undefined);
  }

  private background(): void {
    this.kick().catch((e: unknown) => this.options.onError?.(e));
  }

  /** Stops timers and any retry wait; a delivery cut off here is sent again on the next start. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    this.unsubscribe?.();
    this.abort.abort();
    await Promise.all(this.loops.map((l) => l.idle()));
  }

  /** Each target's cursor: the seq of the last event it was sent (or skipped). */
  cursors(): Record<string, number | undefined> {
    return Object.fromEntries(this.loops.map((l) => [l.id, l.cursor]));
  }
}

class TargetLoop {
  cursor: number | undefined;
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    readonly id: string,
    private readonly target: WebhookTarget,
    private readonly o: WebhookDispatcher['options'],
    private readonly signal: AbortSignal,
  ) {}

  /** Runs a pass, or asks the running one to look again; resolves when no pass is left to run. */
  kick(): Promise<void> {
    if (this.signal.aborted) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.pump().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  private async pump(): Promise<void> {
    this.cursor ??= await this.startCursor();
    do {
      this.again = false;
      for (;;) {
        if (this.signal.aborted) return;
        const events = await this.o.source.events({ afterSeq: this.cursor, limit: PAGE });
        let unsaved = false;
        for (const e of events) {
          if (this.signal.aborted) break;
          if (this.wants(e)) {
            if ((await this.deliver(e)) === 'aborted') break;
            this.cursor = e.seq;
            await this.o.cursors.save(this.id, e.seq);
            unsaved = false;
          } else {
            // Events this target does not want move the cursor too; saved once per page.
            this.cursor = e.seq;
            unsaved = true;
          }
        }
        if (unsaved) await this.o.cursors.save(this.id, this.cursor);
        if (events.length < PAGE) break;
      }
    } while (this.again);
  }

  private async startCursor(): Promise<number> {
    const saved = await this.o.cursors.load(this.id);
    if (saved !== undefined) return saved;
    if (this.o.startAfter !== 'now') return this.o.startAfter;
    let seq = 0;
    for (;;) {
      const page = await this.o.source.events({ afterSeq: seq, limit: 10_000 });
      if (page.length === 0) return seq;
      seq = page.at(-1)!.seq;
    }
  }

  private wants(e: StoredEvent): boolean {
    return (
      (this.target.types === undefined || this.target.types.includes(e.type)) &&
      (this.target.tenant === undefined || this.target.tenant === e.tenant)
    );
  }

  private async deliver(e: StoredEvent): Promise<boolean | 'aborted'> {
    const body = JSON.stringify(e);
    let status: number | null = null;
    let error: string | undefined;
    let attempt = 0;
    while (attempt < this.o.maxAttempts) {
      attempt++;
      let retryAfterMs: number | null = null;
      try {
        const timestamp = Math.floor(Date.now() / 1000);
        const res = await request(this.target.url, {
          method: 'POST',
          body,
          headers: {
            'content-type': 'application/json',
            'user-agent': 'envelope-webhooks/0.1',
            [EVENT_HEADER]: e.type,
            [EVENT_ID_HEADER]: String(e.seq),
            [ATTEMPT_HEADER]: String(attempt),
            [TIMESTAMP_HEADER]: String(timestamp),
            [SIGNATURE_HEADER]: sign(this.target.secret, timestamp, body),
          },
          signal: this.signal,
          headersTimeout: this.o.timeoutMs,
          bodyTimeout: this.o.timeoutMs,
        });
        await res.body.dump();
        status = res.statusCode;
        error = undefined;
        if (status >= 200 && status < 300) return this.report(e, true, attempt, status);
        if (!retryable(status)) {
          return this.report(e, false, attempt, status, `HTTP ${status} (not retried)`);
        }
        error = `HTTP ${status}`;
        retryAfterMs = retryAfter(res.headers['retry-after']);
      } catch (err) {
        if (this.signal.aborted) return 'aborted';
        status = null;
        error = (err as Error).message;
      }
      if (attempt >= this.o.maxAttempts) break;
      const backoff = Math.min(this.o.backoffMaxMs, this.o.backoffMs * 2 ** (attempt - 1));
      try {
        await sleep(Math.min(this.o.backoffMaxMs, Math.max(backoff, retryAfterMs ?? 0)), undefined, { signal: this.signal });
      } catch {
        return 'aborted';
      }
    }
    return this.report(e, false, attempt, status, `${error ?? 'failed'} after ${attempt} attempts; skipped`);
  }

  private report(e: StoredEvent, delivered: boolean, attempts: number, status: number | null, error?: string): boolean {
    this.o.onDelivery?.({ targetId: this.id, seq: e.seq, type: e.type, delivered, attempts, status, ...(error ? { error } : {}) });
    return delivered;
  }
}

const retryable = (status: number): boolean => status === 408 || status === 429 || status >= 500;

function retryAfter(h: string | string[] | undefined): number | null {
  const v = Array.isArray(h) ? h[0] : h;
  if (v === undefined) return null;
  const seconds = Number(v);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

function checkTarget(t: WebhookTarget): void {
  let url: URL;
  try {
    url = new URL(t.url);
  } catch {
    throw new EnvelopeError('invalid_request', `webhook URL "${t.url}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new EnvelopeError('invalid_request', `webhook URL must be http or https, got ${url.protocol}`);
  }
  if (typeof t.secret !== 'string' || t.secret.length < 16) {
    throw new EnvelopeError('invalid_request', `webhook ${url.host}: the secret must be at least 16 characters`);
  }
}

/** `sha256=<hex>` over `${timestamp}.${body}`. */
export function sign(secret: string, timestampSec: number, body: string | Buffer): string {
  const mac = createHmac('sha256', secret).update(`${timestampSec}.`).update(body).digest('hex');
  return `sha256=${mac}`;
}

export interface VerifyInput {
  secret: string;
  /** The raw request body, exactly as received (parse it only after verifying). */
  body: string | Buffer;
  signature: string | string[] | undefined;
  timestamp: string | string[] | undefined;
  toleranceSec?: number;
  nowMs?: number;
}

/** True when the signature matches the body and timestamp, and the timestamp is within the tolerance. */
export function verifySignature(v: VerifyInput): boolean {
  const signature = Array.isArray(v.signature) ? v.signature[0] : v.signature;
  const timestamp = Array.isArray(v.timestamp) ? v.timestamp[0] : v.timestamp;
  if (signature === undefined || timestamp === undefined || !/^\d{1,12}$/.test(timestamp)) return false;
  const ts = Number(timestamp);
  const nowSec = (v.nowMs ?? Date.now()) / 1000;
  if (Math.abs(nowSec - ts) > (v.toleranceSec ?? SIGNATURE_TOLERANCE_SEC)) return false;
  const expected = Buffer.from(sign(v.secret, ts, v.body));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
