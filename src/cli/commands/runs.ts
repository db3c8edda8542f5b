// `envelope runs`: the run records of finished tasks, as a table, JSON, or JSONL for `calibrate --from`.
import type { Command } from 'commander';
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { writeRunLines } from '../../insight/jsonl-writer.js';
import { Ledger } from '../../ledger/ledger.js';
import { openStore } from '../../store/open.js';
import { jsonOption, storeOption } from '../options.js';
import { printJson } from '../output.js';
import { limitOption } from '../run-input.js';
import { table } from '../table.js';

interface RunsFlags {
  store: string;
  label?: string;
  tenant?: string;
  limit: number;
  jsonl?: boolean;
  out?: string;
  json?: boolean;
}

export function registerRuns(program: Command): void {
  program
    .command('runs')
    .description('run records of finished tasks (the input of calibrate and report)')
    .addOption(storeOption())
    .option('--label <label>', 'only this label')
    .option('--tenant <tenant>', 'only this tenant')
    .addOption(limitOption())
    .option('--jsonl', 'one JSON object a line, as `calibrate --from` reads')
    .option('--out <file>', 'write to this file instead of stdout (with --jsonl)')
    .addOption(jsonOption())
    .addHelpText('after', '\nExample:\n  envelope runs --jsonl --out runs.jsonl && envelope calibrate --from runs.jsonl')
    .action(async (o: RunsFlags) => {
      const ledger = new Ledger(await openStore(o.store));
      try {
        const runs = await ledger.runs({ label: o.label, tenant: o.tenant, limit: o.limit });
        if (o.jsonl) {
          const out = o.out ? createWriteStream(o.out) : process.stdout;
          const n = await writeRunLines(runs, out);
          if (o.out) {
            out.end();
            await finished(out);
            process.stderr.write(`wrote ${n} run records to ${o.out}\n`);
          }
          return;
        }
        if (o.json) return printJson(runs);
        if (!runs.length) return console.log('no run records yet; they are written when tasks close');
        console.log(
          table(
            ['task', 'label', 'model', 'used', 'total', 'cost', 'calls', 'seconds', 'outcome'],
            runs.map((r) => [
              r.task,
              r.label,
              r.model ?? '',
              r.unit === 'usd' ? `$${r.used.toFixed(4)}` : r.used.toLocaleString('en-US'),
              r.unit === 'usd' ? `$${r.total.toFixed(2)}` : r.total.toLocaleString('en-US'),
              `$${r.costUsd.toFixed(4)}`,
              r.calls,
              (r.durationMs / 1000).toFixed(1),
              r.outcome,
            ]),
          ),
        );
      } finally {
        await ledger.shutdown();
      }
    });
}
