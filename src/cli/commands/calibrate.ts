// `envelope calibrate` and `envelope runs`: run records in, recommended budgets out.
import { Option, type Command } from 'commander';
import { calibrate, DEFAULT_CALIBRATE_OPTIONS, histogram, TOKENIZER_MULTIPLIERS, type LabelCalibration } from '../../insight/calibrate.js';
import { readRunsJsonl, runFromRecord, type RunInput } from '../../insight/run-records.js';
import { Ledger } from '../../ledger/ledger.js';
import { openStore } from '../../store/open.js';
import { jsonOption, numberArg, storeOption } from '../options.js';
import { printJson } from '../output.js';
import { table } from '../table.js';

async function loadRuns(o: { from?: string; store: string }): Promise<RunInput[]> {
  if (o.from) {
    const { runs, bad } = await readRunsJsonl(o.from);
    for (const b of bad.slice(0, 20)) process.stderr.write(`envelope: ${o.from}:${b.line}: skipped (${b.reason})\n`);
    if (bad.length > 20) process.stderr.write(`envelope: … and ${bad.length - 20} more bad lines skipped\n`);
    return runs;
  }
  const ledger = new Ledger(await openStore(o.store));
  try {
    return (await ledger.runs({})).map(runFromRecord);
  } finally {
    await ledger.shutdown();
  }
}

function upgradeOf(text: string | undefined, multiplier: number | undefined): { from: string; to: string; multiplier: number } | null {
  if (!text) return null;
  const [from, to] = text.split(':');
  if (!from || !to) throw new Error(`--model-upgrade takes FROM:TO, e.g. claude-opus-4-6:claude-opus-4-7; got "${text}"`);
  return { from, to, multiplier: multiplier ?? TOKENIZER_MULTIPLIERS[text] ?? 1 };
}

const fmt = (c: LabelCalibration, x: number | null): string =>
  x === null ? '—' : c.unit === 'usd' ? `$${x.toFixed(4)}` : Math.round(x).toLocaleString('en-US');
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description('percentiles of what each task type used, and the budget to set (nearest-rank percentiles)')
    .option('--from <file.jsonl>', 'run records as JSONL (default: the store)')
    .addOption(storeOption())
    .addOption(new Option('--percentile <p>', 'percentile the recommendation starts from').default(DEFAULT_CALIBRATE_OPTIONS.percentile).argParser(numberArg('--percentile')))
    .addOption(new Option('--headroom <fraction>', 'headroom over it: 0.3 production … 0.5 test measurements').default(DEFAULT_CALIBRATE_OPTIONS.headroom).argParser(numberArg('--headroom')))
    .option('--model-upgrade <from:to>', 'apply the tokenizer multiplier of a model upgrade and flag budgets now too tight')
    .option('--multiplier <x>', 'the tokenizer multiplier for --model-upgrade (default from the built-in table, else 1.0)', numberArg('--multiplier'))
    .option('--no-histogram', 'leave out the histogram per label')
    .addOption(jsonOption())
    .action(async (o: { from?: string; store: string; percentile: number; headroom: number; modelUpgrade?: string; multiplier?: number; histogram: boolean; json?: boolean }) => {
      if (!(o.percentile > 0 && o.percentile <= 100)) throw new Error('--percentile must be in (0, 100]');
      if (!(o.headroom >= 0 && o.headroom <= 2)) throw new Error('--headroom is a fraction, e.g. 0.3');
      const modelUpgrade = upgradeOf(o.modelUpgrade, o.multiplier);
      const runs = await loadRuns(o);
      const result = calibrate(runs, { percentile: o.percentile, headroom: o.headroom, modelUpgrade });
      if (o.json) {
        printJson({ method: 'nearest-rank', percentile: o.percentile, headroom: o.headroom, modelUpgrade, labels: result.map(({ sorted: _s, ...rest }) => rest) });
        return;
      }
      if (result.length === 0) {
        console.log('no run records yet: run some tasks (envelope demo) or pass --from runs.jsonl');
        return;
      }
      console.log(`Calibration of ${runs.length.toLocaleString('en-US')} runs: nearest-rank percentiles; recommended = p${o.percentile} × ${(1 + o.headroom).toFixed(2)}${modelUpgrade ? ` × ${modelUpgrade.multiplier} (${modelUpgrade.from} → ${modelUpgrade.to})` : ''}\n`);
      console.log(
        table(
          ['label', 'n', 'from', 'p50', 'p75', 'p90', 'p99', 'exhausted', '≥95 %', 'current', 'recommended', 'effort'],
          result.map((c) => [c.label, c.n, c.source + (c.censored ? ` (−${c.censored} cut short)` : ''), fmt(c, c.p50), fmt(c, c.p75), fmt(c, c.p90), fmt(c, c.p99), pct(c.exhaustionRate), pct(c.nearTotalRate), fmt(c, c.currentTotal), `${fmt(c, c.recommended)}${c.tooTight ? ' ⚠ too tight now' : ''}`, c.effort]),
        ),
      );
      if (o.histogram) {
        for (const c of result) console.log(`\n${c.label} (${c.unit} used per run)\n${histogram(c).join('\n')}`);
      }
    });

  program
    .command('runs')
    .description('the run records of closed tasks')
    .addOption(storeOption())
    .option('--jsonl', 'one JSON object a line (what calibrate --from reads)')
    .option('--label <label>', 'only this task type')
    .action(async (o: { store: string; jsonl?: boolean; label?: string }) => {
      const ledger = new Ledger(await openStore(o.store));
      try {
        const runs = await ledger.runs(o.label ? { label: o.label } : {});
        if (o.jsonl) for (const r of runs) process.stdout.write(`${JSON.stringify(r)}\n`);
        else console.log(table(['task', 'label', 'model', 'used', 'total', 'cost', 'calls', 'outcome'], runs.map((r) => [r.task, r.label, r.model ?? '', r.used, r.total, `$${r.costUsd.toFixed(4)}`, r.calls, r.outcome])));
      } finally {
        await ledger.shutdown();
      }
    });
}
