// One log line per model call at --log-level info: route, status, task, model, tokens, cost and outcome.
// Never a header (API keys live there) and never a query string (Gemini's `?key=` does): the path is logged alone.
// What the call was (model, usage) is learnt from the proxy's `observe` hook, which runs inside the request's
// async context: an AsyncLocalStorage carries the line's record from the route to the hook and back.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Usage } from '../budget/types.js';
import { costMicros, priceFor, usageTokens, type PriceTable } from '../metering/prices.js';
import { redactQueries } from './http-log.js';
import type { ObservedCall } from './proxy.js';

export type CallOutcome = 'ok' | 'refused' | 'rate_limited' | 'rejected' | 'upstream_error' | 'client_left';

interface CallRecord {
  observed?: ObservedCall;
}

export interface CallLog {
  /** Runs `serve` for one model call and logs its line when the response closes. */
  around(req: IncomingMessage, res: ServerResponse, serve: () => Promise<void>): Promise<void>;
  /** The proxy's observe hook, chained before `next`. */
  observe(next?: (call: ObservedCall) => void): (call: ObservedCall) => void;
}

export function createCallLog(info: (fields: Record<string, unknown>, message: string) => void, prices: PriceTable): CallLog {
  const current = new AsyncLocalStorage<CallRecord>();
  return {
    around(req, res, serve) {
      const startedAt = performance.now();
      const record: CallRecord = {};
      res.once('close', () => info(lineOf(req, res, record.observed, prices, performance.now() - startedAt), 'model call'));
      return current.run(record, serve);
    },
    observe(next) {
      return (call) => {
        const record = current.getStore();
        if (record) record.observed = call;
        next?.(call);
      };
    },
  };
}

function lineOf(req: IncomingMessage, res: ServerResponse, call: ObservedCall | undefined, prices: PriceTable, ms: number): Record<string, unknown> {
  const task = call?.taskId ?? req.headers['x-envelope-task'];
  const usage = call?.usage ?? null;
  const model = call?.model ?? null;
  const price = usage ? priceFor(model, prices) : undefined;
  return {
    method: req.method,
    url: redactQueries(req.url ?? ''),
    statusCode: res.statusCode,
    responseTimeMs: Math.round(ms * 10) / 10,
    ...(task ? { task } : {}),
    ...(call?.tenant && call.tenant !== 'default' ? { tenant: call.tenant } : {}),
    model,
    ...tokenFields(usage),
    costUsd: price && usage ? costMicros(usage, price) / 1_000_000 : null,
    outcome: outcomeOf(res, call),
  };
}

function tokenFields(u: Usage | null): Record<string, number | null> {
  if (!u) return { tokens: null };
  return {
    tokens: usageTokens(u),
    inputTokens: u.inputTokens,
    outputTokens: u.outputTokens,
    cacheReadTokens: u.cacheReadTokens,
    cacheWriteTokens: u.cacheWriteTokens,
  };
}

function outcomeOf(res: ServerResponse, call: ObservedCall | undefined): CallOutcome {
  const status = call?.status ?? res.statusCode;
  if (call?.refused) return 'refused';
  if (status === 429) return 'rate_limited';
  if (status >= 500) return 'upstream_error';
  if (status >= 400) return 'rejected';
  return res.writableFinished ? 'ok' : 'client_left';
}
