// The admin API against other web pages: a state-changing call needs a JSON body and is refused from another
// site or origin (CSRF), in loopback mode and with tokens alike; and loopback mode answers only requests
// addressed to a loopback name, so a page that rebinds its own name to 127.0.0.1 gets nothing (DNS rebinding).
// The last case is the attack itself, from a page in headless Chromium.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, type TestBrowser } from './helpers/browser.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const ADMIN = 'origin-admin-token';

/** A raw HTTP/1.1 request with exactly these headers (fetch would not send a chosen Host or Sec-Fetch-Site). */
function raw(url: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; json: { error?: { code: string; message: string } } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

for (const mode of ['loopback', 'token'] as const) {
  describe(`admin API from other sites (${mode} mode)`, () => {
    let gw: TestGateway;
    let host: string;
    const auth: Record<string, string> = mode === 'token' ? { authorization: `Bearer ${ADMIN}` } : {};
    before(async () => {
      gw = await startGateway({ adminToken: mode === 'token' ? ADMIN : null, anthropicUrl: 'http://127.0.0.1:9' });
      host = new URL(gw.url).host;
      await gw.ledger.createTask({ id: 'victim', total: 50_000, policy: 'approval' });
    });
    after(() => gw.close());

    const json = { ...auth, 'content-type': 'application/json' };
    const close = (headers: Record<string, string>, body?: string) => raw(gw.url, 'POST', '/envelope/v1/tasks/victim/close', headers, body);

    it('refuses a state-changing call without a JSON body', async () => {
      const cases: Array<[Record<string, string>, string | undefined]> = [
        [auth, undefined], // fetch(…, {method: 'POST', mode: 'no-cors'}): no body, no preflight
        [{ ...auth, 'content-type': 'text/plain' }, '{}'], // a form or a no-cors fetch with a text body
        [{ ...auth, 'content-type': 'application/x-www-form-urlencoded' }, 'outcome=failed'],
        [{ ...auth, 'content-type': 'multipart/form-data; boundary=x' }, '--x--'],
      ];
      for (const [headers, body] of cases) {
        const r = await close(headers, body);
        assert.equal(r.status, 415, JSON.stringify(headers));
        assert.equal(r.json.error?.code, 'unsupported_media_type');
      }
      assert.equal((await raw(gw.url, 'POST', '/envelope/v1/tasks', { ...auth, 'content-type': 'text/plain' }, '{"id":"planted","total":20000}')).status, 415);
      assert.equal((await raw(gw.url, 'POST', '/envelope/v1/tasks/victim/approve', auth, undefined)).status, 415);
      assert.equal((await gw.ledger.task('victim')).state, 'active');
      assert.equal(await gw.ledger.findTask('planted'), undefined);
    });

    it('refuses a JSON call from another site or origin', async () => {
      const foreign: Array<Record<string, string>> = [
        { 'sec-fetch-site': 'cross-site' },
        { 'sec-fetch-site': 'cross-site', origin: `http://${host}` },
        { origin: 'http://attacker.example' },
        { origin: 'http://localhost:3000', 'sec-fetch-site': 'same-site' }, // another port on this machine
        { origin: 'null' }, // a sandboxed frame or a file
        { origin: `https://${host}.attacker.example` },
      ];
      for (const extra of foreign) {
        const r = await close({ ...json, ...extra }, '{}');
        assert.equal(r.status, 403, JSON.stringify(extra));
        assert.deepEqual([r.json.error?.code, /another (site|origin)/.test(r.json.error?.message ?? '')], ['forbidden', true]);
      }
      const approve = await raw(gw.url, 'POST', '/envelope/v1/tasks/victim/approve', { ...json, origin: 'http://attacker.example' }, '{"add":1000}');
      assert.equal(approve.status, 403);
      const row = await gw.ledger.task('victim');
      assert.deepEqual([row.state, row.total], ['active', 50_000]);
    });

    it('accepts JSON from its own page and from callers outside browsers', async () => {
      const own = await raw(gw.url, 'POST', '/envelope/v1/tasks/victim/approve', { ...json, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }, '{"add":1000}');
      assert.deepEqual([own.status, own.json.total], [200, 51_000]);
      const curl = await raw(gw.url, 'POST', '/envelope/v1/tasks/victim/approve', json, '{"add":1000}');
      assert.deepEqual([curl.status, curl.json.total], [200, 52_000]);
      const proxied = await raw(gw.url, 'POST', '/envelope/v1/tasks/victim/approve', { ...json, origin: 'https://envelope.example.com', 'x-forwarded-host': 'envelope.example.com' }, '{"add":1000}');
      assert.deepEqual([proxied.status, proxied.json.total], [200, 53_000]);
      // Reading stays open to a plain GET (a page on another origin cannot read the answer: no CORS headers).
      assert.equal((await raw(gw.url, 'GET', '/envelope/v1/tasks/victim', auth)).status, 200);
    });
  });
}

describe('admin API in loopback mode under a foreign Host (DNS rebinding)', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ adminToken: null, tenantKeys: new Map([['key-acme', 'acme']]), anthropicUrl: 'http://127.0.0.1:9' });
    await gw.ledger.createTask({ id: 'rebound', total: 50_000, tenant: 'acme' });
  });
  after(() => gw.close());

  it('answers only a loopback Host when no admin token is set', async () => {
    const port = new URL(gw.url).port;
    for (const host of ['attacker.example', `attacker.example:${port}`, '127.0.0.1.nip.io', 'localhost.attacker.example', `[::2]:${port}`]) {
      const r = await raw(gw.url, 'GET', '/envelope/v1/tasks', { host });
      assert.equal(r.status, 403, host);
      assert.equal(r.json.error?.code, 'forbidden');
      assert.match(r.json.error?.message ?? '', /localhost, 127\.0\.0\.1 or \[::1\]/);
    }
    const events = await raw(gw.url, 'GET', '/envelope/v1/events', { host: 'attacker.example' });
    assert.equal(events.status, 403);
    for (const host of ['localhost', `localhost:${port}`, `LOCALHOST:${port}`, `127.0.0.1:${port}`, '[::1]', `[::1]:${port}`]) {
      const r = await raw(gw.url, 'GET', '/envelope/v1/tasks', { host });
      assert.deepEqual([r.status, (r.json.tasks as unknown[]).length], [200, 1], host);
    }
    // A tenant key is a credential a rebinding page does not have: it works under any Host, within its tenant.
    const tenant = await raw(gw.url, 'GET', '/envelope/v1/tasks', { host: 'envelope.internal', authorization: 'Bearer key-acme' });
    assert.deepEqual([tenant.status, (tenant.json.tasks as unknown[]).length], [200, 1]);
  });
});

describe('the CSRF attack from a real page on another origin', () => {
  let gw: TestGateway;
  let attacker: Server;
  let attackerUrl: string;
  let browser: TestBrowser;
  before(async () => {
    browser = await launchBrowser();
    gw = await startGateway({ adminToken: null, anthropicUrl: 'http://127.0.0.1:9' });
    await gw.ledger.createTask({ id: 'target', total: 50_000 });
    attacker = createServer((_req, res) => res.end('<!doctype html><title>attacker</title>'));
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    attackerUrl = `http://localhost:${(attacker.address() as { port: number }).port}/`;
  });
  after(async () => {
    await browser?.close();
    await gw?.close();
    attacker?.close();
  });

  it('leaves the task open after no-cors POSTs and a form submission from another origin', async () => {
    const page = await browser.context.newPage();
    await page.goto(attackerUrl);
    const target = `${gw.url}/envelope/v1/tasks/target/close`;
    const sent = await page.evaluate(async (url) => {
      const kinds: string[] = [];
      for (const init of [{}, { body: '{}' }, { body: '{}', headers: { 'content-type': 'text/plain' } }]) {
        await fetch(url, { method: 'POST', mode: 'no-cors', ...init });
        kinds.push('fetch');
      }
      return kinds;
    }, target);
    assert.equal(sent.length, 3);
    // A form POST navigates the page to the answer.
    await page.setContent(`<form method="post" action="${target}" enctype="text/plain"><input name='{"a":"' value='"}'></form>`);
    await Promise.all([page.waitForNavigation(), page.evaluate(() => document.querySelector('form')!.submit())]);
    await page.close();
    const row = await gw.ledger.task('target');
    assert.deepEqual([row.state, row.outcome], ['active', null]);
  });
});
