// What the gateway's log may hold: never a secret. Headers (API keys, tokens) are not logged, and every query
// string is redacted on its way out, whoever wrote the line: a caller may put a key in a URL (Gemini's `?key=`, an
// old dashboard's `?token=`), and Fastify also writes URLs into messages of its own ("Route GET:/x?… not found").
import type { FastifyServerOptions } from 'fastify';
import type { GatewayOptions } from './options.js';

/** A `?` and what follows it up to a space, wherever it is in a text: a URL cannot hold a space, so that is its query. */
const QUERY = /\?\S+/g;

export const redactQueries = (text: string): string => text.replace(QUERY, '?[redacted]');

/**
 * One line of the log (pino writes JSON lines) with every string in it redacted. The strings are redacted decoded,
 * not as JSON text, where an escaped quote or backslash in a URL (Node takes both) could hide the query from a pattern.
 */
export function redactLine(line: string): string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return redactQueries(line.trimEnd()) + '\n';
  }
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? redactQueries(v) : v)) + '\n';
}

export function loggerOptions(level: GatewayOptions['logLevel']): FastifyServerOptions['logger'] {
  if (level === 'silent') return false;
  return {
    level,
    redact: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers["x-envelope-key"]'],
    stream: { write: (line: string) => void process.stdout.write(redactLine(line)) },
  };
}
