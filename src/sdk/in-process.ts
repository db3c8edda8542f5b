// What the two in-process carriers of the pipeline share (task.wrap()'s fetch and the AI SDK middleware): the answer
// handed to the caller as soon as it comes (a stream before it is read), while the pipeline goes on to settle it; a
// caller who aborts gets an AbortError at once while the provider call goes on (up to the drain timeout) and is charged.
import { DEFAULT_DRAIN_TIMEOUT_MS, metered, ProviderCall, unlessAborted } from './metered-stream.js';
import type { BudgetedCall } from '../pipeline/run-call.js';

export class InProcessAnswer<R> {
  /** The provider side of the call, on its own signal. */
  readonly upstream: ProviderCall;
  private resolve!: (r: R) => void;
  private reject!: (e: unknown) => void;
  private readonly answer = new Promise<R>((ok, fail) => ((this.resolve = ok), (this.reject = fail)));
  private closeOver!: () => void;
  /** Resolves when the pipeline is done with the call (settled, released or failed). */
  private readonly over = new Promise<void>((r) => (this.closeOver = r));
  private abandon: (() => Promise<unknown>) | null = null;

  constructor(
    private readonly caller: AbortSignal | null | undefined,
    drainTimeoutMs = DEFAULT_DRAIN_TIMEOUT_MS,
  ) {
    this.upstream = new ProviderCall(drainTimeoutMs);
  }

  respond(r: R): void {
    this.resolve(r);
  }

  fail(e: unknown): void {
    this.reject(e);
  }

  /** The caller's view: the answer, or the abort reason as soon as the caller aborts (the call goes on, and is charged). */
  result(call: BudgetedCall<unknown>): Promise<R> {
    const left = (): void => {
      call.span?.callerLeft();
      this.upstream.callerLeft();
    };
    // After the answer arrives, the caller's abort (a `break` out of an SDK stream aborts it too) abandons the stream.
    this.caller?.addEventListener(
      'abort',
      () => {
        if (!this.abandon) return;
        left();
        void this.abandon();
      },
      { once: true },
    );
    return unlessAborted(this.answer, this.caller, left);
  }

  /**
   * The provider's stream on its way to the caller, shown to `see` chunk by chunk; `ended` resolves once it was read
   * to its end (or drained after the caller left). Its last read waits for the settlement, so a caller that has read
   * the whole stream finds the ledger settled.
   */
  meter<T>(source: ReadableStream<T>, see: (chunk: T) => void): { stream: ReadableStream<T>; ended: Promise<void> } {
    let done!: () => void;
    const ended = new Promise<void>((r) => (done = r));
    const m = metered(source, see, () => {
      done();
      return this.over;
    });
    this.abandon = m.abandon;
    // A caller that gave up before the answer came will never read it: drain it now.
    if (this.caller?.aborted) void m.abandon();
    return { stream: m.stream, ended };
  }

  /** The pipeline is done with the call. */
  end(): void {
    this.upstream.done();
    this.closeOver();
  }
}
