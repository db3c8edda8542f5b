// The admin API as the page uses it: the token (kept in localStorage), JSON calls with a bearer header, and
// the URLs of the two live streams (EventSource cannot send headers, so the token goes in ?token=).

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

  /** A stream URL; the token travels as ?token= because EventSource sends no headers. */
  streamUrl(path) {
    const url = new URL(`${PREFIX}${path}`, location.origin);
    if (this.token) url.searchParams.set('token', this.token);
    return url.toString();
  }

  /** Resolves when the token is accepted; throws the ApiError of a refusal. */
  async check() {
    await this.get('/tasks?limit=1');
  }
}
