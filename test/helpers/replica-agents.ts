// Agents on the official SDKs spread over several gateway replicas: each loops model calls on its task until the
// gateway refuses with 402, and records exactly what it was told (usage of every answered call, the refusal).
// A replica can be taken away mid-run: agents then call a survivor, and every call cut off by it is counted.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

export interface AgentSpec {
  task: string;
  /** Index of the replica the agent starts on. */
  replica: number;
  sdk: 'anthropic' | 'openai';
}

export interface FleetResult {
  /** Tokens (input + output + cache read + cache write) of every answered call, per task. */
  usage: Map<string, number[]>;
  /** Calls cut off by the replica taken away (in flight, or sent before the agent learnt it was gone), per task. */
  lost: Map<string, number>;
  /** The task each refusal named as the limit, with how many refusals named it. */
  refusedBy: Map<string, number>;
}

export interface Fleet {
  /** Resolves once every agent has been refused. */
  done: Promise<FleetResult>;
  /** Number of answered calls so far. */
  answered(): number;
  /**
   * Sends no new call to replica `i`; calls already on their way to it count as lost if it dies under them.
   * Returns how many those are.
   */
  avoid(i: number): number;
  /**
   * New calls to replica `i` ask the simulator to take 1.5 s (x-sim-fault: slow): a kill soon after surely finds them
   * inside, however far behind this busy client process is.
   */
  slowDown(i: number): void;
}

const add = <K>(m: Map<K, number>, k: K, n = 1): void => void m.set(k, (m.get(k) ?? 0) + n);

export function startFleet(urls: string[], agents: AgentSpec[], opts: { outputTokens: number; onAnswer?: (answered: number) => void }): Fleet {
  const anthropic = urls.map((u) => new Anthropic({ apiKey: 'sk-ant-test', baseURL: u, maxRetries: 0 }));
  const openai = urls.map((u) => new OpenAI({ apiKey: 'sk-test', baseURL: `${u}/v1`, maxRetries: 0 }));
  const avoided = new Set<number>();
  const slowed = new Set<number>();
  const result: FleetResult = { usage: new Map(), lost: new Map(), refusedBy: new Map() };
  let answered = 0;
  const inFlight = urls.map(() => 0);

  const call = async (a: AgentSpec, replica: number): Promise<number> => {
    const headers: Record<string, string> = { 'x-envelope-task': a.task, ...(slowed.has(replica) ? { 'x-sim-fault': 'slow' } : {}) };
    const messages = [{ role: 'user' as const, content: 'next step' }];
    if (a.sdk === 'anthropic') {
      const r = await anthropic[replica]!.messages.create({ model: 'claude-sonnet-4-6', max_tokens: opts.outputTokens, messages }, { headers });
      return r.usage.input_tokens + r.usage.output_tokens + (r.usage.cache_creation_input_tokens ?? 0) + (r.usage.cache_read_input_tokens ?? 0);
    }
    // OpenAI's prompt_tokens already include the cached ones.
    const r = await openai[replica]!.chat.completions.create({ model: 'gpt-4.1', max_completion_tokens: opts.outputTokens, messages }, { headers });
    return r.usage!.prompt_tokens + r.usage!.completion_tokens;
  };

  const run = async (a: AgentSpec, n: number): Promise<void> => {
    for (;;) {
      const live = urls.map((_, i) => i).filter((i) => !avoided.has(i));
      const replica = avoided.has(a.replica) ? live[n % live.length]! : a.replica;
      inFlight[replica]!++;
      try {
        const tokens = await call(a, replica).finally(() => inFlight[replica]!--);
        const seen = result.usage.get(a.task) ?? [];
        result.usage.set(a.task, seen);
        seen.push(tokens);
        opts.onAnswer?.(++answered);
      } catch (e) {
        const status = (e as { status?: number }).status;
        if (status === 402) {
          const body = (e as { error?: { error?: { type?: string; message?: string }; type?: string; message?: string } }).error;
          // Anthropic's shape nests the error once more than OpenAI's.
          const err = body?.error ?? body;
          const limit = /^task (\S+) has used /.exec(err?.message ?? '')?.[1];
          if (err?.type !== (a.sdk === 'anthropic' ? 'budget_exceeded_error' : 'budget_exceeded') || !limit) throw e;
          add(result.refusedBy, limit);
          return;
        }
        const cutOff = e instanceof Anthropic.APIConnectionError || e instanceof OpenAI.APIConnectionError;
        if (!cutOff || !avoided.has(replica)) throw e;
        add(result.lost, a.task);
      }
    }
  };

  const done = Promise.all(agents.map((a, n) => run(a, n))).then(() => result);
  return { done, answered: () => answered, avoid: (i) => (avoided.add(i), inFlight[i]!), slowDown: (i) => void slowed.add(i) };
}
