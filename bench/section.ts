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
