// The dashboard (SPEC §6): a static page at `/` shipped in the package (no build step on the user's machine),
// the chart library served from node_modules, and two admin routes the page needs besides the admin API:
// the live task feed (SSE) and a task's burn history.
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { idIn, type Ledger, type Scope } from '../ledger/ledger.js';
import type { AdminExtensions } from '../gateway/admin.js';
import { TaskFeed, type FeedDelivery } from './feed.js';
import { burnHistory } from './history.js';

/** The page's files: src/dashboard/static in the package, next to dist/ (package.json "files" ships both). */
export const STATIC_DIR = fileURLToPath(new URL('../../../src/dashboard/static/', import.meta.url));

const require = createRequire(import.meta.url);
const VENDOR: Record<string, string> = {
  'uPlot.esm.js': require.resolve('uplot/dist/uPlot.esm.js'),
  'uPlot.min.css': require.resolve('uplot/dist/uPlot.min.css'),
  // The SSE parser the gateway also uses, for the page's fetch-based live streams.
  'eventsource-parser.js': fileURLToPath(import.meta.resolve('eventsource-parser')),
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

// The page runs only its own scripts; task ids and labels are always written as text, never as markup.
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

async function sendFile(reply: FastifyReply, path: string): Promise<void> {
  const body = await readFile(path);
  await reply.headers({ ...PAGE_HEADERS, 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).send(body);
}

export interface Dashboard {
  /** Admin routes for the page, mounted under /envelope/v1 with the caller's scope. */
  routes: NonNullable<AdminExtensions['routes']>;
  /** Mounts the page at `/` and its files under `/dashboard/`. */
  register(app: FastifyInstance): void;
}

/**
 * The page and its admin routes: `GET /task-updates` (SSE: a `snapshot` of the caller's tasks, then `tasks` as
 * they change) and `GET /tasks/:id/history` (the burn-down series).
 */
export function createDashboard(ledger: Ledger, feed = new TaskFeed(ledger)): Dashboard {
  const streams = new Set<ServerResponse>();
  return {
    routes: [
      { path: '/task-updates', handler: async (scope, _req, reply) => streamTasks(feed, streams, scope, reply) },
      {
        path: '/tasks/:id/history',
        handler: async (scope, req) => {
          const { id } = req.params as { id: string };
          const row = await ledger.task(id, scope);
          const events = await ledger.events({ taskId: row.id, limit: 10_000 }, scope);
          return { task: ledger.view(row), thresholds: row.thresholds, points: burnHistory(row, events, feed.samplesOf(idIn(scope, row.id))) };
        },
      },
    ],
    register(app) {
      registerPage(app);
      // Open live streams would keep the server from closing.
      app.addHook('preClose', async () => {
        for (const res of streams) res.end();
      });
    },
  };
}

function registerPage(app: FastifyInstance): void {
  const files = new Set(readdirSync(STATIC_DIR).filter((f) => TYPES[extname(f)] !== undefined));
  app.get('/', (_req, reply) => sendFile(reply, join(STATIC_DIR, 'index.html')));
  app.get<{ Params: { file: string } }>('/dashboard/:file', async (req, reply) => {
    if (!files.has(req.params.file)) return reply.code(404).send({ error: { code: 'not_found', message: 'no such dashboard file' } });
    return sendFile(reply, join(STATIC_DIR, req.params.file));
  });
  app.get<{ Params: { file: string } }>('/dashboard/vendor/:file', async (req, reply) => {
    const path = VENDOR[req.params.file];
    if (!path) return reply.code(404).send({ error: { code: 'not_found', message: 'no such vendor file' } });
    return sendFile(reply, path);
  });
}

function streamTasks(feed: TaskFeed, streams: Set<ServerResponse>, scope: Scope, reply: FastifyReply): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write(': envelope task updates\n\n');
  const send = (d: FeedDelivery): void => {
    if (res.writableEnded || res.destroyed) return;
    const data = d.kind === 'snapshot' ? { scope: { tenant: scope.tenant ?? null }, tasks: d.tasks } : { tasks: d.tasks };
    res.write(`event: ${d.kind}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const unwatch = feed.watch(scope, send);
  const heartbeat = setInterval(() => res.writableEnded || res.write(': keep-alive\n\n'), 15_000);
  streams.add(res);
  res.on('close', () => {
    streams.delete(res);
    unwatch();
    clearInterval(heartbeat);
  });
}
