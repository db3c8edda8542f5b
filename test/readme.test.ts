// The README's quick start: each snippet is exactly a runnable file of docs/quickstart/, and each file runs as
// written against envelope sim and a gateway (only the gateway's port swapped for the test's own).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FILES: Record<string, string> = { curl: 'curl.sh', 'gateway-sdk': 'gateway-sdk.mjs', library: 'library.mjs', 'ai-sdk': 'ai-sdk.mjs' };

/** The code block after each `<!-- snippet: NAME -->` marker. */
function snippets(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const out = new Map<string, string>();
  for (const m of readme.matchAll(/<!-- snippet: ([\w-]+) -->\n```\w+\n([\s\S]*?)```/g)) out.set(m[1]!, m[2]!);
  return out;
}

const quickstart = (name: string): string => readFileSync(join(ROOT, 'docs', 'quickstart', FILES[name]!), 'utf8');

describe('README quick start', () => {
  let sim: Sim;
  let gw: TestGateway;
  const cwd = mkdtempSync(join(tmpdir(), 'envelope-readme-'));
  // Inside the package, so `import 'envelope-budgets'` resolves to this package itself.
  const scripts = join(ROOT, 'dist', 'readme-snippets');
  const swap = (text: string): string => text.replaceAll('http://127.0.0.1:8787', gw.url);
  const node = async (name: string, env: Record<string, string>) => {
    mkdirSync(scripts, { recursive: true });
    const file = join(scripts, FILES[name]!);
    writeFileSync(file, swap(quickstart(name)));
    return run(process.execPath, [file], { cwd, env: { ...process.env, ANTHROPIC_API_KEY: 'sk-ant-readme', ...env } });
  };

  before(async () => {
    sim = await startSim({ outputTokens: 120 });
    gw = await startGateway({ anthropicUrl: sim.url });
  });
  after(async () => {
    await gw.close();
    await sim.close();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('shows exactly the runnable files of docs/quickstart/', () => {
    const code = snippets();
    assert.deepEqual([...code.keys()], Object.keys(FILES));
    for (const [name, text] of code) assert.equal(text, quickstart(name), `README snippet ${name} differs from docs/quickstart/${FILES[name]}`);
  });

  it('curl through the gateway returns budget headers', async () => {
    const { stdout } = await run('sh', ['-c', swap(quickstart('curl'))]);
    assert.match(stdout, /^HTTP\/1\.1 200/);
    // Message 3 + "hello" 2 + the countdown line (77 characters: 20 tokens) + 120 out.
    assert.match(stdout, /x-envelope-budget-used: 145\r\n/);
    assert.match(stdout, /x-envelope-budget-remaining: 49855\r\n/);
    assert.match(stdout, /x-envelope-budget-state: active/);
    assert.match(stdout, /"output_tokens":120/);
  });

  it('the Anthropic SDK through the gateway, on the same task', async () => {
    const { stdout } = await node('gateway-sdk', {});
    assert.match(stdout, /output_tokens: 120/);
    const row = await gw.ledger.task('triage-42');
    assert.deepEqual([row.calls, row.used, row.reserved], [2, 145 + 145, 0]);
  });

  it('task.wrap in-process: the sub-agent’s call counts against its parent', async () => {
    const { stdout } = await node('library', { ANTHROPIC_BASE_URL: sim.url });
    // Message 3 + "find the cause" 4 + the sub-agent's countdown "… 0 of 20,000 tokens used …" (20) + 120 out.
    assert.equal(stdout, `active 147 0 ${50_000 - 147}\n`);
  });

  it('the AI SDK middleware on a multi-step tool loop: the ledger holds what the provider reported', async () => {
    const { stdout } = await node('ai-sdk', { ANTHROPIC_BASE_URL: `${sim.url}/v1` });
    // Three tool calls, then the answer; the ledger's `used` is the loop's total usage.
    const [steps, reported, used] = stdout.trim().split(' ').map(Number);
    assert.deepEqual([steps, used], [4, reported]);
    assert.ok(reported! > 4 * 120, `reported ${reported}`);
  });
});
