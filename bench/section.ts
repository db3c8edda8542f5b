// One part of BENCHMARKS.md. Each bench/<name>.ts exports `run(opts)` returning sections; bench/run.ts collects them.
export interface BenchSection {
  title: string;
  /** What was run, so a reader can repeat it. */
  method: string;
  header: string[];
  rows: (string | number)[][];
  /** What the figures mean: the goal, and what limits them. */
  notes?: string[];
}

export interface BenchOptions {
  /** A short run for smoke-testing the bench code itself (figures not for publishing). */
  quick: boolean;
}

export type BenchRun = (opts: BenchOptions) => Promise<BenchSection[]>;

/** Prints sections as BENCHMARKS.md writes them, for a section run on its own (`node dist/bench/NAME.js`). */
export function printSections(sections: BenchSection[]): void {
  for (const s of sections) {
    console.log(`## ${s.title}\n\n${s.method}\n\n| ${s.header.join(' | ')} |\n|${s.header.map(() => '---').join('|')}|`);
    for (const r of s.rows) console.log(`| ${r.join(' | ')} |`);
    for (const n of s.notes ?? []) console.log(`- ${n}`);
  }
}
