// Health checks for load balancers and orchestrators, open to any caller (they reveal nothing):
// `GET /healthz` — the process is up; `GET /readyz` — and its store answers, so calls can be budgeted.
import type { FastifyInstance } from 'fastify';
import type { Ledger } from '../ledger/ledger.js';

/** How long /readyz waits for the store before answering 503 (a load balancer's check times out soon after). */
export const READY_TIMEOUT_MS = 2_000;

export function registerHealth(app: FastifyInstance, ledger: Ledger): void {
  app.get('/healthz', async (_req, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    const problem = await storeProblem(ledger);
    if (problem === null) return reply.send({ status: 'ready', store: ledger.store.kind });
    return reply.code(503).send({ status: 'unavailable', store: ledger.store.kind, reason: problem });
  });
}

/** null when a read from the store comes back in time, else why not. */
async function storeProblem(ledger: Ledger): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`the store did not answer within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
  });
  // Any read goes through the store's connection; an id no task can have keeps it to one index lookup.
  const read = ledger.store.getTask('\u0000readyz').then(
    () => null,
    (e: unknown) => `the store failed: ${e instanceof Error ? e.message : String(e)}`,
  );
  try {
    return await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
