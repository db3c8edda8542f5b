// `envelope tasks ls|show|create|close` and `envelope approve`: the ledger from the terminal.
import type { Command } from 'commander';
import type { Outcome } from '../../budget/types.js';
import type { TaskView } from '../../budget/view.js';
import { Ledger } from '../../ledger/ledger.js';
import { openStore } from '../../store/open.js';
import { jsonOption, numberArg, storeOption } from '../options.js';
import { printJson } from '../output.js';
import { table } from '../table.js';

async function withLedger<T>(storeUrl: string, fn: (ledger: Ledger) => Promise<T>): Promise<T> {
  const ledger = new Ledger(await openStore(storeUrl));
  try {
    return await fn(ledger);
  } finally {
    await ledger.shutdown();
  }
}

const amount = (v: TaskView, x: number): string => (v.unit === 'usd' ? `$${x.toFixed(4)}` : x.toLocaleString('en-US'));

function taskTable(views: TaskView[]): string {
  return table(
    ['task', 'label', 'state', 'used', 'total', 'used %', 'calls', 'policy', 'meter', 'parent'],
    views.map((v) => [
      v.id,
      v.label,
      v.state,
      amount(v, v.used),
      amount(v, v.total),
      `${(v.utilization * 100).toFixed(1)}%`,
      v.calls,
      v.policy,
      v.unit === 'usd' ? 'usd' : v.meter,
      v.parentId ?? '',
    ]),
  );
}

export function registerTasks(program: Command): void {
  const tasks = program.command('tasks').description('list, show, create and close tasks');

  tasks
    .command('ls', { isDefault: true })
    .description('list tasks, oldest first')
    .addOption(storeOption())
    .addOption(jsonOption())
    .option('--label <label>', 'only tasks with this label')
    .option('--state <state>', 'only tasks in this state')
    .option('--limit <n>', 'at most this many', numberArg('--limit'), 100)
    .action(async (o: { store: string; json?: boolean; label?: string; state?: string; limit: number }) => {
      await withLedger(o.store, async (ledger) => {
        const rows = await ledger.listTasks({ label: o.label, state: o.state as TaskView['state'], limit: o.limit });
        const views = rows.map((r) => ledger.view(r));
        if (o.json) printJson(views);
        else console.log(views.length ? taskTable(views) : 'no tasks yet: create one with `envelope tasks create`');
      });
    });

  tasks
    .command('show <id>')
    .description('one task with its children and events')
    .addOption(storeOption())
    .addOption(jsonOption())
    .action(async (id: string, o: { store: string; json?: boolean }) => {
      await withLedger(o.store, async (ledger) => {
        const row = await ledger.task(id);
        const children = (await ledger.listTasks({ parentId: id, limit: 1_000 })).map((r) => ledger.view(r));
        const events = await ledger.events({ taskId: id });
        const view = ledger.view(row);
        if (o.json) return printJson({ ...view, children, events });
        console.log(taskTable([view, ...children]));
        if (events.length) {
          console.log('\nevents');
          for (const e of events) console.log(`  ${new Date(e.atMs).toISOString()}  ${e.type}  ${JSON.stringify(e.data)}`);
        }
      });
    });

  tasks
    .command('create <id>')
    .description('create a task (or a child with --parent)')
    .requiredOption('--total <n>', 'budget: tokens, or USD with --unit usd', numberArg('--total'))
    .option('--label <label>', 'task type, e.g. bug-fix', 'default')
    .option('--unit <unit>', 'tokens or usd (default: the parent\'s, else tokens)')
    .option('--meter <meter>', 'how a token task counts a call: loop (what the agent loop adds) or billed (every billed token); default: the parent\'s, else loop')
    .option('--policy <policy>', 'advisory, hard, approval or measure (counted, never told or refused: a calibration run); default: the parent\'s, else advisory')
    .option('--parent <id>', 'parent task: this task also counts against it')
    .option('--tenant <tenant>', 'owner of the task', 'default')
    .addOption(storeOption())
    .addOption(jsonOption())
    .action(async (id: string, o: Record<string, string | number | boolean | undefined>) => {
      await withLedger(String(o.store), async (ledger) => {
        const row = await ledger.createTask({
          id,
          total: o.total,
          label: o.label,
          ...(o.unit ? { unit: o.unit } : {}),
          ...(o.meter ? { meter: o.meter } : {}),
          ...(o.policy ? { policy: o.policy } : {}),
          tenant: o.tenant,
          ...(o.parent ? { parent: o.parent } : {}),
        });
        if (o.json) printJson(ledger.view(row));
        else console.log(taskTable([ledger.view(row)]));
      });
    });

  tasks
    .command('close <id>')
    .description('close a task and write its run record')
    .option('--outcome <outcome>', 'completed, exhausted, paused or failed (default: from its state)')
    .addOption(storeOption())
    .addOption(jsonOption())
    .action(async (id: string, o: { store: string; json?: boolean; outcome?: Outcome }) => {
      await withLedger(o.store, async (ledger) => {
        const row = await ledger.close(id, o.outcome);
        if (o.json) printJson(ledger.view(row));
        else console.log(`closed ${id}: ${row.outcome}`);
      });
    });

  program
    .command('approve <id>')
    .description('add to a task budget and resume it if it was paused')
    .requiredOption('--add <n>', 'how much to add: tokens, or USD for a usd task', numberArg('--add'))
    .addOption(storeOption())
    .addOption(jsonOption())
    .action(async (id: string, o: { store: string; json?: boolean; add: number }) => {
      await withLedger(o.store, async (ledger) => {
        const row = await ledger.approve(id, o.add);
        const view = ledger.view(row);
        if (o.json) printJson(view);
        else console.log(`approved ${id}: total ${amount(view, view.total)}, state ${view.state}`);
      });
    });
}
