// `envelope demo`: the main job a new user runs first.
import { Option, type Command } from 'commander';
import { runDemo } from '../../demo/run.js';
import { intArg, storeOption } from '../options.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('an orchestrator with research, drafting and QA sub-agents on the simulated provider (through the gateway and in-process), live, with a report')
    .addOption(storeOption())
    .addOption(new Option('--latency-ms <ms>', 'simulated model latency per call').default(250).argParser(intArg('--latency-ms')))
    .action(async (o: { store: string; latencyMs: number }) => {
      await runDemo({ store: o.store, latencyMs: o.latencyMs });
    });
}
