// The pricing report: exact runs, tokens, cost (summed in micro-USD), cost per run, coverage and the tier table,
// plus the `envelope report` command's JSON and CSV over a real JSONL file.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import {
  DEFAULT_TIERS,
  parsePriceArg,
  parseTierArg,
  pricingReport,
  type PricingReport,
  type ReportOptions,
} from '../src/insight/report.js';
import type { RunLine } from '../src/insight/run-line.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../src/cli/main.js');

const line = (over: Partial<RunLine>): RunLine => ({
  task: 't',
  label: 'bug-fix',
  model: 'claude-sonnet-4-6',
  unit: 'tokens',
  total: 50_000,
  used: 0,
  costUsd: null,
  calls: 1,
  durationMs: 1,
  outcome: 'completed',
  budgeted: true,
  ...over,
});

const options = (over: Partial<ReportOptions> = {}): ReportOptions => ({
  prices: {},
  target: 3,
  priceTable: {},
  tiers: DEFAULT_TIERS,
  tierRateUsdPerMtok: 3,
  ...over,
});

// bug-fix: three sonnet runs charged $0.10, $0.20, $0.30 (0.1 + 0.2 is not 0.3 in floating point: micro-USD sums are)
// and one opus run priced from its usage: 10,000 in × $5 + 2,000 out × $25 + 8,000 cache write × $6.25
// + 100,000 cache read × $0.50 per Mtok = $0.05 + $0.05 + $0.05 + $0.05 = $0.20.
const RUNS: RunLine[] = [
  line({ used: 20_000, costUsd: 0.1 }),
  line({ used: 30_000, costUsd: 0.2 }),
  line({ used: 40_000, costUsd: 0.3 }),
  line({
    model: 'claude-opus-4-6',
    used: 120_000,
    usage: { inputTokens: 10_000, outputTokens: 2_000, cacheWriteTokens: 8_000, cacheReadTokens: 100_000 },
  }),
  // triage: a USD run with its token count, and one with no cost and no usage (left out of the cost).
  line({ label: 'triage', model: 'gpt-5-mini', unit: 'usd', total: 0.05, used: 0.01, tokensUsed: 9_000, costUsd: 0.01 }),
  line({ label: 'triage', model: 'mystery-model', used: 5_000 }),
];

describe('pricing report', () => {
  it('sums runs, tokens and cost per label and model exactly', () => {
    const r = pricingReport(RUNS, options({ prices: { 'bug-fix': 0.5, triage: 0.02, ghost: 1 } }));
    assert.deepEqual(r.rows, [
      { label: 'bug-fix', model: 'claude-opus-4-6', runs: 1, tokens: 120_000, costUsd: 0.2, costPerRunUsd: 0.2, tokensPerRun: 120_000, unpricedRuns: 0, priceUsd: 0.5, coverage: 2.5 },
      { label: 'bug-fix', model: 'claude-sonnet-4-6', runs: 3, tokens: 90_000, costUsd: 0.6, costPerRunUsd: 0.2, tokensPerRun: 30_000, unpricedRuns: 0, priceUsd: 0.5, coverage: 2.5 },
      { label: 'triage', model: 'gpt-5-mini', runs: 1, tokens: 9_000, costUsd: 0.01, costPerRunUsd: 0.01, tokensPerRun: 9_000, unpricedRuns: 0, priceUsd: 0.02, coverage: 2 },
      { label: 'triage', model: 'mystery-model', runs: 1, tokens: 5_000, costUsd: 0, costPerRunUsd: null, tokensPerRun: 5_000, unpricedRuns: 1, priceUsd: 0.02, coverage: null },
    ]);
    assert.deepEqual(r.labels, [
      { label: 'bug-fix', models: ['claude-opus-4-6', 'claude-sonnet-4-6'], runs: 4, tokens: 210_000, costUsd: 0.8, costPerRunUsd: 0.2, tokensPerRun: 52_500, unpricedRuns: 0, priceUsd: 0.5, coverage: 2.5, short: true },
      { label: 'triage', models: ['gpt-5-mini', 'mystery-model'], runs: 2, tokens: 14_000, costUsd: 0.01, costPerRunUsd: 0.01, tokensPerRun: 7_000, unpricedRuns: 1, priceUsd: 0.02, coverage: 2, short: true },
    ]);
    assert.deepEqual([r.runs, r.tokens, r.costUsd], [6, 224_000, 0.81]);
    assert.deepEqual(r.short, ['bug-fix', 'triage']);
    assert.deepEqual(r.unknownPriced, ['ghost']);

    const enough = pricingReport(RUNS, options({ prices: { 'bug-fix': 0.6 }, target: 3 }));
    // 0.6 ÷ 0.2 is 2.9999999999999996 in floating point; from micro-USD it is exactly 3, which meets the target.
    assert.equal(enough.labels[0]!.coverage, 3);
    assert.deepEqual([enough.labels[0]!.short, enough.labels[1]!.short], [false, null]);
    assert.deepEqual(enough.short, []);
  });

  it('prices the seed tiers: quick scan $0.015, deep analysis $0.15 sold at $0.50 = 3.3×', () => {
    const r = pricingReport([], options());
    assert.deepEqual(r.tiers, [
      { name: 'quick scan', tokens: 5_000, rateUsdPerMtok: 3, costUsd: 0.015, priceUsd: null, coverage: null, suggestedPriceUsd: 0.045 },
      { name: 'deep analysis', tokens: 50_000, rateUsdPerMtok: 3, costUsd: 0.15, priceUsd: 0.5, coverage: 500_000 / 150_000, suggestedPriceUsd: 0.45 },
    ]);
    assert.equal(r.tiers[1]!.coverage!.toFixed(2), '3.33');
    assert.deepEqual(parseTierArg('deep analysis=50,000@$0.50'), { name: 'deep analysis', tokens: 50_000, priceUsd: 0.5 });
    assert.deepEqual(parseTierArg('quick=5000'), { name: 'quick', tokens: 5_000, priceUsd: null });
    assert.deepEqual(parsePriceArg('bug-fix=$0.50'), ['bug-fix', 0.5]);
    assert.throws(() => parsePriceArg('bug-fix'), /--price takes LABEL=USD/);
    assert.throws(() => parseTierArg('deep=lots'), /--tier takes NAME=TOKENS/);
    assert.throws(() => pricingReport([], options({ target: 0 })), /coverage target must be a positive number/);
  });

  it('envelope report --json and --csv over a JSONL file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'envelope-report-'));
    try {
      const file = join(dir, 'runs.jsonl');
      await writeFile(file, `${RUNS.map((r) => JSON.stringify(r)).join('\n')}\nbroken\n`);
      const args = [CLI, 'report', '--from', file, '--price', 'bug-fix=0.50', '--price', 'triage=0.05'];
      const json = await run(process.execPath, [...args, '--json']);
      const r = JSON.parse(json.stdout) as PricingReport & { input: { records: number; badLines: number } };
      assert.deepEqual([r.input.records, r.input.badLines], [6, 1]);
      assert.deepEqual(
        r.labels.map((l) => [l.label, l.costUsd, l.costPerRunUsd, l.coverage, l.short]),
        [
          ['bug-fix', 0.8, 0.2, 2.5, true],
          ['triage', 0.01, 0.01, 5, false],
        ],
      );
      assert.equal(json.stderr, `envelope: ${file} line 7: not valid JSON (Unexpected token 'b', "broken" is not valid JSON) (skipped)\n`);
      const csv = await run(process.execPath, [...args, '--csv']);
      assert.equal(
        csv.stdout,
        [
          'label,model,runs,tokens,cost_usd,cost_per_run_usd,unpriced_runs,price_usd,coverage,target',
          'bug-fix,claude-opus-4-6,1,120000,0.2,0.2,0,0.5,2.5,3',
          'bug-fix,claude-sonnet-4-6,3,90000,0.6,0.2,0,0.5,2.5,3',
          'triage,gpt-5-mini,1,9000,0.01,0.01,0,0.05,5,3',
          'triage,mystery-model,1,5000,0,,1,0.05,,3',
          '',
        ].join('\n'),
      );
      const text = await run(process.execPath, [...args]);
      assert.match(text.stdout, /bug-fix\s+4\s+\$0\.2000\s+\$0\.50\s+2\.50×\s+SHORT/);
      assert.match(text.stdout, /deep analysis\s+50,000\s+\$0\.1500\s+\$0\.50\s+3\.33×\s+\$0\.4500/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
