// The admin API under /envelope/v1/: tasks, approvals, the live event stream, run records.
// The admin token sees everything; a tenant key sees only its tenant's tasks.
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EnvelopeError, isEnvelopeError } from '../budget/errors.js';
import { countdownFor } from '../budget/countdown.js';
import { invalid, parseHeaderNumber, TOTAL_MAX } from '../budget/spec.js';
import { parseTenantSpec, type TenantView } from '../budget/tenants.js';
import type { Outcome, TaskState } from '../budget/types.js';
import type { Ledger, Scope } from '../ledger/ledger.js';
import { adminScope, DEFAULT_TENANT, refuseCrossSite } from './auth.js';
import type { GatewayOptions } from './options.js';

export const ADMIN_PREFIX = '/envelope/v1';

const listQuery = z.object({
  parent: z.string().optional(),
  roots: z.enum(['true', 'false']).optional(),
  state: z.enum(['active', 'scoping', 'wrapping_up', 'exhausted', 'paused', 'closed']).optional(),
  label: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});
const approveBody = z.object({ add: z.number().positive() }).strict();
const closeBody = z.object({ outcome: z.enum(['completed', 'exhausted', 'paused', 'failed']).optional() }).strict();
const progressBody = z.object({ done: z.number().int().min(0).max(TOTAL_MAX), total: z.number().int().min(0).max(TOTAL_MAX) }).strict();

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value ?? {});
  if (!r.success) throw invalid(r.error);
  return r.data;
}

export interface AdminExtensions {
  /** Extra routes mounted under the prefix by other layers (metrics, calibration), with the caller's scope. */
  routes?: Array<{ path: string; handler: (scope: Scope, req: FastifyRequest, reply: FastifyReply) => Promise<unknown> }>;
}

export function registerAdmin(app: FastifyInstance, ledger: Ledger, options: GatewayOptions, ext: AdminExtensions = {}): void {
  const scopeOf = (req: FastifyRequest): Scope =>
    adminScope(req.headers, (req.query as { token?: string }).token, req.socket.remoteAddress, options);

  // Before the body is read: a page on another site must not change anything, even on loopback.
  app.addHook('onRequest', async (req) => refuseCrossSite(req.method, req.headers));

  app.setErrorHandler((e, req, reply) => {
    if (isEnvelopeError(e)) {
      return reply.code(e.httpStatus).send({ error: { code: e.code, message: e.message } });
    }
    const status = (e as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) req.log.error(e);
    return reply.code(status).send({ error: { code: status >= 500 ? 'internal_error' : 'invalid_request', message: (e as Error).message } });
  });

  app.post(`${ADMIN_PREFIX}/tasks`, async (req, reply) => {
    const scope = scopeOf(req);
    const row = await ledger.createTask(req.body, scope);
    return reply.code(201).send(ledger.view(row));
  });

  app.get(`${ADMIN_PREFIX}/tasks`, async (req) => {
    const scope = scopeOf(req);
    const q = parse(listQuery, req.query);
    const rows = await ledger.listTasks(
      {
        parentId: q.parent ?? (q.roots === 'true' ? null : undefined),
        state: q.state as TaskState | undefined,
        label: q.label,
        limit: q.limit,
        offset: q.offset,
      },
      scope,
    );
    return { tasks: rows.map((r) => ledger.view(r)), limit: q.limit, offset: q.offset };
  });

  app.get<{ Params: { id: string } }>(`${ADMIN_PREFIX}/tasks/:id`, async (req) => {
    const scope = scopeOf(req);
    const row = await ledger.task(req.params.id, scope);
    const [path, children] = await Promise.all([
      ledger.pathOf(row),
      ledger.listTasks({ parentId: row.id, limit: 10_000 }, scope),
    ]);
    return { ...ledger.view(row), countdown: countdownFor(path, ledger.now()).text, children: children.map((c) => ledger.view(c)) };
  });

  app.post<{ Params: { id: string } }>(`${ADMIN_PREFIX}/tasks/:id/approve`, async (req) => {
    const scope = scopeOf(req);
    const { add } = parse(approveBody, req.body);
    return ledger.view(await ledger.approve(req.params.id, add, scope));
  });

  app.post<{ Params: { id: string } }>(`${ADMIN_PREFIX}/tasks/:id/close`, async (req) => {
    const scope = scopeOf(req);
    const { outcome } = parse(closeBody, req.body);
    return ledger.view(await ledger.close(req.params.id, outcome as Outcome | undefined, scope));
  });

  app.post<{ Params: { id: string } }>(`${ADMIN_PREFIX}/tasks/:id/progress`, async (req) => {
    const scope = scopeOf(req);
    const { done, total } = parse(progressBody, req.body);
    return ledger.view(await ledger.progress(req.params.id, done, total, scope));
  });

  registerTenants(app, ledger, options, scopeOf);

  app.get(`${ADMIN_PREFIX}/runs`, async (req, reply) => {
    const scope = scopeOf(req);
    const q = req.query as { label?: string; format?: string };
    const runs = await ledger.runs(q.label ? { label: q.label } : {}, scope);
    if (q.format === 'jsonl') {
      return reply.header('content-type', 'application/x-ndjson').send(runs.map((r) => JSON.stringify(r)).join('\n') + (runs.length ? '\n' : ''));
    }
    return { runs };
  });

  // Open event streams (every open dashboard holds one) would keep the server from closing.
  const streams = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
  });

  app.get(`${ADMIN_PREFIX}/events`, async (req, reply) => {
    const scope = scopeOf(req);
    const q = req.query as { after?: string; task?: string };
    const lastId = req.headers['last-event-id'];
    const after = parseHeaderNumber('Last-Event-ID (or ?after=)', (Array.isArray(lastId) ? lastId[0] : lastId) ?? q.after ?? '0', false);
    streamEvents(ledger, scope, after, q.task, req, reply, streams);
  });

  for (const r of ext.routes ?? []) {
    app.get(`${ADMIN_PREFIX}${r.path}`, async (req, reply) => r.handler(scopeOf(req), req, reply));
  }
}

/**
 * The operator's governance (SPEC §4a): PUT /tenants/:id (the admin token only) sets a tenant's envelope and rate
 * limits, whole; GET /tenants and /tenants/:id show them with this period's spend and the window's use. A tenant key
 * sees only its own tenant, and changes nothing. A tenant exists when a key names it (`default` always does).
 */
function registerTenants(app: FastifyInstance, ledger: Ledger, options: GatewayOptions, scopeOf: (req: FastifyRequest) => Scope): void {
  const known = (): string[] => [...new Set([DEFAULT_TENANT, ...options.tenantKeys.values()])];
  const views = async (scope: Scope): Promise<TenantView[]> => {
    const governed = await ledger.governance.list();
    const names = [...new Set([...known(), ...governed.map((t) => t.tenant)])].sort();
    return names
      .filter((t) => scope.tenant === undefined || t === scope.tenant)
      .map((t) => governed.find((g) => g.tenant === t) ?? ledger.governance.view(t, undefined, undefined));
  };

  app.get(`${ADMIN_PREFIX}/tenants`, async (req) => ({ tenants: await views(scopeOf(req)) }));

  app.get<{ Params: { id: string } }>(`${ADMIN_PREFIX}/tenants/:id`, async (req) => {
    const view = (await views(scopeOf(req))).find((t) => t.tenant === req.params.id);
    if (!view) throw new EnvelopeError('not_found', `tenant ${req.params.id} does not exist`);
    return view;
  });

  app.put<{ Params: { id: string } }>(`${ADMIN_PREFIX}/tenants/:id`, async (req) => {
    const scope = scopeOf(req);
    if (scope.tenant !== undefined) throw new EnvelopeError('forbidden', 'only the admin token sets tenant envelopes and rate limits');
    const spec = parseTenantSpec(req.params.id, req.body);
    if (!known().includes(spec.tenant)) {
      throw new EnvelopeError('invalid_request', `tenant ${spec.tenant} does not exist: no tenant key names it (known: ${known().join(', ')}); add one with --tenant-keys ${spec.tenant}=KEY`);
    }
    return ledger.governance.set(spec);
  });
}

/** Server-Sent Events from the store: resumable by seq, woken by local changes, polling for other replicas. */
function streamEvents(
  ledger: Ledger,
  scope: Scope,
  afterSeq: number,
  taskId: string | undefined,
  req: FastifyRequest,
  reply: FastifyReply,
  streams: Set<ServerResponse>,
): void {
  reply.hijack();
  const res = reply.raw;
  streams.add(res);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write(': envelope events\n\n');
  let cursor = afterSeq;
  let reading = false;
  let again = false;
  let closed = false;
  const pump = async (): Promise<void> => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      do {
        again = false;
        for (;;) {
          const batch = await ledger.events({ afterSeq: cursor, limit: 500, ...(taskId ? { taskId } : {}) }, scope);
          for (const e of batch) {
            if (res.writableEnded) return; // ended by the server closing
            res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
            cursor = e.seq;
          }
          if (batch.length < 500 || closed) break;
        }
      } while (again && !closed);
    } catch (e) {
      req.log.warn({ err: e }, 'event stream read failed');
    } finally {
      reading = false;
    }
  };
  const unsubscribe = ledger.onChange(() => void pump());
  const poll = setInterval(() => void pump(), 500);
  const heartbeat = setInterval(() => res.writableEnded || res.write(': keep-alive\n\n'), 15_000);
  res.on('close', () => {
    closed = true;
    streams.delete(res);
    unsubscribe();
    clearInterval(poll);
    clearInterval(heartbeat);
  });
  void pump();
}
