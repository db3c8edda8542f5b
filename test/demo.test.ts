// `envelope demo` as a new user runs it (a real child process, on a fresh SQLite file): sub-agents through the
// gateway and in-process, the countdown the model read, a sub-agent wrapping up, QA paused and approved, the report.
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

  it('shows the countdown each sub-agent read, the research agent wrapping up, and QA paused then approved', () => {
    assert.match(stdout, /research +← model read: "\[Envelope task budget\] 35,527 of 50,000 tokens used \(71%\); 14,473 tokens remaining\. Scope remaining work tightly\."/);
    assert.match(stdout, /research +← model read: "\[Envelope task budget\] 42,757 of 50,000 tokens used \(85%\); 7,243 tokens remaining\. Finish in-flight work and start nothing new\."/);
    assert.match(stdout, /research +finished after 10 calls: Wrapping up: 9 of 12 subtasks complete; starting nothing new\./);
    assert.match(stdout, /qa runs in-process: qaTask\.wrap\(new Anthropic/);
    assert.equal(stdout.match(/qa +⏸ is paused for approval/g)?.length, 2);
    assert.equal(stdout.match(/lead +✔ approves 12,000 more tokens/g)?.length, 2);
    assert.match(stdout, /drafting +finished after 6 calls: All 5 subtasks complete\./);
    assert.match(stdout, /qa +finished after 7 calls: All 6 subtasks complete\./);
  });

  it('ends with a report per task and says where the ledger is kept', () => {
    const rows = stdout.split('\n').filter((l) => /^demo-\d+/.test(l) && /\$\d/.test(l));
    assert.deepEqual(
      rows.map((l) => l.split(/ {2,}/).slice(1, 6)),
      [
        ['128,002 / 150,000 tokens', '85%', 'completed', '$0.6108', '29'],
        ['50,608 / 50,000 tokens', '101%', 'exhausted', '$0.2238', '10'],
        ['25,037 / 40,000 tokens', '63%', 'completed', '$0.1255', '6'],
        ['37,331 / 44,000 tokens', '85%', 'completed', '$0.1876', '7'],
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
        ['orchestrator', 'research', 'drafting', 'qa'].map((r) => [r, byRole.get(r)?.used, byRole.get(r)?.total, byRole.get(r)?.outcome]),
        [
          ['orchestrator', 128_002, 150_000, 'completed'],
          ['research', 50_608, 50_000, 'exhausted'],
          ['drafting', 25_037, 40_000, 'completed'],
          ['qa', 37_331, 44_000, 'completed'],
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
