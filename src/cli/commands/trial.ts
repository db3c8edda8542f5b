// `envelope trial [job.json]`: how an agent job ends at each budget and policy — by the model's own report, or by a
// refusal — run through the gateway pipeline against the simulator or, with --upstream, a real provider.
import { Option, type Command } from 'commander';
import { EnvelopeError } from '../../budget/errors.js';
import type { Meter } from '../../budget/types.js';
import { loadJob, SAMPLE_JOB, type TrialJob } from '../../trial/job.js';
import { runTrial, type TrialPolicy, type TrialResult } from '../../trial/run.js';
import { jsonOption } from '../options.js';
import { printJson } from '../output.js';
import { LiveBlock } from '../progress.js';
import { table } from '../table.js';

const POLICIES: readonly TrialPolicy[] = ['hard', 'approval', 'advisory'];

function listOf<T extends string | number>(name: string, parse: (s: string) => T, allowed?: readonly T[]) {
  return (value: string): T[] => {
    const items = value.split(',').map((s) => s.trim()).filter(Boolean).map(parse);
    if (!items.length) throw new Error(`${name} needs at least one value`);
    for (const item of items) if (allowed && !allowed.includes(item)) throw new Error(`${name}: "${item}" is not one of ${allowed.join(', ')}`);
    return items;
  };
}

const tokens = (name: string) => (s: string): number => {
  if (!/^\d+$/.test(s)) throw new Error(`${name} takes whole numbers of tokens, got "${s}"`);
  return Number(s);
};

const n = (x: number): string => Math.round(x).toLocaleString('en-US');

/** How the runs ended, as a person reads it: "report", "refused", or a count of each for several agents. */
function ending(r: TrialResult): string {
  const parts = Object.entries(r.ended).filter(([, k]) => k > 0);
  if (r.agents.length === 1) return parts[0]![0].replace('_', ' ');
  return parts.map(([e, k]) => `${k} ${e.replace('_', ' ')}`).join(', ');
}

export function resultTable(results: TrialResult[]): string {
  return table(
    ['budget', 'policy', 'meter', 'subtasks', 'used', 'ended by', 'overrun', 'calls'],
    results.map((r) => [
      n(r.budget),
      r.policy,
      r.admission === 'whole-body' ? `${r.meter} (whole-body)` : r.meter,
      `${r.subtasksDone} of ${r.subtasksAsked}`,
      `${n(r.used)} (${Math.round(r.utilization * 100)}%)`,
      ending(r),
      r.overrun ? n(r.overrun) : '-',
      r.calls,
    ]),
  );
}

export function registerTrial(program: Command): void {
  program
    .command('trial [job]')
    .description('run an agent job (a JSON file; a sample bug fix without one) at several budgets and policies, and report how each run ended: by the model’s own report or by a refusal')
    .addOption(new Option('--budgets <tokens,…>', 'budgets to try').default([20_000, 30_000, 50_000], '20000,30000,50000').argParser(listOf('--budgets', tokens('--budgets'))))
    .addOption(new Option('--policies <list>', 'policies to try: hard, approval, advisory').default(['hard', 'approval', 'advisory'], 'hard,approval,advisory').argParser(listOf('--policies', (s) => s as TrialPolicy, POLICIES)))
    .addOption(new Option('--meter <meter>', 'how calls are counted').choices(['loop', 'billed']).default('loop'))
    .option('--compare', 'also run each budget under the older admission (whole-body estimates, the billed meter), side by side')
    .option('--ignore-countdown', 'simulator only: the scripted agent ignores the countdown (how far enforcement alone lets it go)')
    .addOption(new Option('--upstream <url>', 'a real provider instead of the simulator: its base URL as its SDK takes it (e.g. https://api.anthropic.com); the key comes from ANTHROPIC_API_KEY or OPENAI_API_KEY'))
    .addOption(jsonOption())
    .addHelpText('after', `
A job file is JSON: {"name", "dialect": "anthropic"|"openai", "model", "system", "systemRepeat", "cacheSystem",
"prompt", "maxTokens", "tools": [{"name", "description", "result", "resultBytes", "growBytes"}], "subtasks",
"outputTokens", "agents": [{"name", "budgetShare", "prompt", "subtasks"}], "turnsMax"}. Tools answer with their
canned result; "agents" run side by side, each in its own envelope under the job's. Examples: docs/trial/.`)
    .action(async (file: string | undefined, o: { budgets: number[]; policies: TrialPolicy[]; meter: Meter; compare?: boolean; ignoreCountdown?: boolean; upstream?: string; json?: boolean }) => {
      const job: TrialJob = file ? await loadJob(file) : SAMPLE_JOB;
      let upstream: { url: string; apiKey: string } | null = null;
      if (o.upstream) {
        const keyName = job.dialect === 'anthropic' ? 'ANTHROPIC_API_KEY' : 'OPENAI_API_KEY';
        const apiKey = process.env[keyName];
        if (!apiKey) throw new EnvelopeError('invalid_request', `--upstream needs your key in ${keyName} (it is sent to ${o.upstream} only, never stored)`);
        upstream = { url: o.upstream, apiKey };
      }
      if (o.ignoreCountdown && upstream) throw new EnvelopeError('invalid_request', '--ignore-countdown tells the simulator’s agent what to do; a real model decides for itself');
      const live = new LiveBlock(o.json ? process.stderr : process.stdout);
      const settings = [
        { meter: o.meter, admission: 'projected' as const },
        ...(o.compare ? [{ meter: 'billed' as const, admission: 'whole-body' as const }] : []),
      ];
      const results: TrialResult[] = [];
      for (const s of settings) {
        results.push(
          ...(await runTrial({
            job,
            budgets: o.budgets,
            policies: o.policies,
            ...s,
            upstream,
            ignoresCountdown: o.ignoreCountdown,
            onProgress: (p) => live.draw([`  ${s.admission === 'whole-body' ? 'older admission ' : ''}run ${p.run} of ${p.runs}: ${n(p.budget)} tokens, ${p.policy}: ${p.calls} calls${p.done ? ', done' : '…'}`]),
          })),
        );
      }
      live.draw([]);
      if (o.json) return printJson({ job: job.name, target: upstream ? upstream.url : 'simulator', results });
      console.log(`${job.name} on ${upstream ? upstream.url : 'the simulator'} (${job.dialect}, ${job.model})\n`);
      console.log(resultTable(results));
    });
}
