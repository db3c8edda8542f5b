// `envelope sim`: the simulated provider alone.
import { Option, type Command } from 'commander';
import { DEFAULT_SIM_OPTIONS } from '../../sim/context.js';
import { startSim } from '../../sim/server.js';
import { intArg } from '../options.js';

export function registerSim(program: Command): void {
  program
    .command('sim')
    .description('start the simulated Anthropic + OpenAI provider (deterministic usage, scripted agent)')
    .addOption(new Option('--port <n>', 'port to listen on').env('ENVELOPE_PORT').default(8788).argParser(intArg('--port')))
    .addOption(new Option('--host <host>', 'address to listen on').env('ENVELOPE_HOST').default('127.0.0.1'))
    .addOption(new Option('--output-tokens <n>', 'output tokens per answer (header x-sim-output-tokens overrides)').default(DEFAULT_SIM_OPTIONS.outputTokens).argParser(intArg('--output-tokens')))
    .addOption(new Option('--latency-ms <ms>', 'delay before the first byte').default(0).argParser(intArg('--latency-ms')))
    .addOption(new Option('--chunk-delay-ms <ms>', 'delay between stream events').default(0).argParser(intArg('--chunk-delay-ms')))
    .addOption(new Option('--cache-min-tokens <n>', 'smallest cacheable prompt prefix').default(DEFAULT_SIM_OPTIONS.cacheMinTokens).argParser(intArg('--cache-min-tokens')))
    .action(async (o: { port: number; host: string; outputTokens: number; latencyMs: number; chunkDelayMs: number; cacheMinTokens: number }) => {
      const sim = await startSim({ outputTokens: o.outputTokens, latencyMs: o.latencyMs, chunkDelayMs: o.chunkDelayMs, cacheMinTokens: o.cacheMinTokens }, o.port, o.host);
      process.stdout.write(`listening on ${sim.url}\n`);
      const stop = async (): Promise<void> => {
        await sim.close();
        process.exit(0);
      };
      process.once('SIGTERM', () => void stop());
      process.once('SIGINT', () => void stop());
    });
}
