// The CLI as a real child process, for tests (the same starter the benchmarks use).
import type { ChildProcess } from 'node:child_process';
import { startCli, stopProcess, type RunningProcess } from '../../bench/processes.js';

export { startCli };
export type RunningCli = RunningProcess;
export const kill9 = (child: ChildProcess): Promise<void> => stopProcess(child, 'SIGKILL');
