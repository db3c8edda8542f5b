#!/usr/bin/env node
// `envelope` — one command per file under ./commands; each registers itself on the program.
import { Command } from 'commander';
import { registerCommands } from './commands/index.js';
import { reportError } from './output.js';

const program = new Command('envelope')
  .description('Task budgets for LLM agents: one token or dollar envelope per agentic run, for every model.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');

registerCommands(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  reportError(e);
  process.exitCode = 1;
});
