// `envelope demo`: the gateway and the simulated provider in this process, on the embedded store; an
// orchestrator hands research, drafting and QA to sub-agents, each in its own envelope, and reports. Research
// and drafting call the model through the gateway, QA in-process through task.wrap(): one ledger for both.
import { resolve } from 'node:path';
import { formatAmount } from '../budget/rules.js';
import type { TaskView } from '../budget/view.js';
import { bar, LiveBlock } from '../cli/progress.js';
import { table } from '../cli/table.js';
import { buildGateway } from '../gateway/server.js';
import { Ledger } from '../ledger/ledger.js';
import { startSim, type Sim } from '../sim/server.js';
import { Envelope } from '../sdk/envelope.js';
import { openStore, redactUrl } from '../store/open.js';
import { DEMO_MODEL, demoAgents, runAgent, type AgentSpec } from './agents.js';

export interface DemoOptions {
  store: string;
  latencyMs: number;
}

export async function runDemo(opts: DemoOptions): Promise<void> {
  const { default: Anthropic } = await import('@anthropic-ai/sdk').catch(() => {
    throw new Error('the demo drives agents with the official Anthropic SDK: run `npm install` in the envelope folder first');
  });
  // Opened in this order and closed in reverse, whatever happens: a failed demo leaves nothing running.
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const ledger = new Ledger(await openStore(opts.store));
    closers.push(() => ledger.shutdown());
    const sim = await startSim({ latencyMs: opts.latencyMs });
    closers.push(() => sim.close());
    const gateway = buildGateway(ledger, { anthropicUrl: sim.url, logLevel: 'silent' });
    closers.push(() => gateway.close());
    const url = await gateway.listen(0, '127.0.0.1');
    await play(opts, Anthropic, ledger, sim, url);
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  }
}

async function play(opts: DemoOptions, Anthropic: typeof import('@anthropic-ai/sdk').default, ledger: Ledger, sim: Sim, url: string): Promise<void> {
  const live = new LiveBlock();
  const run = `demo-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}`;
  live.log(`Envelope demo ${run}: gateway ${url} → simulated provider ${sim.url}, store ${redactUrl(opts.store)}\n`);

  const client = new Anthropic({ apiKey: 'sk-ant-demo', baseURL: url, maxRetries: 0 });
  const team = demoAgents(run);
  const orchestrator = team.orchestrator;
  const agents = [team.research, team.drafting, team.qa];

  // What each task's model was last told, so a change of wording is shown once.
  const lastAdvice = new Map<string, string>();
  const redraw = async (): Promise<void> => {
    const root = await ledger.findTask(run);
    if (!root) return;
    const children = await ledger.listTasks({ parentId: run });
    live.draw([bar(ledger.view(root)), ...children.map((c) => bar(ledger.view(c), '  '))]);
  };
  const afterCall = (spec: AgentSpec): void => {
    // The countdown the model received is the last block of the request that reached the provider.
    const sent = [...sim.context.log].reverse().find((r) => r.raw.includes(`You are the ${spec.role} agent`));
    const text = sent ? countdownIn(sent.raw) : null;
    if (text) {
      const advice = text.replace(/^.*remaining\.\s*/, '');
      if (advice && lastAdvice.get(spec.taskId) !== advice) live.log(`  ${spec.role.padEnd(12)} ← model read: "${text}"`);
      lastAdvice.set(spec.taskId, advice);
    }
    void redraw();
  };
  const hooks = {
    afterCall,
    async onPaused(spec: AgentSpec, message: string) {
      live.log(`  ${spec.role.padEnd(12)} ⏸ ${message.replace(/; approve more.*/, '').replace(/^task \S+ /, '')}`);
      live.log(`  ${'lead'.padEnd(12)} ✔ approves 12,000 more tokens (envelope approve ${spec.taskId} --add 12000)`);
      await ledger.approve(spec.taskId, 12_000);
      await redraw();
    },
  };
  const ticker = setInterval(() => void redraw(), 150);
  const started = Date.now();
  try {
    const plan = await runAgent(client, orchestrator, hooks);
    const envelopes = agents.map((a) => `${a.role} ${a.budget.toLocaleString('en-US')} ${a.policy}`).join(' · ');
    live.log(`  orchestrator plans the work (${plan.calls} calls), then hands out envelopes: ${envelopes}\n`);
    const [research, drafting] = await Promise.all([runAgent(client, agents[0]!, hooks), runAgent(client, agents[1]!, hooks)]);
    // QA runs in this process instead: task.wrap() puts the same pipeline on the SDK client, on the same ledger.
    const qaSpec = agents[2]!;
    const qaTask = await new Envelope(ledger, 0).task({ id: qaSpec.taskId, parent: run, label: qaSpec.label, total: qaSpec.budget, policy: qaSpec.policy });
    live.log(`  qa runs in-process: qaTask.wrap(new Anthropic({ baseURL: ${sim.url} })), no gateway hop; its model ignores the countdown\n`);
    const qa = await runAgent(qaTask.wrap(new Anthropic({ apiKey: 'sk-ant-demo', baseURL: sim.url, maxRetries: 0 })), qaSpec, hooks);
    const wrap = await runAgent(client, { ...orchestrator, system: `${orchestrator.system} Now synthesise the report.` }, hooks);
    for (const r of [research, drafting, qa, wrap]) {
      live.log(`  ${r.role.padEnd(12)} finished after ${r.calls} calls: ${r.refusal ? `refused: ${r.refusal}` : firstSentence(r.finalText)}`);
    }
  } finally {
    clearInterval(ticker);
  }
  await redraw();
  live.flush();

  for (const a of agents) await ledger.close(a.taskId);
  await ledger.close(run);
  const views: TaskView[] = [];
  for (const id of [run, ...agents.map((a) => a.taskId)]) views.push(ledger.view(await ledger.task(id)));
  const rows = await Promise.all(
    views.map(async (v) => {
      const events = await ledger.events({ taskId: v.id });
      const kinds = events.filter((e) => e.type !== 'closed').map((e) => (e.type === 'threshold_crossed' ? `≥${Math.round(Number(e.data.threshold) * 100)}%` : e.type));
      return [v.id, `${formatAmount(v.unit, v.used).replace(' tokens', '')} / ${formatAmount(v.unit, v.total)}`, `${Math.round(v.utilization * 100)}%`, v.outcome ?? v.state, `$${v.costUsd.toFixed(4)}`, v.calls, kinds.join(' ') || '-'];
    }),
  );
  console.log(`\nReport (${((Date.now() - started) / 1000).toFixed(1)} s, model ${DEMO_MODEL}, prices from the built-in table)\n`);
  console.log(table(['task', 'used / total', 'used', 'outcome', 'cost', 'calls', 'events'], rows));
  const where = opts.store.startsWith('sqlite:') ? resolve(opts.store.slice('sqlite:'.length)) : redactUrl(opts.store);
  console.log(`\nThe ledger is kept in ${where}. Look again with:`);
  console.log(`  envelope tasks show ${run} --store ${opts.store}`);
  console.log(`  envelope tasks ls --store ${opts.store}`);
  console.log(`  envelope serve --store ${opts.store}   # then open http://127.0.0.1:8787/ for the dashboard`);
}

/** The countdown text the gateway appended to a request body, if any. */
function countdownIn(raw: string): string | null {
  const m = /\[Envelope task budget\][^"]*/.exec(raw);
  return m ? m[0] : null;
}

const firstSentence = (text: string): string => text.split(/(?<=\.)\s/)[0] ?? text;
