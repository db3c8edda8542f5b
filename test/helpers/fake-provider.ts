// A provider faked in a test, on real HTTP on loopback: a handler answers each request as the test needs (bill n
// choices, die mid-stream, report absurd usage), and every request body it received is kept.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: any;
  /** The body's bytes as they came, as text. */
  raw: string;
}

export interface FakeProvider {
  url: string;
  received: FakeRequest[];
  close(): Promise<void>;
}

export async function startFakeProvider(answer: (req: FakeRequest, res: ServerResponse) => void | Promise<void>): Promise<FakeProvider> {
  const received: FakeRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const r: FakeRequest = { path: req.url ?? '', headers: req.headers, body: JSON.parse(raw || 'null'), raw };
      received.push(r);
      void answer(r, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** SSE: `event:` lines where the dialect names its events (Anthropic, Responses), data lines alone otherwise. */
export const sse = (data: unknown, event?: string): string => `${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
