// What the `loop` meter charges, computed from the usage the provider reported, for tests to compare the ledger with:
// a conversation's first call its output, every later call its output plus the input past the last call's whole
// input and output (SPEC §1a).

export interface ReportedUsage {
  input: number;
  output: number;
  cacheRead?: number;
  cacheWrite?: number;
}

export class LoopMeter {
  private readonly baselines = new Map<string, number>();
  used = 0;

  /** Charges one call of `conversation` and returns what it cost. */
  charge(u: ReportedUsage, conversation = 'c'): number {
    const whole = u.input + (u.cacheRead ?? 0) + (u.cacheWrite ?? 0);
    const baseline = this.baselines.get(conversation);
    this.baselines.set(conversation, whole + u.output);
    const cost = u.output + (baseline === undefined ? 0 : Math.max(0, whole - baseline));
    this.used += cost;
    return cost;
  }
}

/** An Anthropic SDK usage object in ReportedUsage's terms. */
export const fromAnthropic = (u: { input_tokens: number; output_tokens: number; cache_read_input_tokens?: number | null; cache_creation_input_tokens?: number | null }): ReportedUsage => ({
  input: u.input_tokens,
  output: u.output_tokens,
  cacheRead: u.cache_read_input_tokens ?? 0,
  cacheWrite: u.cache_creation_input_tokens ?? 0,
});

/** An OpenAI chat usage object (prompt tokens include the cached ones). */
export const fromOpenAI = (u: { prompt_tokens: number; completion_tokens: number }): ReportedUsage => ({ input: u.prompt_tokens, output: u.completion_tokens });
