// `envelope serve --config FILE` / ENVELOPE_CONFIG: every flag is a key; flags and environment override the file;
// an unknown key is an error naming it. And the health checks a load balancer polls: /healthz and /readyz.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Command, type Option } from 'commander';
import { CLI, freePort, stopProcess } from '../bench/processes.js';
import { registerCommands } from '../src/cli/commands/index.js';
import { startGateway, tempDbPath } from './helpers/gateway.js';
import { startCli } from './helpers/process.js';

const run = promisify(execFile);

function serveOptions(): Option[] {
  const program = new Command('envelope');
  registerCommands(program);
  const serve = program.commands.find((c) => c.name() === 'serve')!;
  return (serve.options as Option[]).filter((o) => o.long !== '--config' && o.long !== '--print-config');
}

/** A value for every flag that differs from its default, and what --print-config then shows for it. */
function everyFlag(): { file: Record<string, unknown>; shown: Record<string, unknown> } {
  const file: Record<string, unknown> = {};
  const shown: Record<string, unknown> = {};
  for (const o of serveOptions()) {
    const key = o.long!.slice(2);
    const attr = o.attributeName();
    let value: unknown;
    let show: unknown;
    if (o.isBoolean()) value = true;
    else if (o.argChoices) value = o.argChoices.find((c) => c !== o.defaultValue);
    else if (typeof o.defaultValue === 'number') value = o.defaultValue + 7;
    // Shown as written, so that --print-config's output is itself a config file.
    else if (key === 'upstream') value = ['local=openai:http://127.0.0.1:9/v1'];
    else if (Array.isArray(o.defaultValue)) (value = ['http://127.0.0.1:9/hook=whsec'], (show = ['http://127.0.0.1:9/hook=***']));
    else value = `value-of-${key}`;
    if (key === 'store') value = 'memory:';
    if (key === 'admin-token') show = '***';
    if (key === 'tenant-keys') (value = 'acme=key-1,beta=key-2'), (show = 'acme=***,beta=***');
    // JSON in a flag, an object in the file (and as --print-config shows it).
    if (key === 'tenants') value = { acme: { total: 5_000_000, period: 'day', tpm: 250_000, rpm: 600 } };
    file[key] = value;
    shown[attr] = show ?? value;
  }
  return { file, shown };
}

async function printConfig(args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [CLI, 'serve', ...args, '--print-config'], { env: { ...process.env, ...env } });
  return JSON.parse(stdout) as Record<string, unknown>;
}

const configFile = (content: unknown): string => {
  const path = join(tempDbPath(), '..', 'envelope.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
};

describe('serve: config file', () => {
  it('takes every flag as a key, by its flag name or in camelCase', async () => {
    const { file, shown } = everyFlag();
    assert.ok(Object.keys(file).length >= 17, `serve has ${Object.keys(file).length} flags`);
    assert.deepEqual(await printConfig(['--config', configFile(file)]), shown);
    // The same file in camelCase keys, named by ENVELOPE_CONFIG.
    const camel = Object.fromEntries(serveOptions().map((o) => [o.attributeName(), file[o.long!.slice(2)]]));
    assert.deepEqual(await printConfig([], { ENVELOPE_CONFIG: configFile(camel) }), shown);
  });

  it('lets flags and the environment override the file', async () => {
    const path = configFile({ port: 9001, host: '0.0.0.0', 'log-level': 'info', 'minimum-tokens': 30000 });
    const got = await printConfig(['--config', path, '--port', '9002'], { ENVELOPE_LOG_LEVEL: 'error' });
    assert.deepEqual(
      { port: got.port, host: got.host, logLevel: got.logLevel, minimumTokens: got.minimumTokens, sweepIntervalMs: got.sweepIntervalMs },
      { port: 9002, host: '0.0.0.0', logLevel: 'error', minimumTokens: 30000, sweepIntervalMs: 5000 },
    );
  });

  it('refuses an unknown key, a bad value and a file that is not JSON, naming what is wrong', async () => {
    const fails = async (content: unknown, pattern: RegExp): Promise<void> => {
      const path = configFile(content);
      await assert.rejects(run(process.execPath, [CLI, 'serve', '--config', path]), (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr, pattern);
        return true;
      });
    };
    await fails({ port: 8787, 'admin-tokn': 'x' }, /envelope\.json: unknown key "admin-tokn"; the keys are the flags of envelope serve: port, host, store, admin-token/);
    await fails({ port: 'eighty' }, /"port": --port must be a whole number, got "eighty"/);
    await fails({ 'log-level': 'debug' }, /"log-level" must be one of silent, error, warn, info; got "debug"/);
    await fails({ 'require-task': 'yes' }, /"require-task" is on or off: true or false/);
    await fails({ port: 1, Port: 2, 'admin-token': 'a', adminToken: 'b' }, /unknown key "Port"/);
    await fails({ 'admin-token': 'a', adminToken: 'b' }, /"admin-token" and "adminToken" are the same flag; keep one/);
    await fails('{"port": 8787,}', /the config file .*envelope\.json is not JSON/);
    await fails('[1]', /must hold one JSON object/);
    await fails({ tenants: { acme: { total: 5_000_000, period: 'fortnight' } } }, /"tenants": tenants\.acme: period: period must be day, week, month or none/);
    await fails({ store: 'memory:', tenants: { acme: { total: 5_000_000 } } }, /--tenants: tenant acme has no key in --tenant-keys \(known: default\)/);
  });

  it('serves from the file alone: store, admin token, and the health checks', async () => {
    const path = configFile({ port: 0, store: `sqlite:${tempDbPath()}`, 'admin-token': 'config-token-1' });
    const serve = await startCli(['serve', '--config', path]);
    try {
      const healthz = await fetch(`${serve.url}/healthz`);
      assert.equal(healthz.status, 200);
      assert.deepEqual(await healthz.json(), { status: 'ok' });
      const readyz = await fetch(`${serve.url}/readyz`);
      assert.equal(readyz.status, 200);
      assert.deepEqual(await readyz.json(), { status: 'ready', store: 'sqlite' });
      assert.equal((await fetch(`${serve.url}/envelope/v1/tasks`)).status, 401);
      const listed = await fetch(`${serve.url}/envelope/v1/tasks`, { headers: { authorization: 'Bearer config-token-1' } });
      assert.equal(listed.status, 200);
      assert.ok(!serve.stderr().includes('config-token-1') && !serve.stdout().includes('config-token-1'));
    } finally {
      await stopProcess(serve.child);
    }
  });
});

describe('serve: secrets on the command line', () => {
  it('says in --help that a secret flag shows in ps, and where to put it instead', () => {
    for (const o of serveOptions().filter((o) => o.long === '--admin-token' || o.long === '--tenant-keys')) {
      assert.match(o.description, /a flag shows in ps: prefer the environment or --config/, o.long);
      assert.ok(o.envVar?.startsWith('ENVELOPE_'), o.long);
    }
    assert.equal(serveOptions().filter((o) => /shows in ps/.test(o.description)).length, 2);
  });
});

describe('serve: tenants from the config file', () => {
  it('caps the tenants the file names at every start, over what was set since', async () => {
    const store = `sqlite:${tempDbPath()}`;
    const tenants = { acme: { total: 5_000_000, period: 'day', tpm: 250_000, rpm: 600 }, default: { rpm: 1_200 } };
    const path = configFile({ port: 0, store, 'admin-token': 'config-token-2', 'tenant-keys': 'acme=key-a', tenants });
    for (let start = 0; start < 2; start++) {
      const serve = await startCli(['serve', '--config', path]);
      try {
        const api = (method: string, url: string, body?: unknown) =>
          fetch(`${serve.url}/envelope/v1${url}`, {
            method,
            headers: { authorization: 'Bearer config-token-2', ...(body ? { 'content-type': 'application/json' } : {}) },
            body: body ? JSON.stringify(body) : undefined,
          });
        const listed = (await (await api('GET', '/tenants')).json()) as { tenants: Array<{ tenant: string; envelope: { total: number; period: string } | null; limits: { tpm: number | null; rpm: number | null } | null }> };
        assert.deepEqual(
          listed.tenants.map((t) => [t.tenant, t.envelope && [t.envelope.total, t.envelope.period], t.limits && [t.limits.tpm, t.limits.rpm]]),
          [['acme', [5_000_000, 'day'], [250_000, 600]], ['default', null, [null, 1_200]]],
        );
        // Changed through the API: the next start puts the file's settings back.
        assert.equal((await api('PUT', '/tenants/acme', { total: 9_000_000 })).status, 200);
      } finally {
        await stopProcess(serve.child);
      }
    }
  });
});

describe('gateway: readiness', () => {
  it('answers 503 on /readyz while its store cannot be read, and 200 on /healthz all the same', async () => {
    const gw = await startGateway({});
    try {
      assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
      await gw.ledger.store.close();
      const readyz = await fetch(`${gw.url}/readyz`);
      assert.equal(readyz.status, 503);
      const body = (await readyz.json()) as { status: string; store: string; reason: string };
      assert.deepEqual({ status: body.status, store: body.store }, { status: 'unavailable', store: 'sqlite' });
      assert.match(body.reason, /^the store failed: /);
      assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
    } finally {
      await gw.gateway.close();
    }
  });
});

describe('sim: environment', () => {
  it('listens on ENVELOPE_PORT and ENVELOPE_HOST, as serve does', async () => {
    const port = await freePort();
    const sim = await startCli(['sim'], { ENVELOPE_PORT: String(port), ENVELOPE_HOST: '127.0.0.1' });
    try {
      assert.equal(sim.url, `http://127.0.0.1:${port}`);
    } finally {
      await stopProcess(sim.child);
    }
  });
});
