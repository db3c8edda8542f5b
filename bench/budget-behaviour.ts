// How agent runs end under budgets: the trial's jobs (docs/trial/) on the simulator's scripted agent, at each policy
// and several budgets, under today's admission (loop meter, projected countdown) and the older one (billed meter,
// whole-body estimates) side by side in one run; then an agent that ignores the countdown, on hard budgets.
import { fileURLToPath } from 'node:url';
import { loadJob, type TrialJob } from '../src/trial/job.js';
import { runTrial, type TrialPolicy, type TrialResult } from '../src/trial/run.js';
import type { BenchRun } from './section.js';

const JOBS: Array<{ file: string; what: string; budgets: number[] }> = [
  { file: 'bug-fix.json', what: 'tool loop, 3 KB results', budgets: [20_000, 30_000, 50_000] },
  { file: 'growing-tools.json', what: 'tool loop, results growing 1 KB a call', budgets: [20_000, 30_000, 50_000] },
  { file: 'agent-cli.json', what: '76 KB cached system prompt, as agent CLIs send', budgets: [20_000, 30_000, 50_000] },
  { file: 'parallel-agents.json', what: 'three sub-agents side by side', budgets: [60_000, 90_000, 150_000] },
];
const POLICIES: TrialPolicy[] = ['hard', 'approval', 'advisory'];
const SETTINGS = [
  { meter: 'loop' as const, admission: 'projected' as const, name: 'loop meter, projected countdown' },
  { meter: 'billed' as const, admission: 'whole-body' as const, name: 'billed meter, whole-body estimate (before)' },
];

const pct = (x: number): string => `${Math.round(x * 100)}%`;
const range = (xs: number[]): string => (Math.min(...xs) === Math.max(...xs) ? pct(xs[0]!) : `${pct(Math.min(...xs))}–${pct(Math.max(...xs))}`);

function row(job: TrialJob, what: string, policy: TrialPolicy, setting: string, rs: TrialResult[]): (string | number)[] {
  const agents = rs.reduce((s, r) => s + r.agents.length, 0);
  const reports = rs.reduce((s, r) => s + r.ended.report, 0);
  const stopped = rs.reduce((s, r) => s + r.ended.refused + r.ended.paused, 0);
  const overrun = Math.max(...rs.map((r) => r.overrun / r.budget));
  return [`${job.name} (${what})`, policy, setting, `${reports} of ${agents}`, range(rs.map((r) => r.utilization)), overrun > 0 ? pct(overrun) : '0', stopped];
}

export const run: BenchRun = async ({ quick }) => {
  const rows: (string | number)[][] = [];
  const ignoring: (string | number)[][] = [];
  const dir = fileURLToPath(new URL('../../docs/trial/', import.meta.url));
  for (const spec of JOBS) {
    const job = await loadJob(`${dir}${spec.file}`);
    const budgets = quick ? spec.budgets.slice(0, 1) : spec.budgets;
    for (const policy of POLICIES) {
      for (const s of SETTINGS) {
        const rs = await runTrial({ job, budgets, policies: [policy], meter: s.meter, admission: s.admission, upstream: null });
        rows.push(row(job, spec.what, policy, s.name, rs));
      }
    }
    if (job.agents.length === 0) {
      const rs = await runTrial({ job, budgets, policies: ['hard'], meter: 'loop', admission: 'projected', upstream: null, ignoresCountdown: true });
      const refused = rs.filter((r) => r.ended.refused > 0);
      ignoring.push([
        job.name,
        budgets.map((b) => b.toLocaleString('en-US')).join(', '),
        `${refused.length} of ${rs.length}`,
        refused.length ? range(refused.map((r) => r.utilization)) : '-',
        Math.max(...rs.map((r) => r.used - r.budget)) > 0 ? 'yes' : 'no',
      ]);
    }
  }
  return [
    {
      title: 'Budget behaviour: how agent runs end',
      method:
        'The jobs of `docs/trial/` (`envelope trial FILE --compare` runs the same) through the gateway in front of the simulator, whose scripted agent heeds the countdown: it stops starting work once told to wrap up and reports when told to stop. ' +
        `Budgets per job: ${JOBS.map((j) => `${j.file.replace('.json', '')} ${j.budgets.map((b) => b / 1000 + 'k').join('/')}`).join('; ')}${quick ? ' (quick: the first only)' : ''}. ` +
        'Each policy once under today’s admission and once under the older one, in this run. "Ended by report": agents whose last call was their own answer (never a 402); utilisation is used ÷ total of the job’s task over its budgets; refused or paused: agents a budget stopped.',
      header: ['job', 'policy', 'admission', 'ended by report', 'utilisation', 'overrun (max)', 'refused or paused'],
      rows,
      notes: [
        'Goal (issue 12): an agent that heeds the countdown ends with its own report on hard, approval and advisory budgets, uses at least 70 % of a hard budget its job can fill, never more than 100 %.',
        'Under the older admission every call was estimated from its whole body (÷ 3 bytes) and charged every billed token, so re-read context filled the budget: refusals came first.',
      ],
    },
    {
      title: 'Budget behaviour: an agent that ignores the countdown',
      method: 'The single-agent jobs above on hard budgets, today’s admission, the simulator’s agent told to ignore every countdown (`envelope trial --ignore-countdown`): only the refusal stops it.',
      header: ['job', 'budgets', 'runs refused', 'used at the refusal', 'over the total'],
      rows: ignoring,
      notes: [
        'Goal (SPEC §8): an agent that ignores the countdown spends at least 95 % of a hard total before its first refusal, never more than 100 %. A job that fits its budget ends by its report instead.',
        'Below 95 %, a refusal is a call that really did not fit: its input counted exactly (the provider’s count endpoint, asked only at the edge) plus a useful output floor was more than was left, as with growing-tools’ last tool results of 10 KB and more.',
      ],
    },
  ];
};
