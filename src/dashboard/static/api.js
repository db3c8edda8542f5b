// The admin API as the page uses it: the token (kept in localStorage), JSON calls with a bearer header, and the
// two live streams. The streams are read with fetch rather than EventSource, which cannot send a header: the token
// must never travel in a URL (URLs end up in logs, proxies and the browser's history).
import { createParser } from './vendor/eventsource-parser.js';

const TOKEN_KEY = 'envelope.token';
export const PREFIX = '/envelope/v1';

/** A refusal or failure from the admin API, with the server's own message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const savedToken = () => localStorage.getItem(TOKEN_KEY) ?? '';
export const saveToken = (token) => localStorage.setItem(TOKEN_KEY, token);
export const forgetToken = () => localStorage.removeItem(TOKEN_KEY);

export class Api {
  constructor(token) {
    this.token = token;
  }

  async call(method, path, body) {
    const headers = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res;
    try {
      res = await fetch(`${PREFIX}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, 'network_error', `the gateway did not answer (${e.message})`);
    }
    const json = await res.json().catch(() => null);
    if (!res.ok) {
      const err = json?.error ?? {};
      throw new ApiError(res.status, err.code ?? 'http_error', err.message ?? `HTTP ${res.status}`);
    }
    return json;
  }

  get(path) {
    return this.call('GET', path);
  }

  post(path, body) {
    return this.call('POST', path, body ?? {});
  }

  /** A live stream of Server-Sent Events from the admin API, with the token in its Authorization header. */
  stream(path) {
    return new LiveStream(`${PREFIX}${path}`, this.token ? { authorization: `Bearer ${this.token}` } : {});
  }

  /** Resolves when the token is accepted; throws the ApiError of a refusal. */
  async check() {
    await this.get('/tasks?limit=1');
  }
}

/**
 * Server-Sent Events read from a fetch body, with what the page uses of EventSource: `addEventListener(type)`
 * (`open`, `error` and each event type), `readyState` and `close()`. Like EventSource, it reconnects after a
 * dropped connection (resuming after the last event id it saw), and closes for good when the server refuses.
 */
export class LiveStream extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;

  constructor(url, headers) {
    super();
    this.url = url;
    this.headers = headers;
    this.readyState = LiveStream.CONNECTING;
    this.lastEventId = '';
    this.retryMs = 3_000;
    this.aborter = new AbortController();
    void this.run();
  }

  close() {
    this.readyState = LiveStream.CLOSED;
    this.aborter.abort();
  }

  async run() {
    while (this.readyState !== LiveStream.CLOSED) {
      let res = null;
      try {
        const headers = { ...this.headers, accept: 'text/event-stream', ...(this.lastEventId ? { 'last-event-id': this.lastEventId } : {}) };
        res = await fetch(this.url, { headers, cache: 'no-store', signal: this.aborter.signal });
        if (!res.ok || !res.body || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
          // A refusal (a revoked key) or a wrong answer: EventSource gives up, and so do we.
          this.readyState = LiveStream.CLOSED;
          this.dispatchEvent(new Event('error'));
          return;
        }
        this.readyState = LiveStream.OPEN;
        this.dispatchEvent(new Event('open'));
        await this.read(res.body);
      } catch {
        // a network fault, or close() aborting the read
      }
      if (this.readyState === LiveStream.CLOSED) return;
      this.readyState = LiveStream.CONNECTING;
      this.dispatchEvent(new Event('error'));
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }

  async read(body) {
    const parser = createParser({
      onEvent: (ev) => {
        if (ev.id !== undefined) this.lastEventId = ev.id;
        this.dispatchEvent(new MessageEvent(ev.event ?? 'message', { data: ev.data, lastEventId: this.lastEventId }));
      },
      onRetry: (ms) => {
        this.retryMs = ms;
      },
    });
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(value);
    }
  }
}
