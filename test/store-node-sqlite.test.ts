// The SQLite store on Node's built-in node:sqlite (what Node 22.13+ uses, with no native build): the same contract,
// replica and lock suites that store-sqlite*.test.ts run on better-sqlite3. On a Node without node:sqlite (20, as
// here) they run in a child process on a Node 22 binary from the npm registry (./helpers/node22.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { hasNodeSqlite, node22 } from './helpers/node22.js';

const run = promisify(execFile);
const SUITES = ['store-sqlite.test.js', 'store-sqlite-lock.test.js'].map((f) => fileURLToPath(new URL(f, import.meta.url)));

describe('sqlite store on node:sqlite', () => {
  it('passes the store contract, the replica contract and the lock suite', { timeout: 600_000 }, async () => {
    const node = hasNodeSqlite() ? process.execPath : await node22();
    const { stdout: version } = await run(node, ['--version']);
    assert.ok(Number(/^v(\d+)/.exec(version)![1]) >= 22, version);
    // Without the runner's NODE_TEST_CONTEXT, the child reports in TAP on its stdout rather than to this runner.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const result = await run(node, ['--test', '--test-reporter=tap', '--test-concurrency=1', ...SUITES], {
      env: { ...env, ENVELOPE_SQLITE_DRIVER: 'node:sqlite', NODE_NO_WARNINGS: '1' },
      maxBuffer: 64 << 20,
    }).catch((e: { stdout: string; stderr: string; code: number }) => assert.fail(`node ${version.trim()}: suites failed (exit ${e.code})\n${e.stdout.split('\n').filter((l) => /not ok|error|Error/.test(l)).join('\n')}\n${e.stderr}`));
    const count = (name: string): number => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(result.stdout)?.[1] ?? -1);
    assert.equal(count('fail'), 0);
    assert.ok(count('pass') >= 21, `${count('pass')} passed on node:sqlite`);
    // The store really ran on node:sqlite: a Node 22 child cannot even load the better-sqlite3 built for Node 20.
  });
});
