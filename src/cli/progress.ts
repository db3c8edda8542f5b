// Live progress bars for task budgets: redrawn in place on a terminal, printed as lines elsewhere.
import type { TaskView } from '../budget/view.js';

const WIDTH = 28;
const STATE_MARK: Record<TaskView['state'], string> = {
  active: 'active',
  scoping: 'scoping ≥70%',
  wrapping_up: 'wrapping up ≥85%',
  exhausted: 'exhausted',
  paused: 'PAUSED: needs approval',
  closed: 'closed',
};

function amount(v: TaskView, x: number): string {
  return v.unit === 'usd' ? `$${x.toFixed(4)}` : Math.round(x).toLocaleString('en-US');
}

export function bar(v: TaskView, indent = ''): string {
  const usedCells = Math.min(WIDTH, Math.round((v.used / v.total) * WIDTH));
  const heldCells = Math.min(WIDTH - usedCells, Math.round((v.reserved / v.total) * WIDTH));
  const cells = '█'.repeat(usedCells) + '▒'.repeat(heldCells) + '·'.repeat(WIDTH - usedCells - heldCells);
  const pct = `${Math.round((v.used / v.total) * 100)}%`.padStart(4);
  const name = `${indent}${v.id}`.padEnd(30);
  return `${name} ${cells} ${pct}  ${amount(v, v.used).padStart(7)} / ${amount(v, v.total).padEnd(7)}  ${STATE_MARK[v.state]}`;
}

/** Keeps a block of lines at the bottom of the terminal and redraws it; log lines scroll above it. */
export class LiveBlock {
  private lines: string[] = [];
  private readonly tty: boolean;
  private readonly out: NodeJS.WriteStream;

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.out = out;
    this.tty = Boolean(out.isTTY);
  }

  private clear(): void {
    if (this.tty && this.lines.length) this.out.write(`\x1b[${this.lines.length}A\x1b[0J`);
  }

  /** A line that stays (a log message). */
  log(line: string): void {
    this.clear();
    this.out.write(`${line}\n`);
    if (this.tty) this.out.write(this.lines.map((l) => `${l}\n`).join(''));
  }

  /** Replaces the live block. Off a terminal, nothing is drawn until `flush`. */
  draw(lines: string[]): void {
    if (!this.tty) {
      this.lines = lines;
      return;
    }
    this.clear();
    this.lines = lines;
    this.out.write(lines.map((l) => `${l}\n`).join(''));
  }

  /** Leaves the block on screen as ordinary output. */
  flush(): void {
    if (!this.tty) this.out.write(this.lines.map((l) => `${l}\n`).join(''));
    this.lines = [];
  }
}
