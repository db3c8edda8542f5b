// `npm run bench`: runs every benchmark section and writes BENCHMARKS.md. `--quick` for a short smoke run.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { BenchRun, BenchSection } from './section.js';
import { run as ledger } from './ledger.js';
import { run as gateway } from './gateway.js';
import { run as gatewaySizes } from './gateway-sizes.js';
import { run as stores } from './stores.js';
import { run as calibrateRun } from './calibrate.js';
import { run as budgetBehaviour } from './budget-behaviour.js';
import { run as soak } from './soak.js';
import { run as governance } from './governance.js';

const SECTIONS: Array<[string, BenchRun]> = [
  ['ledger', ledger],
  ['gateway', gateway],
  ['gateway-sizes', gatewaySizes],
  ['stores', stores],
  ['governance', governance],
  ['calibrate', calibrateRun],
  ['budget-behaviour', budgetBehaviour],
  ['soak', soak],
];

const quick = process.argv.includes('--quick');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');

function markdown(sections: BenchSection[], startedAt: Date, seconds: number): string {
  const cpu = cpus();
  const lines = [
    '# Benchmarks',
    '',
    `Written by \`npm run bench\`${quick ? ' --quick (smoke run: figures not for comparison)' : ''} on ${startedAt.toISOString().slice(0, 10)}, in ${seconds.toFixed(0)} s.`,
    '',
    `Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}/${process.arch}.`,
    'Every figure below was measured in that one run, side by side; each section says how.',
    '',
  ];
  for (const s of sections) {
    lines.push(`## ${s.title}`, '', s.method, '', `| ${s.header.join(' | ')} |`, `|${s.header.map(() => '---').join('|')}|`);
    for (const r of s.rows) lines.push(`| ${r.join(' | ')} |`);
    if (s.notes?.length) lines.push('', ...s.notes.map((n) => `- ${n}`));
    lines.push('');
  }
  return lines.join('\n');
}

/** With --only: the sections just measured replace their namesakes in the existing file (each says its date). */
function replaceSections(existing: string, fresh: string): string {
  const split = (md: string): string[] => md.split(/\n(?=## )/);
  const [head, ...old] = split(existing);
  const updated = split(fresh).slice(1).map((sec) => sec.replace(/\n+$/, `\n\n(measured ${new Date().toISOString().slice(0, 10)} with --only)\n`));
  const title = (sec: string): string => sec.split('\n')[0]!;
  const merged = old.map((sec) => updated.find((u) => title(u) === title(sec)) ?? sec);
  for (const u of updated) if (!old.some((sec) => title(sec) === title(u))) merged.push(u);
  return [head, ...merged].join('\n');
}

const startedAt = new Date();
const t0 = performance.now();
const results: BenchSection[] = [];
for (const [name, run] of SECTIONS) {
  if (only && !only.includes(name)) continue;
  process.stderr.write(`bench: ${name}…\n`);
  results.push(...(await run({ quick })));
}
const file = quick ? 'BENCHMARKS.quick.md' : 'BENCHMARKS.md';
const fresh = markdown(results, startedAt, (performance.now() - t0) / 1000);
writeFileSync(file, only && existsSync(file) ? replaceSections(readFileSync(file, 'utf8'), fresh) : fresh);
process.stderr.write(`bench: wrote ${file}\n`);
