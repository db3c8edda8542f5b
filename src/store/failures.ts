// How a store reports a backend that failed, and waits before trying again: the same words and timers everywhere.
import { EnvelopeError } from '../budget/errors.js';

/** A backend error as the callers see it (store_unavailable, naming the store); an EnvelopeError passes as it is. */
export function unavailable(store: string, e: unknown): unknown {
  if (e instanceof EnvelopeError) return e;
  return new EnvelopeError('store_unavailable', `${store}: ${(e as Error)?.message ?? String(e)}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A random wait of up to `capMs` that doubles with each attempt (jitter: racing writers spread out). */
export const backoffMs = (attempt: number, capMs: number): number => Math.random() * Math.min(capMs, 2 ** attempt);
