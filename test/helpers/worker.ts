// Runs test/helpers/ledger-worker.js in its own process.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const WORKER = fileURLToPath(new URL('./ledger-worker.js', import.meta.url));

export function runWorker(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      const m = /done (\d+)/.exec(out);
      if (code === 0 && m) resolve(Number(m[1]));
      else reject(new Error(`worker exited ${code}: ${err}`));
    });
  });
}

