// The README's quick-start snippets, run as written against envelope sim and a gateway (only the URLs swapped).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startSim, type Sim } from '../src/sim/server.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The code block after each `<!-- snippet: NAME -->` marker. */
function snippets(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const out = new Map<string, string>();
  for (const m of readme.matchAll(/<!-- snippet: ([\w-]+) -->\n```\w+\n([\s\S]*?)```/g)) out.set(m[1]!, m[2]!);
  return out;
}

describe('README quick start', () => {
  let sim: Sim;
  let gw: TestGateway;
  let code: Map<string, string>;
  const cwd = mkdtempSync(join(tmpdir(), 'envelope-readme-'));
  // Inside the package, so `import 'envelope-budgets'` resolves to this package itself.
  const scripts = join(ROOT, 'dist', 'readme-snippets');
  const swap = (text: string): string => text.replaceAll('http://127.0.0.1:8787', gw.url);
  const node = async (name: string, env: Record<string, string>) => {
    mkdirSync(scripts, { recursive: true });
    const file = join(scripts, `${name}.mjs`);
    writeFileSync(file, swap(code.get(name)!));
    return run(process.execPath, [file], { cwd, env: { ...process.env, ANTHROPIC_API_KEY: 'sk-ant-readme', ...env } });
  };

  before(async () => {
    sim = await startSim({ outputTokens: 120 });
    gw = await startGateway({ anthropicUrl: sim.url });
    code = snippets();
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  it('has the four snippets', () => {
    assert.deepEqual([...code.keys()], ['curl', 'gateway-sdk', 'library', 'ai-sdk']);
  });

  it('curl through the gateway returns budget headers', async () => {
    const { stdout } = await run('bash', ['-c', swap(code.get('curl')!)]);
    assert.match(stdout, /^HTTP\/1\.1 200/);
    assert.match(stdout, /x-envelope-budget-state: active/);
    assert.match(stdout, /"output_tokens":120/);
  });

  it('the Anthropic SDK through the gateway', async () => {
    const { stdout } = await node('gateway-sdk', {});
    assert.match(stdout, /output_tokens: 120/);
    assert.equal((await gw.ledger.task('triage-42')).calls, 2);
  });

  it('task.wrap in-process, and the AI SDK middleware', async () => {
    const lib = await node('library', { ANTHROPIC_BASE_URL: sim.url });
    assert.match(lib.stdout, /^active \d+ \d+\n$/);
    const [, used, remaining] = lib.stdout.trim().split(' ').map(Number);
    assert.equal(used! + remaining!, 50_000);
    const ai = await node('ai-sdk', { ANTHROPIC_BASE_URL: `${sim.url}/v1` });
    assert.match(ai.stdout, /^480 \d+\n$/);
  });
});
