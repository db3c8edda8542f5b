// `envelope trial`: runs one scripted agent job through the gateway pipeline at each budget and policy asked for, on
// a ledger of its own, against the simulator (deterministic: a regression check) or a real upstream with the user's
// key (how a model responds to budgets, before choosing them), and measures how each run ended.
import { DEFAULT_BUDGET_CONFIG } from '../budget/config.js';
import type { Meter, Policy } from '../budget/types.js';
import { buildGateway } from '../gateway/server.js';
import { Ledger } from '../ledger/ledger.js';
import { startSim } from '../sim/server.js';
import { openStore } from '../store/open.js';
import { runTrialAgent, type AgentRun, type Ending } from './agent.js';
import type { TrialJob } from './job.js';

export type TrialPolicy = Exclude<Policy, 'measure'>;

export interface TrialOptions {
  job: TrialJob;
  budgets: number[];
  policies: TrialPolicy[];
  meter: Meter;
  /** How calls are admitted (BudgetConfig.admission): `whole-body` measures the older rules beside the current ones. */
  admission: 'projected' | 'whole-body';
  /** A real provider (its base URL as its SDK takes it, and the caller's key); null: the built-in simulator. */
  upstream: { url: string; apiKey: string } | null;
  /** Simulator only: the scripted agent ignores the countdown (how far enforcement alone lets it go). */
  ignoresCountdown?: boolean;
  /** A store for the trial's ledger (default: memory). */
  store?: string;
  /** Told after every model call, and when a run ends. */
  onProgress?(p: TrialProgress): void;
}

export interface TrialProgress {
  run: number;
  runs: number;
  budget: number;
  policy: TrialPolicy;
  calls: number;
  done: boolean;
}

export interface TrialResult {
  budget: number;
  policy: TrialPolicy;
  meter: Meter;
  admission: TrialOptions['admission'];
  calls: number;
  /** Tool calls answered, over all agents, and what the job asked for (the simulator's subtasks). */
  subtasksDone: number;
  subtasksAsked: number;
  used: number;
  utilization: number;
  /** Ledger units over the total (0 when within it). */
  overrun: number;
  /** How many agents ended each way. */
  ended: Record<Ending, number>;
  agents: AgentRun[];
}

const ENDINGS: Ending[] = ['report', 'refused', 'paused', 'turn_limit', 'error'];

let trialCounter = 0;

export async function runTrial(o: TrialOptions): Promise<TrialResult[]> {
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const sim = o.upstream ? null : await startSim({});
    if (sim) closers.push(() => sim.close());
    const ledger = new Ledger(await openStore(o.store ?? 'memory:'), { config: { admission: o.admission } });
    closers.push(() => ledger.shutdown());
    // The upstream the job's dialect goes to: the user's (a base URL as its SDK takes it), or the simulator.
    const real = (dialect: TrialJob['dialect']): string | undefined => (o.upstream && o.job.dialect === dialect ? o.upstream.url : undefined);
    const gateway = buildGateway(ledger, {
      ...(real('anthropic') ?? sim ? { anthropicUrl: real('anthropic') ?? sim!.url } : {}),
      ...(real('openai') ?? sim ? { openaiUrl: real('openai') ?? `${sim!.url}/v1` } : {}),
      logLevel: 'silent',
    });
    closers.push(() => gateway.close());
    const url = await gateway.listen(0, '127.0.0.1');
    const results: TrialResult[] = [];
    const runs = o.budgets.length * o.policies.length;
    for (const budget of o.budgets) {
      for (const policy of o.policies) {
        results.push(await runOne(o, ledger, url, sim !== null, budget, policy, results.length + 1, runs));
      }
    }
    return results;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  }
}

async function runOne(o: TrialOptions, ledger: Ledger, url: string, simulated: boolean, budget: number, policy: TrialPolicy, run: number, runs: number): Promise<TrialResult> {
  const { job } = o;
  const root = `trial-${job.name}-${budget}-${policy}-${++trialCounter}`;
  const common = { 'x-envelope-policy': policy, 'x-envelope-meter': o.meter, 'x-envelope-label': job.name };
  const sim = (outputTokens: number): Record<string, string> =>
    simulated ? { 'x-sim-output-tokens': String(outputTokens), ...(o.ignoresCountdown ? { 'x-sim-agent': 'ignores-budget' } : {}) } : {};
  // The simulator's agent reads the job's size from its first message.
  const prompt = (text: string, subtasks: number): string => (simulated ? `${text}\n\njob: ${subtasks} subtasks` : text);
  let calls = 0;
  const progress = (done: boolean): void => o.onProgress?.({ run, runs, budget, policy, calls, done });
  const target = { url, apiKey: o.upstream?.apiKey ?? 'sk-trial', onCall: () => (calls++, progress(false)) };

  let agents: AgentRun[];
  let subtasksAsked: number;
  if (job.agents.length === 0) {
    subtasksAsked = job.subtasks;
    agents = [
      await runTrialAgent(job, {
        name: job.name,
        taskId: root,
        headers: { 'x-envelope-task': root, 'x-envelope-budget': String(budget), ...common, ...sim(job.outputTokens) },
        prompt: prompt(job.prompt, job.subtasks),
        outputTokens: job.outputTokens,
      }, target),
    ];
  } else {
    // Sub-agents side by side, each in its own envelope under the job's.
    await ledger.createTask({ id: root, total: budget, policy, meter: o.meter, label: job.name });
    subtasksAsked = job.agents.reduce((s, a) => s + (a.subtasks ?? job.subtasks), 0);
    agents = await Promise.all(
      job.agents.map((a) => {
        const subtasks = a.subtasks ?? job.subtasks;
        const outputTokens = a.outputTokens ?? job.outputTokens;
        const total = Math.max(DEFAULT_BUDGET_CONFIG.minimumTokens, Math.floor(budget * a.budgetShare));
        return runTrialAgent(job, {
          name: a.name,
          taskId: `${root}/${a.name}`,
          headers: { 'x-envelope-task': `${root}/${a.name}`, 'x-envelope-parent': root, 'x-envelope-budget': String(total), ...common, 'x-envelope-label': a.name, ...sim(outputTokens) },
          prompt: prompt(a.prompt ?? job.prompt, subtasks),
          outputTokens,
        }, target);
      }),
    );
  }
  progress(true);
  const row = await ledger.findTask(root);
  const used = row?.used ?? 0;
  const ended = Object.fromEntries(ENDINGS.map((e) => [e, agents.filter((a) => a.ended === e).length])) as Record<Ending, number>;
  return {
    budget,
    policy,
    meter: o.meter,
    admission: o.admission,
    calls: agents.reduce((s, a) => s + a.calls, 0),
    subtasksDone: agents.reduce((s, a) => s + a.toolCalls, 0),
    subtasksAsked,
    used,
    utilization: used / budget,
    overrun: Math.max(0, used - budget),
    ended,
    agents,
  };
}
