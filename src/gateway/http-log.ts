// What the gateway's log may hold: never a secret. Headers (API keys, tokens) are not logged, and every query
// string is redacted on its way out, whoever wrote the line: a caller may put a key in a URL (Gemini's `?key=`, an
// old dashboard's `?token=`), and Fastify also writes URLs into messages of its own ("Route GET:/x?… not found").
import type { FastifyServerOptions } from 'fastify';
import type { GatewayOptions } from './options.js';

/** A path followed by `?` and anything up to the next space, quote or backslash (the end of a JSON string). */
const QUERY = /(\/[^\s"\\?]*)\?[^\s"\\]+/g;

export const redactQueries = (text: string): string => text.replace(QUERY, '$1?[redacted]');

export function loggerOptions(level: GatewayOptions['logLevel']): FastifyServerOptions['logger'] {
  if (level === 'silent') return false;
  return {
    level,
    redact: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers["x-envelope-key"]'],
    stream: { write: (line: string) => void process.stdout.write(redactQueries(line)) },
  };
}
