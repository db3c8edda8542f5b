// `envelope demo` as a new user runs it (a real child process, on a fresh SQLite file): sub-agents through the
// gateway and in-process, the countdown the model read, sub-agents ending with their own reports (one told to stop on
// its last call), QA (whose model ignores the countdown) paused and approved, the report.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Ledger } from '../src/ledger/ledger.js';
import { SqliteStore } from '../src/store/sqlite.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

describe('envelope demo', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'envelope-demo-'));
  let stdout = '';
  before(async () => {
    // No flags but the simulated latency (0 here): the store is the default ./envelope.db of the working folder.
    const { ENVELOPE_STORE: _unset, ...env } = process.env;
    ({ stdout } = await run(process.execPath, [CLI, 'demo', '--latency-ms', '0'], { cwd, env, timeout: 120_000 }));
  });
  after(() => rmSync(cwd, { recursive: true, force: true }));

  it('shows the countdown each sub-agent read: research wraps up, drafting stops on its last call, QA pauses until approved', () => {
    assert.match(stdout, /research +← model read: "\[Envelope task budget\] 13,579 of 20,000 tokens used \(67%\); 6,421 tokens remaining\. Scope remaining work tightly\."/);
    assert.match(stdout, /research +← model read: "\[Envelope task budget\] 16,676 of 20,000 tokens used \(83%\); 3,324 tokens remaining\. Finish in-flight work and start nothing new\."/);
    assert.match(stdout, /research +finished after 28 calls: Wrapping up: 27 of 40 subtasks complete; starting nothing new\./);
    // Drafting's calls are large: the line to stop comes while one more still fits, and that one is its report.
    assert.match(stdout, /drafting +← model read: "\[Envelope task budget\] 15,698 of 20,000 tokens used \(78%\); 4,302 tokens remaining\. This is the last call the budget allows: stop and report/);
    assert.match(stdout, /drafting +finished after 7 calls: Stopping at the budget's last call: 6 of 12 subtasks done, 6 left, about 62,400 tokens to finish\./);
    // QA's model ignores the countdown: its approval budget pauses it once, the lead approves, it finishes.
    assert.match(stdout, /qa runs in-process: qaTask\.wrap\(new Anthropic/);
    assert.equal(stdout.match(/qa +⏸ is paused for approval/g)?.length, 1);
    assert.equal(stdout.match(/lead +✔ approves 12,000 more tokens/g)?.length, 1);
    assert.match(stdout, /qa +finished after 31 calls: All 30 subtasks complete\./);
    assert.doesNotMatch(stdout, /refused/);
  });

  it('ends with a report per task and says where the ledger is kept', () => {
    const rows = stdout.split('\n').filter((l) => /^demo-\d+/.test(l) && /\$\d/.test(l));
    assert.deepEqual(
      rows.map((l) => l.split(/ {2,}/).slice(1, 6)),
      [
        ['66,571 / 100,000 tokens', '67%', 'completed', '$3.4964', '72'],
        ['17,298 / 20,000 tokens', '86%', 'completed', '$1.0939', '28'],
        ['18,338 / 20,000 tokens', '92%', 'completed', '$0.4733', '7'],
        ['28,463 / 32,000 tokens', '89%', 'completed', '$1.8555', '31'],
      ],
    );
    assert.match(stdout, new RegExp(`The ledger is kept in ${join(cwd, 'envelope.db').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\.`));
  });

  it('leaves the same figures in the SQLite file it names', async () => {
    const ledger = new Ledger(new SqliteStore(join(cwd, 'envelope.db')));
    try {
      const tasks = await ledger.listTasks({ limit: 10 });
      const byRole = new Map(tasks.map((t) => [t.id.split('/')[1] ?? 'orchestrator', t]));
      assert.deepEqual(
        ['orchestrator', 'research', 'drafting', 'qa'].map((r) => [r, byRole.get(r)?.used, byRole.get(r)?.total, byRole.get(r)?.outcome, byRole.get(r)?.meter]),
        [
          ['orchestrator', 66_571, 100_000, 'completed', 'loop'],
          ['research', 17_298, 20_000, 'completed', 'loop'],
          ['drafting', 18_338, 20_000, 'completed', 'loop'],
          ['qa', 28_463, 32_000, 'completed', 'loop'],
        ],
      );
    } finally {
      await ledger.shutdown();
    }
  });

  it('has --help', async () => {
    const help = await run(process.execPath, [CLI, 'demo', '--help']);
    assert.match(help.stdout, /^Usage: envelope demo \[options\]/);
    assert.match(help.stdout, /--store <url>/);
  });
});
