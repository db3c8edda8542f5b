// The agent CLIs through the gateway, in front of the simulator: Claude Code (`claude -p`, Anthropic Messages) and
// Codex (`codex exec`, a custom model provider with wire_api = "responses"). Each run is counted exactly: the
// ledger's `used` is the usage the CLI itself reports. `npm run test:agents` at the repository root runs this
// (it installs this folder's CLIs and builds Envelope first).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startSim } from '../../dist/src/sim/server.js';
import { startGateway } from '../../dist/test/helpers/gateway.js';

const BIN = fileURLToPath(new URL('../node_modules/.bin/', import.meta.url));
// Agent homes outside /tmp: Codex refuses to put its helper binaries under a temporary directory.
const HOMES = fileURLToPath(new URL('../.homes/', import.meta.url));

/** Runs a CLI to its end with stdin closed; resolves with its output and exit code, whatever the code. */
function cli(name, args, env, cwd) {
  return new Promise((resolve) => {
    const child = execFile(join(BIN, name), args, { env: { PATH: process.env.PATH, ...env }, cwd, timeout: 120_000, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end();
  });
}

const home = () => {
  mkdirSync(HOMES, { recursive: true });
  return mkdtempSync(HOMES);
};

describe('agent CLIs through the gateway', () => {
  let sim;
  let gw;
  const seen = [];
  before(async () => {
    sim = await startSim({ outputTokens: 50 });
    gw = await startGateway({ anthropicUrl: sim.url, openaiUrl: `${sim.url}/v1` }, {}, { observe: (c) => seen.push([c.taskId, c.route, c.status]) });
  });
  after(async () => {
    await gw.close();
    await sim.close();
  });

  /** `claude -p PROMPT` through the gateway with these x-envelope-* headers; its JSON result and the task's row. */
  async function claude(prompt, maxTurns, headers) {
    const dir = home();
    const r = await cli('claude', ['-p', prompt, '--max-turns', String(maxTurns), '--output-format', 'json'], {
      HOME: dir,
      ANTHROPIC_BASE_URL: gw.url,
      ANTHROPIC_API_KEY: 'sk-ant-agents',
      ANTHROPIC_CUSTOM_HEADERS: Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\n'),
      DISABLE_AUTOUPDATER: '1',
      DISABLE_TELEMETRY: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    }, dir);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    const u = result.usage;
    return { result, billed: u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens + u.output_tokens, row: await gw.ledger.task(headers['x-envelope-task']) };
  }

  it('Claude Code (claude -p) finishes its job, counted exactly', async () => {
    // Billed, to compare with the usage the CLI reports (a sum over its calls).
    const { result, billed, row } = await claude('job: 1 subtask', 4, { 'x-envelope-task': 'claude-code-1', 'x-envelope-budget': '200000', 'x-envelope-policy': 'hard', 'x-envelope-meter': 'billed' });
    assert.match(result.result, /^All 1 subtasks complete/);
    assert.deepEqual([row.used, row.calls, row.reserved], [billed, result.num_turns, 0]);
  });

  it('Claude Code runs on a 20,000-token hard budget: its ~19,000-token context each call is not charged again', async () => {
    const { result, billed, row } = await claude('job: 3 subtasks', 8, { 'x-envelope-task': 'claude-code-20k', 'x-envelope-budget': '20000', 'x-envelope-policy': 'hard' });
    assert.match(result.result, /^All 3 subtasks complete/);
    // Every billed token is on the task's record; the budget was charged what the loop added.
    assert.deepEqual([row.meter, row.tokensUsed, row.calls, row.reserved], ['loop', billed, result.num_turns, 0]);
    assert.ok(billed / result.num_turns > 15_000, `each call re-read its context: ${billed} tokens over ${result.num_turns} calls`);
    assert.ok(row.used <= 20_000, `used ${row.used}`);
    assert.deepEqual(seen.filter(([t, , s]) => t === 'claude-code-20k' && s === 402), []);
  });

  it('Codex (codex exec, wire_api = "responses") finishes its job, counted exactly, and stops at a refusal without retrying', async () => {
    const config = (task, budget, extra = '') => `model = "gpt-5"
model_provider = "envelope"

[model_providers.envelope]
name = "Envelope"
base_url = "${gw.url}/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
http_headers = { "x-envelope-task" = "${task}", "x-envelope-budget" = "${budget}", "x-envelope-policy" = "hard", "x-envelope-meter" = "billed"${extra} }
`;
    const run = async (task, budget, prompt, extra) => {
      const dir = home();
      writeFileSync(join(dir, 'config.toml'), config(task, budget, extra));
      return cli('codex', ['exec', '--skip-git-repo-check', '--json', prompt], { HOME: dir, CODEX_HOME: dir, OPENAI_API_KEY: 'sk-codex-agents' }, dir);
    };
    const done = await run('codex-1', 200_000, 'job: 1 subtask');
    assert.equal(done.code, 0, done.stderr);
    const events = done.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const turn = events.find((e) => e.type === 'turn.completed');
    assert.ok(turn, done.stdout.slice(-2_000));
    assert.ok(events.some((e) => e.type === 'item.completed' && /^All 1 subtasks complete/.test(e.item?.text ?? '')));
    const row = await gw.ledger.task('codex-1');
    assert.deepEqual([row.used, row.reserved], [turn.usage.input_tokens + turn.usage.output_tokens, 0]);

    // A hard budget too small for the next call: one 402, shown as the turn's error, and not sent again.
    // Answers of 3,500 tokens (under the 4,096 the gateway asks for when Codex names no cap): the second call no longer fits.
    const refused = await run('codex-2', 20_000, 'job: 6 subtasks', ', "x-sim-output-tokens" = "3500"');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout, /"type":"turn.failed".*402 Payment Required: task codex-2 has used/);
    assert.deepEqual(seen.filter(([t, , s]) => t === 'codex-2' && s === 402).length, 1);
    assert.equal((await gw.ledger.task('codex-2')).reserved, 0);
  });
});
