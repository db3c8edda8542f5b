// Reading a whole request body under a limit (and as JSON), and writing a whole response, on plain node:http. The
// model routes run here rather than through Fastify: every microsecond of a proxied call is added latency (see README,
// design).
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { EnvelopeError } from '../budget/errors.js';
import { checkDepth } from '../providers/body-depth.js';
import type { BodyLease } from './body-budget.js';

/**
 * The request body as bytes; `request_too_large` as soon as it is known to be over `limitBytes`, and `overloaded`
 * as soon as `lease` (the gateway's memory for bodies in flight) cannot cover it.
 */
export function readBody(req: IncomingMessage, limitBytes: number, lease?: BodyLease): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): EnvelopeError =>
      new EnvelopeError('request_too_large', `the request body is over this gateway's limit of ${limitBytes.toLocaleString('en-US')} bytes`);
    const declared = Number(req.headers['content-length']);
    if (declared > limitBytes) {
      reject(tooLarge());
      return;
    }
    try {
      if (declared > 0) lease?.cover(declared);
    } catch (e) {
      reject(e);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      try {
        if (size > limitBytes) throw tooLarge();
        lease?.cover(size);
      } catch (e) {
        req.off('data', onData);
        reject(e);
        return;
      }
      chunks.push(chunk);
    };
    let ended = false;
    req.on('data', onData);
    req.once('end', () => {
      ended = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    // A client that leaves mid-upload: nothing to answer, nothing to log as a fault. Every request closes, so the
    // error is only made for one that closed before its end (an Error's stack costs on each call otherwise).
    const left = (): void => {
      if (!ended) reject(new EnvelopeError('invalid_request', 'the client left before sending its whole request'));
    };
    req.once('error', left);
    req.once('close', left);
  });
}

/** The request body as JSON; `invalid_request` when it is not, or nests deeper than any model API takes. */
export function parseJson(raw: Buffer): unknown {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new EnvelopeError('invalid_request', 'the request body is not valid JSON');
  }
  checkDepth(body);
  return body;
}

/** Writes a whole response with its length; a refused body's connection is closed rather than read to its end. */
export function sendWhole(res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: string | Buffer, close = false): void {
  if (res.headersSent || res.destroyed) return;
  headers['content-length'] = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  if (close) headers['connection'] = 'close';
  res.writeHead(status, headers);
  res.end(body);
}
