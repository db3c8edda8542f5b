// Every command of the CLI; add a file and a line here.
import type { Command } from 'commander';
import { registerCalibrate } from './calibrate.js';
import { registerReport } from './report.js';
import { registerRuns } from './runs.js';
import { registerTasks } from './tasks.js';

export function registerCommands(program: Command): void {
  registerTasks(program);
  registerRuns(program);
  registerCalibrate(program);
  registerReport(program);
}
