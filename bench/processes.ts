// Starts the envelope CLI (or any Node server) as a child process and waits for its `listening on` line.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export interface RunningProcess {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
}

export function startProcess(argv: string[], ready: RegExp = /listening on (http:\/\/[^\s"]+)/, env: Record<string, string> = {}, cwd?: string): Promise<RunningProcess> {
  const child = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')}: not ready within 30 s; stderr: ${err}`)), 30_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] ?? '', stdout: () => out, stderr: () => err });
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited with ${code}: ${err}`));
    });
  });
}

export const startCli = (args: string[], env: Record<string, string> = {}, cwd?: string): Promise<RunningProcess> => startProcess([CLI, ...args], undefined, env, cwd);

export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** A loopback port nothing listens on (free right now). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}
