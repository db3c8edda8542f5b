// The SQLite store on Node's built-in node:sqlite (what Node 22.13+ uses, with no native build): the same contract,
// replica and lock suites that store-sqlite*.test.ts run on better-sqlite3. On a Node without node:sqlite (20, as
// here) they run in a child process on a Node 22 binary from the npm registry (./helpers/node22.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

describe('sqlite store on Node 20 without better-sqlite3 built', () => {
  it('says what to approve, instead of failing in the binding loader', async () => {
    // What an install that skipped better-sqlite3's install script leaves: its JavaScript, no native build.
    const dir = mkdtempSync(join(tmpdir(), 'envelope-nobinding-'));
    const hook = join(dir, 'no-binding.cjs');
    writeFileSync(hook, `const M = require('node:module'); const load = M._load;
M._load = function (request, ...rest) {
  if (request === 'bindings') return () => { throw new Error('Could not locate the bindings file. Tried: (none)'); };
  return load.call(this, request, ...rest);
};`);
    const script = `import { openStore } from ${JSON.stringify(new URL('../src/store/open.js', import.meta.url).href)};
await openStore('sqlite:${join(dir, 'x.db')}').then(() => console.log('opened'), (e) => console.log(e.code + ': ' + e.message));`;
    const { stdout } = await run(process.execPath, ['--require', hook, '--input-type=module', '-e', script], {
      env: { ...process.env, ENVELOPE_SQLITE_DRIVER: 'better-sqlite3' },
    });
    assert.match(stdout, /^store_unavailable: the SQLite store needs better-sqlite3 on Node v\d+\.\d+\.\d+, and it did not load \(Could not locate the bindings file\. Tried: \(none\)\)\. Approve its install script \(npm 12 skips unapproved ones: npm install-scripts approve better-sqlite3\) and reinstall, or run Node 22\.13 or later/);
  });
});
