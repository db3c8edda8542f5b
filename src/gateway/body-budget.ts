// The memory request bodies may take at once. Each body is counted from its first byte (or its declared length)
// until its call is done, since the call keeps the body, parsed and rewritten, until then. Past the total, a new body
// is refused with 503 `overloaded`, which the SDKs retry after a pause, instead of memory growing with every
// concurrent upload (8 bodies of 30 MB took the gateway to 1.1 GB). The rest of a refused body is read and dropped
// (it is under the per-request limit), so the client gets its answer and keeps its connection.
import type { FastifyInstance } from 'fastify';
import { EnvelopeError } from '../budget/errors.js';

export class BodyBudget {
  private heldBytes = 0;

  constructor(readonly limitBytes: number) {}

  get bytes(): number {
    return this.heldBytes;
  }

  /** One request's share: grows as its body arrives, given back whole by `end()`. */
  lease(): BodyLease {
    return new BodyLease(this);
  }

  /** @internal Takes `n` more bytes; false, taking nothing, when they do not fit. */
  take(n: number): boolean {
    if (this.heldBytes + n > this.limitBytes) return false;
    this.heldBytes += n;
    return true;
  }

  /** @internal */
  give(n: number): void {
    this.heldBytes -= n;
    if (this.heldBytes < 0) throw new Error(`body budget below zero (${this.heldBytes}): a lease was ended twice`);
  }
}

export class BodyLease {
  private held = 0;
  private ended = false;

  constructor(private readonly budget: BodyBudget) {}

  /** Makes the lease cover `bytes` in all; throws `overloaded` when the budget has no room for them. */
  cover(bytes: number): void {
    const more = bytes - this.held;
    if (more <= 0 || this.ended) return;
    if (!this.budget.take(more)) {
      throw new EnvelopeError('overloaded', `the gateway holds ${mib(this.budget.bytes)} of request bodies, its limit of ${mib(this.budget.limitBytes)}; try again shortly`);
    }
    this.held = bytes;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.budget.give(this.held);
    this.held = 0;
  }
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Fastify's routes (the admin API) read a whole body before any handler knows who sent it: those bodies count too. */
export function leaseFastifyBodies(app: FastifyInstance, bodies: BodyBudget): void {
  app.addHook('onRequest', async (req, reply) => {
    const declared = req.headers['content-length'];
    if (declared === undefined && req.headers['transfer-encoding'] === undefined) return;
    // A chunked body may grow to Fastify's limit: that much is set aside.
    const bytes = Math.min(declared === undefined ? Number.POSITIVE_INFINITY : Number(declared) || 0, app.initialConfig.bodyLimit ?? 1024 * 1024);
    const lease = bodies.lease();
    reply.raw.once('close', () => lease.end());
    try {
      lease.cover(bytes);
    } catch (e) {
      return reply.code(503).header('retry-after', '1').send({ error: { code: 'overloaded', message: (e as Error).message } });
    }
  });
}
