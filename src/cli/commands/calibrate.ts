// `envelope calibrate`: percentiles of what each label spends, and the budget to give it next (SPEC §5).
import { Option, type Command } from 'commander';
import { EnvelopeError } from '../../budget/errors.js';
import type { Unit } from '../../budget/types.js';
import { Calibrator, HEADROOM, type Calibration, type LabelCalibration } from '../../insight/calibrate.js';
import { renderHistogram } from '../../insight/histogram.js';
import { resolveUpgrade } from '../../insight/tokenizer.js';
import { intArg, jsonOption, storeOption } from '../options.js';
import { printJson } from '../output.js';
import { fromOption, limitOption, printIssues, readRuns, type RunInputSummary } from '../run-input.js';
import { table } from '../table.js';

interface CalibrateFlags {
  from?: string;
  store: string;
  label?: string;
  limit: number;
  percentile: string;
  headroom: string;
  minimum: number;
  modelUpgrade?: string;
  bins: number;
  histogram: boolean;
  json?: boolean;
}

const HELP_AFTER = `
Percentiles are nearest-rank: the p-th percentile of n runs is the run at rank ceil(p/100 × n), so
"p90 = 41,000" reads "90 % of runs used at most 41,000 tokens".

Calibration does not learn from runs cut short by their own budget. Runs measured without a budget
("budgeted": false) are used when a label has any; else budgeted runs that finished inside their budget (runs that
were exhausted, paused, or used ≥ their total are left out); else, when every run was cut short, those runs as a
lower bound. Failed runs are left out. The "runs used" column says which.

Effort: high (well-specified, p90/p50 ≤ 1.5 and < 5 % exhausted) → budget at p75; xhigh (judgment, ≤ 2.5 and
< 20 %) → p90; otherwise max (open-ended) → p99. --percentile auto follows it.

Examples:
  envelope calibrate --from runs.jsonl
  envelope calibrate --percentile 90 --headroom test
  envelope calibrate --from runs.jsonl --model-upgrade claude-opus-4-6:claude-opus-4-7
  envelope calibrate --model-upgrade gpt-5:claude-opus-4-7=1.2 --json`;

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description('per label: p50/p75/p90/p99 of spend, exhaustion, and a recommended budget')
    .addOption(fromOption())
    .addOption(storeOption())
    .option('--label <label>', 'only this label')
    .addOption(limitOption())
    .option('--percentile <p>', 'recommend at this percentile (e.g. 90), or auto: the effort level’s', 'auto')
    .option(
      '--headroom <h>',
      `fraction added on top: a number (0.3 = 30 %), production (${HEADROOM.production}) or test (${HEADROOM.test}: runs measured in test sessions)`,
      'production',
    )
    .addOption(new Option('--minimum <tokens>', 'no token budget below this').argParser(intArg('--minimum')).default(20_000))
    .option('--model-upgrade <from:to>', 'scale runs on FROM by the tokenizer multiplier of FROM→TO (or FROM:TO=1.2)')
    .addOption(new Option('--bins <n>', 'histogram bins').argParser(intArg('--bins')).default(20))
    .option('--no-histogram', 'leave out the histograms')
    .addOption(jsonOption())
    .addHelpText('after', HELP_AFTER)
    .action(async (o: CalibrateFlags) => {
      const calibrator = new Calibrator({
        percentile: percentileOf(o.percentile),
        headroom: headroomOf(o.headroom),
        minimumTokens: o.minimum,
        upgrade: o.modelUpgrade ? resolveUpgrade(o.modelUpgrade) : null,
        histogramBins: o.bins,
      });
      const input = await readRuns(o, (r) => calibrator.add(r));
      const result = calibrator.finish();
      printIssues(input);
      if (o.json) return printJson({ ...result, input });
      console.log(renderCalibration(result, input, o.histogram));
    });
}

function percentileOf(v: string): number | 'auto' {
  if (v === 'auto') return 'auto';
  const n = Number(v.replace(/^p/i, ''));
  if (!Number.isFinite(n)) throw new EnvelopeError('invalid_request', `--percentile takes a number such as 90 (or p90, auto), got "${v}"`);
  return n;
}

/** A fraction (0.3), a percentage (30%), or a preset. */
function headroomOf(v: string): number {
  if (v === 'production' || v === 'test') return HEADROOM[v];
  const n = Number(v.replace(/%$/, ''));
  if (!Number.isFinite(n)) {
    throw new EnvelopeError('invalid_request', `--headroom takes a fraction (0.3), a percentage (30%), production or test; got "${v}"`);
  }
  return v.endsWith('%') ? n / 100 : n;
}

const amount = (unit: Unit, x: number): string =>
  unit === 'usd' ? `$${x.toFixed(x < 1 ? 4 : 2)}` : Math.round(x).toLocaleString('en-US');
const pct = (x: number | null): string => (x === null ? '–' : `${(x * 100).toFixed(1)}%`);

export function renderCalibration(c: Calibration, input: RunInputSummary, histograms: boolean): string {
  if (c.labels.length === 0) {
    return `no run records in ${input.source}${input.badLines ? ` (${input.badLines} bad lines skipped)` : ''}; runs are written when tasks close`;
  }
  const up = c.upgrade;
  const header = ['label', 'runs used', 'p50', 'p75', 'p90', 'p99', 'exhausted', '≥95%', 'current', 'effort', 'at', 'recommended'];
  if (up) header.push(`×${up.multiplier}`, 'after upgrade', '');
  const rows = c.labels.map((l) => {
    const row: (string | number)[] = [
      l.unit === 'usd' ? `${l.label} (usd)` : l.label,
      `${l.n.toLocaleString('en-US')} ${l.source}`,
      amount(l.unit, l.p50),
      amount(l.unit, l.p75),
      amount(l.unit, l.p90),
      amount(l.unit, l.p99),
      pct(l.exhaustionRate),
      pct(l.nearTotalShare),
      l.currentTotal === null ? '–' : amount(l.unit, l.currentTotal),
      l.effort.level,
      `p${l.percentile}`,
      `${amount(l.unit, l.recommendedTotal)}${l.minimumApplied ? ' (min)' : ''}`,
    ];
    if (up) {
      row.push(
        l.upgrade ? `${l.upgrade.runsScaled} runs` : '–',
        l.upgrade ? amount(l.unit, l.upgrade.recommendedTotal) : '–',
        l.upgrade?.tooTight ? 'TOO TIGHT' : '',
      );
    }
    return row;
  });
  const out = [
    `run records: ${input.records.toLocaleString('en-US')} from ${input.source}${input.badLines ? `, ${input.badLines} bad lines skipped` : ''}`,
    `percentiles: ${c.method}`,
    `recommended = p${c.percentile === 'auto' ? '(effort)' : c.percentile} × (1 + ${c.headroom}), rounded up to 1,000 tokens, never below ${c.minimumTokens.toLocaleString('en-US')}`,
  ];
  if (up) out.push(`model upgrade: ${up.from} → ${up.to}, tokenizer ×${up.multiplier} (${up.basis})`);
  out.push('', table(header, rows));
  const warnings = c.labels.flatMap((l) => l.warnings.map((w) => `  ${l.label}: ${w}`));
  if (warnings.length) out.push('', 'notes', ...warnings);
  if (histograms) for (const l of c.labels) out.push('', histogramBlock(l));
  return out.join('\n');
}

function histogramBlock(l: LabelCalibration): string {
  const markers = (['p50', 'p75', 'p90', 'p99'] as const).map((name) => ({ name, value: l[name] }));
  const title = `${l.label} — ${l.n.toLocaleString('en-US')} ${l.source} runs, ${l.unit === 'usd' ? 'USD' : 'tokens'} used`;
  return `${title}\n${renderHistogram(l.histogram, markers, (x) => amount(l.unit, x))}`;
}
