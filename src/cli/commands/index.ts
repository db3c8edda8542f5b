// Every command of the CLI; add a file and a line here.
import type { Command } from 'commander';
import { registerCalibrate } from './calibrate.js';
import { registerDemo } from './demo.js';
import { registerPrices } from './prices.js';
import { registerReport } from './report.js';
import { registerRuns } from './runs.js';
import { registerServe } from './serve.js';
import { registerSim } from './sim.js';
import { registerTasks } from './tasks.js';
import { registerTenants } from './tenants.js';
import { registerTrial } from './trial.js';

export function registerCommands(program: Command): void {
  registerCalibrate(program);
  registerDemo(program);
  registerPrices(program);
  registerReport(program);
  registerRuns(program);
  registerServe(program);
  registerSim(program);
  registerTasks(program);
  registerTenants(program);
  registerTrial(program);
}
