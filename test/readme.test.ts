// The README runs as written: its start block (envelope sim, envelope serve, the exported key) is run as real CLI
// processes — each port swapped for a free one, since tests listen on port 0 —, then each quick-start snippet, which
// is exactly a runnable file of docs/quickstart/, with no environment but what the README exports. Its config file
// example is a valid `serve --config`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { CLI, stopProcess } from '../bench/processes.js';
import { startCli, type RunningCli } from './helpers/process.js';
import { openEnvelope } from '../src/sdk/envelope.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const FILES: Record<string, string> = { curl: 'curl.sh', 'gateway-sdk': 'gateway-sdk.mjs', library: 'library.mjs', 'ai-sdk': 'ai-sdk.mjs' };

/** The code block after each `<!-- KIND: NAME -->` marker. */
function blocks(kind: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of README.matchAll(new RegExp(`<!-- ${kind}: ([\\w.-]+) -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\`\`\``, 'g'))) out.set(m[1]!, m[2]!);
  return out;
}

const quickstart = (name: string): string => readFileSync(join(ROOT, 'docs', 'quickstart', FILES[name]!), 'utf8');

/** The start block's lines: `npx envelope …  &` commands and `export NAME=value` lines, comments dropped. */
function startBlock(): { commands: string[][]; env: Record<string, string> } {
  const commands: string[][] = [];
  const env: Record<string, string> = {};
  for (const raw of blocks('snippet').get('start')!.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').trim();
    if (!line) continue;
    const exported = /^export (\w+)=(\S+)$/.exec(line);
    if (exported) env[exported[1]!] = exported[2]!;
    else if (line.startsWith('npx envelope ') && line.endsWith(' &')) commands.push(line.slice('npx envelope '.length, -2).trim().split(/\s+/));
    else assert.fail(`the README's start block has a line the test cannot run: ${line}`);
  }
  return { commands, env };
}

describe('README quick start', () => {
  let sim: RunningCli;
  let serve: RunningCli;
  const cwd = mkdtempSync(join(tmpdir(), 'envelope-readme-'));
  // Inside the package, so `import 'envelope-budgets'` resolves to this package itself.
  const scripts = join(ROOT, 'dist', 'readme-snippets');
  const { commands, env: exported } = startBlock();
  // Only what the README says: none of the caller's own provider settings.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ANTHROPIC|OPENAI|ENVELOPE)_/.test(k)));
  const swap = (text: string): string => text.replaceAll('http://127.0.0.1:8787', serve.url).replaceAll('http://127.0.0.1:8788', sim.url);
  const node = async (name: string) => {
    mkdirSync(scripts, { recursive: true });
    const file = join(scripts, FILES[name]!);
    writeFileSync(file, swap(quickstart(name)));
    return run(process.execPath, [file], { cwd, env: { ...env, ...exported } });
  };

  before(async () => {
    assert.deepEqual(commands.map((c) => c[0]), ['sim', 'serve']);
    sim = await startCli([...commands[0]!, '--port', '0'], {}, cwd);
    serve = await startCli([...commands[1]!.map((a) => a.replaceAll('http://127.0.0.1:8788', sim.url)), '--port', '0'], {}, cwd);
  });
  after(async () => {
    await stopProcess(serve.child);
    await stopProcess(sim.child);
    rmSync(cwd, { recursive: true, force: true });
  });

  it('shows exactly the runnable files of docs/quickstart/, after the start block', () => {
    const code = blocks('snippet');
    assert.deepEqual([...code.keys()], ['start', ...Object.keys(FILES)]);
    for (const name of Object.keys(FILES)) assert.equal(code.get(name), quickstart(name), `README snippet ${name} differs from docs/quickstart/${FILES[name]}`);
    assert.deepEqual(exported, { ANTHROPIC_API_KEY: 'sk-ant-any' });
  });

  it('curl through the gateway returns budget headers', async () => {
    const { stdout } = await run('sh', ['-c', swap(quickstart('curl'))], { env });
    assert.match(stdout, /^HTTP\/1\.1 200/);
    // The loop meter: a conversation's first call is charged its 200 output tokens (its input is the context it starts from).
    assert.match(stdout, /x-envelope-budget-used: 200\r\n/);
    assert.match(stdout, /x-envelope-budget-remaining: 49800\r\n/);
    assert.match(stdout, /x-envelope-budget-state: active/);
    assert.match(stdout, /"output_tokens":200/);
  });

  it('the Anthropic SDK through the gateway, on the same task, with the exported key', async () => {
    const { stdout } = await node('gateway-sdk');
    assert.match(stdout, /output_tokens: 200/);
    const row = (await (await fetch(`${serve.url}/envelope/v1/tasks/triage-42`)).json()) as { calls: number; used: number; reserved: number };
    // The same conversation again: its context is charged once, so each call adds its 200 output tokens.
    assert.deepEqual([row.calls, row.used, row.reserved], [2, 200 + 200, 0]);
  });

  it('task.wrap in-process: the sub-agent’s call counts against its parent', async () => {
    const { stdout } = await node('library');
    // The sub-agent's first call: its 200 output tokens, on it and its parent (0.4 % of 50,000, to one decimal).
    assert.equal(stdout, `active 200 0.4 ${50_000 - 200}\n`);
  });

  it('the AI SDK middleware on a multi-step tool loop: the ledger holds what the provider reported', async () => {
    const { stdout } = await node('ai-sdk');
    // Three tool calls, then the answer. The ledger counted every token the provider reported, and charged the
    // task what the loop added (each step's output and new input, not the context it re-read).
    const [steps, reported, used] = stdout.trim().split(' ').map(Number);
    const local = await openEnvelope({ store: `sqlite:${join(cwd, 'envelope.db')}`, sweepIntervalMs: 0 });
    const row = await local.ledger.task('docs-7');
    await local.close();
    assert.deepEqual([steps, row.tokensUsed, row.used, row.calls], [4, reported, used, 4]);
    assert.ok(used! >= 4 * 200 && used! < reported!, `used ${used} of ${reported} reported`);
  });

  it('the config file of "Run it for real" is one serve takes', async () => {
    const config = blocks('config').get('envelope.json')!;
    const path = join(cwd, 'envelope.json');
    writeFileSync(path, config);
    const { stdout } = await run(process.execPath, [CLI, 'serve', '--config', path, '--print-config'], { env });
    const shown = JSON.parse(stdout) as Record<string, unknown>;
    assert.deepEqual(
      [shown.host, shown.port, shown.store, shown.logLevel, shown.idleCloseMs, shown.prices],
      ['127.0.0.1', 8787, 'postgres://envelope@db.internal/envelope', 'info', 1_800_000, '/etc/envelope/prices.json'],
    );
  });
});

describe('README tenant envelopes and rate limits', () => {
  it('runs as written: the config file, the CLI, the admin API and the report', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'envelope-readme-tenants-'));
    const code = blocks('governance');
    writeFileSync(join(cwd, 'tenants.json'), code.get('tenants.json')!);
    const [exports, start, ...commands] = code.get('tenants.sh')!.trim().split('\n');
    const exported = Object.fromEntries([...exports!.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    assert.equal(start, 'npx envelope serve --config tenants.json &');
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ENVELOPE_'))), ...exported };
    const serve = await startCli(['serve', '--config', 'tenants.json', '--port', '0'], exported, cwd);
    try {
      const sh = async (line: string): Promise<string> =>
        (await run('sh', ['-c', line.replaceAll('npx envelope', `"${process.execPath}" "${CLI}"`).replaceAll('http://127.0.0.1:8787', serve.url)], { cwd, env })).stdout;
      assert.equal(commands.length, 4);
      assert.match(await sh(commands[0]!), /^team-b\s+\$50\.00 hard\s+\$0\.00\s+0\.0%\s+active\s+month\s+\S+\s+–\s+120\s/m);
      const put = JSON.parse(await sh(commands[1]!)) as { envelope: { total: number; period: string }; limits: { tpm: number; rpm: number } };
      assert.deepEqual([put.envelope.total, put.envelope.period, put.limits.tpm, put.limits.rpm], [3_000_000, 'day', 200_000, 600]);
      const seen = JSON.parse(await sh(commands[2]!)) as { tenant: string; envelope: { total: number; remaining: number } };
      assert.deepEqual([seen.tenant, seen.envelope.total, seen.envelope.remaining], ['team-a', 3_000_000, 3_000_000]);
      const report = await sh(commands[3]!);
      assert.match(report, /^team-a\s+day\s+0\s+3,000,000\s+0\.0%\s+0\s+200,000\s+0\.0%\s+0\s+0\s+–$/m);
      assert.match(report, /^team-b\s+month\s+\$0\.0000\s+\$50\.00\s+0\.0%\s+0\s+–\s+–\s+0\s+0\s+–$/m);
    } finally {
      await stopProcess(serve.child);
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
