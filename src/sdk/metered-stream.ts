// A provider's answer on its way to the caller, and what happens when the caller gives up on it: the provider
// bills what it generates, so the rest is still read (up to a drain timeout) and then the call is settled — in
// process, what the gateway does when its client disconnects. task.wrap() meters SSE bytes with it,
// task.middleware() the AI SDK's stream parts.
import { DEFAULT_GATEWAY_OPTIONS } from '../gateway/options.js';

export const DEFAULT_DRAIN_TIMEOUT_MS = DEFAULT_GATEWAY_OPTIONS.drainTimeoutMs;

export const abortError = (): DOMException => new DOMException('This operation was aborted', 'AbortError');

export interface Metered<T> {
  /** The same chunks, unbuffered: one read of the source per read of this stream. */
  stream: ReadableStream<T>;
  /** The caller left: fail its reads with an AbortError, read the rest of the source unseen by it, then settle. */
  abandon(): Promise<unknown>;
}

/** Passes `source` through, shows every chunk to `see` once and in order, and calls `settle` once when it ends. */
export function metered<T>(source: ReadableStream<T>, see: (chunk: T) => void, settle: () => Promise<unknown>): Metered<T> {
  const reader = source.getReader();
  let settled: Promise<unknown> | null = null;
  const finish = (): Promise<unknown> => (settled ??= settle());
  let out: ReadableStreamDefaultController<T> | null = null;
  // The read a pull has under way: a drain waits for it, so no chunk is missed.
  let reading: Promise<unknown> = Promise.resolve();
  let drained: Promise<unknown> | null = null;
  const abandon = (): Promise<unknown> =>
    (drained ??= (async () => {
      try {
        out?.error(abortError());
      } catch {
        // already closed or errored
      }
      await reading.catch(() => undefined);
      try {
        for (let r = await reader.read(); !r.done; r = await reader.read()) see(r.value);
      } catch {
        // the provider's stream broke (or the drain timed out): charge what was seen
      }
      await finish();
    })());
  const stream = new ReadableStream<T>({
    start(controller) {
      out = controller;
    },
    async pull(controller) {
      if (drained) return;
      const step = reader.read();
      reading = step;
      let result: ReadableStreamReadResult<T>;
      try {
        result = await step;
      } catch (e) {
        await finish();
        controller.error(e);
        return;
      }
      if (result.done) {
        await finish();
        if (!drained) controller.close();
        return;
      }
      see(result.value);
      if (!drained) controller.enqueue(result.value);
    },
    async cancel() {
      await abandon();
    },
  });
  return { stream, abandon };
}

/**
 * The provider side of one call, on its own signal, so it outlives a caller who gives up: `callerLeft()` starts
 * the drain timeout, after which the provider call is aborted; `done()` when the call is settled.
 */
export class ProviderCall {
  private readonly upstream = new AbortController();
  private drainTimer: NodeJS.Timeout | undefined;
  private readonly drainTimeoutMs: number;

  constructor(drainTimeoutMs = DEFAULT_DRAIN_TIMEOUT_MS) {
    this.drainTimeoutMs = drainTimeoutMs;
  }

  get signal(): AbortSignal {
    return this.upstream.signal;
  }

  callerLeft(): void {
    if (this.drainTimer) return;
    this.drainTimer = setTimeout(() => this.upstream.abort(), this.drainTimeoutMs);
    this.drainTimer.unref();
  }

  done(): void {
    clearTimeout(this.drainTimer);
  }
}

/**
 * Resolves as `work` does, or rejects with the abort reason as soon as the caller's signal aborts; `work` then
 * goes on without the caller (and is charged), and `onAbort` runs once.
 */
export function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | null | undefined, onAbort: () => void): Promise<T> {
  work.catch(() => undefined);
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const aborted = (): void => {
      onAbort();
      reject(signal.reason ?? abortError());
    };
    if (signal.aborted) return aborted();
    signal.addEventListener('abort', aborted, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', aborted);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', aborted);
        reject(e);
      },
    );
  });
}
