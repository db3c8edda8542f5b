// Run records as JSONL: streaming read with bad lines reported by number, unknown fields kept, and the writer's
// output read back unchanged, including `envelope runs --jsonl` over a real SQLite store.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Ledger } from '../src/ledger/ledger.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { readRunLines, type LineIssue } from '../src/insight/jsonl-reader.js';
import { runLineText, writeRunLines } from '../src/insight/jsonl-writer.js';
import type { RunLine } from '../src/insight/run-line.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../src/cli/main.js');

async function readAll(chunks: (string | Buffer)[]): Promise<{ lines: RunLine[]; issues: LineIssue[] }> {
  const issues: LineIssue[] = [];
  const lines: RunLine[] = [];
  for await (const r of readRunLines(Readable.from(chunks), (i) => issues.push(i))) lines.push(r);
  return { lines, issues };
}

const SPEC_LINE =
  '{"task":"t1","label":"bug-fix","model":"claude-sonnet-4-6","unit":"tokens","total":50000,"used":31250,"costUsd":0.12,"calls":9,"durationMs":41000,"outcome":"completed","budgeted":true}';

describe('JSONL run records', () => {
  it('reads the SPEC example line exactly', async () => {
    const { lines, issues } = await readAll([`${SPEC_LINE}\n`]);
    assert.deepEqual(issues, []);
    assert.deepEqual(lines, [JSON.parse(SPEC_LINE)]);
  });

  it('reports each bad line with its number, skips it, and keeps reading', async () => {
    const text = [
      SPEC_LINE, // 1
      '{"task":"t2","label":"bug-fix","used":', // 2: cut off
      '', // 3: blank, skipped silently
      '[1,2,3]', // 4
      '{"task":"t3","label":"bug-fix","used":-5}', // 5
      '{"task":"t4","label":"bug-fix","used":100,"outcome":"done"}', // 6
      '{"task":"t5","label":"bug-fix","used":100,"budgeted":"no"}', // 7
      '{"task":"t6","label":"triage","used":22000,"budgeted":false,"note":"kept","nested":{"a":1}}', // 8
      '{"task":"t7","unit":"usd","label":"triage","used":0.5,"total":null}', // 9, no newline at the end
    ].join('\n');
    const { lines, issues } = await readAll([text]);
    assert.deepEqual(
      issues.map((i) => i.line),
      [2, 4, 5, 6, 7],
    );
    assert.match(issues[0]!.message, /^not valid JSON/);
    assert.equal(issues[1]!.message, 'not a JSON object');
    assert.equal(issues[2]!.message, 'used must be a number ≥ 0');
    assert.equal(issues[3]!.message, 'outcome must be completed, exhausted, paused or failed');
    assert.equal(issues[4]!.message, 'budgeted must be true or false');
    assert.deepEqual(
      lines.map((l) => l.task),
      ['t1', 't6', 't7'],
    );
    // Unknown fields stay; missing ones take their defaults.
    assert.deepEqual(lines[1], {
      task: 't6',
      label: 'triage',
      used: 22000,
      budgeted: false,
      note: 'kept',
      nested: { a: 1 },
      unit: 'tokens',
      model: null,
      total: null,
      costUsd: null,
      calls: 0,
      durationMs: 0,
      outcome: 'completed',
    });
    assert.equal(lines[2]!.unit, 'usd');
    assert.equal(lines[2]!.budgeted, true);
  });

  it('joins lines and multi-byte characters split across chunks, and accepts CRLF', async () => {
    const text = Buffer.from(
      '{"task":"a","label":"résumé-✓","used":1}\r\n{"task":"b","label":"x","used":2}\r\n\r\n{"task":"c","label":"x","used":3}',
    );
    // Cut at every byte: each split falls inside a line, and some inside a multi-byte character.
    for (const cut of [1, 20, 27, 28, 29, 41, 42, 43, text.length - 1]) {
      const { lines, issues } = await readAll([text.subarray(0, cut), text.subarray(cut)]);
      assert.deepEqual(issues, [], `cut at ${cut}`);
      assert.deepEqual(
        lines.map((l) => [l.task, l.label, l.used]),
        [
          ['a', 'résumé-✓', 1],
          ['b', 'x', 2],
          ['c', 'x', 3],
        ],
        `cut at ${cut}`,
      );
    }
  });

  it('one chunk per byte gives the same records and line numbers', async () => {
    const text = Buffer.from(`${SPEC_LINE}\nnot json\n{"task":"z","label":"ü","used":7}\n`);
    const bytes = Array.from(text, (b) => Buffer.from([b]));
    const { lines, issues } = await readAll(bytes);
    assert.deepEqual(
      lines.map((l) => l.task),
      ['t1', 'z'],
    );
    assert.equal(lines[1]!.label, 'ü');
    assert.deepEqual(
      issues.map((i) => i.line),
      [2],
    );
  });

  it('writes SPEC fields first, keeps extra fields, and reads back what it wrote', async () => {
    const record = { extra: 'x', task: 't9', label: 'l', used: 20_001, budgeted: false, unit: 'tokens' };
    assert.equal(runLineText(record as unknown as RunLine), '{"task":"t9","label":"l","unit":"tokens","used":20001,"budgeted":false,"extra":"x"}');
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c: Buffer) => chunks.push(c));
    const n = await writeRunLines([JSON.parse(SPEC_LINE), record], sink);
    sink.end();
    assert.equal(n, 2);
    const { lines, issues } = await readAll([Buffer.concat(chunks)]);
    assert.deepEqual(issues, []);
    assert.deepEqual(lines[0], JSON.parse(SPEC_LINE));
    assert.equal(lines[1]!.extra, 'x');
  });
});

describe('envelope runs --jsonl (real SQLite store)', () => {
  let dir: string;
  let storeUrl: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'envelope-insight-'));
    storeUrl = `sqlite:${join(dir, 'runs.db')}`;
    let now = 1_000_000;
    const ledger = new Ledger(new SqliteStore(join(dir, 'runs.db')), { clock: () => now });
    const usage = { inputTokens: 10_000, outputTokens: 2_000, cacheWriteTokens: 1_000, cacheReadTokens: 4_000 };
    for (const [id, label] of [
      ['r1', 'bug-fix'],
      ['r2', 'bug-fix'],
      ['r3', 'triage'],
    ] as const) {
      await ledger.createTask({ id, label, total: 50_000, policy: 'hard' });
      const g = await ledger.reserve({ taskId: id, model: 'claude-sonnet-4-6', inputTokens: 15_000, outputTokensMax: 4_000 });
      await ledger.settle(g.reservation.id, usage);
      now += 2_500;
      await ledger.close(id);
    }
    await ledger.shutdown();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes one line per finished task, and calibrate --from reads it', async () => {
    const file = join(dir, 'runs.jsonl');
    await run(process.execPath, [CLI, 'runs', '--jsonl', '--out', file, '--store', storeUrl]);
    const text = await readFile(file, 'utf8');
    const rows = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, 3);
    const r1 = rows.find((r) => r.task === 'r1')!;
    // 10,000 × $3 + 2,000 × $15 + 1,000 × $3.75 + 4,000 × $0.30 per Mtok = $0.06495
    assert.deepEqual(
      { ...r1 },
      {
        task: 'r1',
        label: 'bug-fix',
        model: 'claude-sonnet-4-6',
        unit: 'tokens',
        meter: 'loop',
        total: 50_000,
        used: 17_000,
        costUsd: 0.06495,
        calls: 1,
        durationMs: 2_500,
        outcome: 'completed',
        budgeted: true,
        tenant: 'default',
        models: ['claude-sonnet-4-6'],
        tokensUsed: 17_000,
        parent: null,
        closedAtMs: 1_002_500,
      },
    );
    assert.deepEqual(Object.keys(r1).slice(0, 11), ['task', 'label', 'model', 'unit', 'total', 'used', 'costUsd', 'calls', 'durationMs', 'outcome', 'budgeted']);

    await writeFile(join(dir, 'bad.jsonl'), `${text}oops\n`);
    const { stdout, stderr } = await run(process.execPath, [CLI, 'calibrate', '--from', join(dir, 'bad.jsonl'), '--json']);
    assert.equal(stderr, `envelope: ${join(dir, 'bad.jsonl')} line 4: not valid JSON (Unexpected token 'o', "oops" is not valid JSON) (skipped)\n`);
    const c = JSON.parse(stdout) as { labels: { label: string; n: number; p50: number }[]; input: { records: number; badLines: number } };
    assert.deepEqual(c.input.records, 3);
    assert.deepEqual(c.input.badLines, 1);
    assert.deepEqual(
      c.labels.map((l) => [l.label, l.n, l.p50]),
      [
        ['bug-fix', 2, 17_000],
        ['triage', 1, 17_000],
      ],
    );
  });
});
