// A scripted multi-agent job through the gateway with the official Anthropic SDK, like `envelope demo`: an
// orchestrator plans, research (advisory) and drafting (hard) run side by side, QA (approval) pauses and waits
// for someone to approve more, then the orchestrator synthesises. Each agent tallies the usage the SDK saw, so a
// test can check the ledger (and the page) against what the provider reported.
import type Anthropic from '@anthropic-ai/sdk';
import { DEMO_MODEL, demoAgents, runAgent, type AgentSpec } from '../../src/demo/agents.js';
import { fromAnthropic, LoopMeter } from './loop-meter.js';

/** An agent of the job: the demo's own. */
export type JobAgent = AgentSpec;

export interface AgentTally {
  taskId: string;
  calls: number;
  /** input + cache write + cache read + output, summed over the calls the SDK saw succeed. */
  tokens: number;
  /** What the loop meter makes of those calls (the ledger's `used`). */
  charged: number;
  pauses: number;
  /** Approvals after which the very next call succeeded. */
  resumed: number;
  refusal: string | null;
  finalText: string;
}

export const JOB_MODEL = DEMO_MODEL;

export const jobAgents = demoAgents;

const tokensOf = (u: Anthropic.Usage): number =>
  u.input_tokens + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0) + u.output_tokens;

/** One agent's tool loop (the demo's own), tallied. `onPaused` resolves once more budget was approved; the agent then retries. */
export async function runJobAgent(
  client: Anthropic,
  a: JobAgent,
  onPaused: (taskId: string, message: string) => Promise<void>,
  tally: AgentTally = { taskId: a.taskId, calls: 0, tokens: 0, charged: 0, pauses: 0, resumed: 0, refusal: null, finalText: '' },
): Promise<AgentTally> {
  let approved = false;
  const meter = new LoopMeter();
  const result = await runAgent(client, a, {
    afterCall: (_spec, message) => {
      tally.calls++;
      if (approved) tally.resumed++;
      approved = false;
      tally.tokens += tokensOf(message.usage);
      tally.charged += meter.charge(fromAnthropic(message.usage));
    },
    onPaused: async (spec, text) => {
      tally.pauses++;
      await onPaused(spec.taskId, text);
      approved = true;
    },
  });
  if (result.refusal !== null) tally.refusal = result.refusal;
  else tally.finalText = result.finalText;
  return tally;
}

/** The whole job; returns each task's tally (the orchestrator's two runs in one). */
export async function runJob(client: Anthropic, run: string, onPaused: (taskId: string, message: string) => Promise<void>): Promise<Map<string, AgentTally>> {
  const agents = jobAgents(run);
  const plan = await runJobAgent(client, agents.orchestrator, onPaused);
  const [research, drafting] = await Promise.all([runJobAgent(client, agents.research, onPaused), runJobAgent(client, agents.drafting, onPaused)]);
  const qa = await runJobAgent(client, agents.qa, onPaused);
  await runJobAgent(client, { ...agents.orchestrator, job: 'job: 1 subtask' }, onPaused, plan);
  return new Map([plan, research, drafting, qa].map((t) => [t.taskId, t]));
}
