// No secret in a logged URL: `envelope serve --log-level info` with an admin token and a tenant key, the dashboard
// in headless Chromium following its two live streams (fetch with an Authorization header, never ?token=), model
// calls carrying ?key= in their URLs, and an old client sending ?token=. No token or key may appear in anything the
// gateway writes, while the lines for those requests are there, their query strings redacted.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { Page } from 'playwright-core';
import { stopProcess } from '../bench/processes.js';
import { startSim, type Sim } from '../src/sim/server.js';
import { launchBrowser, type TestBrowser } from './helpers/browser.js';
import { tempDbPath } from './helpers/gateway.js';
import { startCli, type RunningCli } from './helpers/process.js';

const secret = (name: string): string => `${name}-${randomBytes(8).toString('hex')}`;
const ADMIN = secret('admin');
const TENANT_KEY = secret('tenant');
const URL_KEYS = [secret('anthropic-url-key'), secret('openai-url-key'), secret('gemini-url-key'), secret('stray-key')];

/** A request with its target exactly as written (fetch would escape it). */
function rawGet(url: string, path: string): Promise<void> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(`GET ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\nconnection: close\r\n\r\n`));
    socket.on('data', () => undefined);
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

describe('gateway: no secret in a logged URL', () => {
  let sim: Sim;
  let serve: RunningCli;
  let browser: TestBrowser;
  let page: Page;
  const pageRequests: Array<{ url: string; authorization: string | undefined }> = [];

  before(async () => {
    browser = await launchBrowser();
    sim = await startSim({ outputTokens: 20, latencyMs: 0 });
    serve = await startCli(
      ['serve', '--port', '0', '--store', `sqlite:${tempDbPath()}`, '--anthropic-url', sim.url, '--openai-url', `${sim.url}/v1`, '--log-level', 'info'],
      { ENVELOPE_ADMIN_TOKEN: ADMIN, ENVELOPE_TENANT_KEYS: `acme=${TENANT_KEY}` },
    );
    page = await browser.context.newPage();
    page.on('request', (r) => pageRequests.push({ url: r.url(), authorization: r.headers()['authorization'] }));
  });
  after(async () => {
    await browser?.close();
    if (serve) await stopProcess(serve.child);
    await sim?.close();
  });

  const admin = (path: string, token: string, body?: unknown) =>
    fetch(`${serve.url}/envelope/v1${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  async function signIn(token: string): Promise<void> {
    await page.locator('#token').fill(token);
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#conn', { hasText: 'Live' }).waitFor();
  }

  it('follows the dashboard’s live streams with the token in a header, never in a URL', async () => {
    await page.goto(serve.url);
    await signIn(ADMIN);
    // Both streams deliver: a task created elsewhere shows up, and so does its approval event.
    assert.equal((await admin('/tasks', ADMIN, { id: 'watched', total: 50_000, policy: 'approval' })).status, 201);
    await page.locator('li.task[data-task-id="watched"]').waitFor();
    assert.equal((await admin('/tasks/watched/approve', ADMIN, { add: 1_000 })).status, 200);
    await page.locator('#event-list li[data-type=approved][data-task-id="watched"]').waitFor();

    await page.getByRole('button', { name: 'Change token' }).click();
    await signIn(TENANT_KEY);
    await page.locator('#who', { hasText: 'tenant acme' }).waitFor();

    const streams = pageRequests.filter((r) => /\/envelope\/v1\/(task-updates|events)/.test(r.url));
    assert.deepEqual(
      streams.map((r) => [new URL(r.url).pathname, r.authorization]),
      [
        ['/envelope/v1/task-updates', `Bearer ${ADMIN}`],
        ['/envelope/v1/events', `Bearer ${ADMIN}`],
        ['/envelope/v1/task-updates', `Bearer ${TENANT_KEY}`],
        ['/envelope/v1/events', `Bearer ${TENANT_KEY}`],
      ],
    );
    for (const r of pageRequests) assert.ok(!r.url.includes(ADMIN) && !r.url.includes(TENANT_KEY), r.url);
  });

  it('refuses a token in the URL, as old dashboards sent it', async () => {
    for (const path of ['/events', '/task-updates', '/tasks']) {
      const res = await fetch(`${serve.url}/envelope/v1${path}?token=${ADMIN}`);
      assert.equal(res.status, 401, path);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /a token in the URL is refused/);
    }
  });

  it('writes no key or token from any URL into its log', async () => {
    const [anthropicKey, openaiKey, geminiKey, strayKey] = URL_KEYS as [string, string, string, string];
    const claude = new Anthropic({ apiKey: 'sk-ant-test', baseURL: serve.url, maxRetries: 0, defaultQuery: { key: anthropicKey } });
    await claude.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-envelope-task': 'url-keys', 'x-envelope-budget': '50000' } });
    const gpt = new OpenAI({ apiKey: 'sk-test', baseURL: `${serve.url}/v1`, maxRetries: 0, defaultQuery: { key: openaiKey } });
    await gpt.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
    // Gemini's own way of sending its key, and a stray one on a path that does not exist.
    await fetch(`${serve.url}/v1beta/models/gemini-2.5-flash:generateContent?key=${geminiKey}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"contents":[]}' });
    await fetch(`${serve.url}/nowhere?api_key=${strayKey}&token=${ADMIN}`);
    // Node takes a quote or a backslash in a URL: they must not hide the query from the redaction.
    for (const path of [`/a"b?token=${ADMIN}`, `/a\\b?token=${ADMIN}`, `/v1/messages"?key=${anthropicKey}`]) await rawGet(serve.url, path);
    await stopProcess(serve.child);

    const log = serve.stdout() + serve.stderr();
    for (const s of [ADMIN, TENANT_KEY, ...URL_KEYS]) assert.ok(!log.includes(s), `${s.split('-')[0]} appears in the log`);
    // The requests were logged, with their query strings redacted.
    const lines = serve.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; url?: string; req?: { url: string } });
    const urls = lines.map((l) => l.url ?? l.req?.url).filter((u): u is string => u !== undefined);
    for (const expected of ['/v1/messages?[redacted]', '/v1/chat/completions?[redacted]', '/envelope/v1/events?[redacted]', '/nowhere?[redacted]', '/a"b?[redacted]', '/a\\b?[redacted]']) {
      assert.ok(urls.includes(expected), `${expected} in ${JSON.stringify(urls)}`);
    }
  });
});
