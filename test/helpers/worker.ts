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


export const TENANT_WORKER = fileURLToPath(new URL('./tenant-worker.js', import.meta.url));

export interface TenantWorkerResult {
  settled: number;
  limited: number;
  refused: number;
}

/** Runs test/helpers/tenant-worker.js in its own process and returns what it saw. */
export function runTenantWorker(args: string[]): Promise<TenantWorkerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TENANT_WORKER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out.trim().split('\n').at(-1)!) as TenantWorkerResult);
      else reject(new Error(`tenant worker exited ${code}: ${err}`));
    });
  });
}
