// Public list prices (USD per million tokens) with cache rates. Overridable from config; a model missing here
// has no price, and a USD budget on it fails closed rather than counting it at $0.
import type { Usage } from '../budget/types.js';

export interface ModelPrice {
  inputUsdPerMtok: number;
  outputUsdPerMtok: number;
  cacheWriteUsdPerMtok: number;
  cacheReadUsdPerMtok: number;
}

export type PriceTable = Record<string, ModelPrice>;

/** Anthropic: cache writes (5-minute) cost 1.25× input, cache reads 0.1× input. */
const anthropic = (input: number, output: number): ModelPrice => ({
  inputUsdPerMtok: input,
  outputUsdPerMtok: output,
  cacheWriteUsdPerMtok: input * 1.25,
  cacheReadUsdPerMtok: input * 0.1,
});

/** OpenAI: cached input has its own rate; there is no cache-write charge. */
const openai = (input: number, output: number, cachedInput: number): ModelPrice => ({
  inputUsdPerMtok: input,
  outputUsdPerMtok: output,
  cacheWriteUsdPerMtok: input,
  cacheReadUsdPerMtok: cachedInput,
});

export const DEFAULT_PRICES: PriceTable = {
  'claude-opus-4-8': anthropic(5, 25),
  'claude-opus-4-7': anthropic(5, 25),
  'claude-opus-4-6': anthropic(5, 25),
  'claude-opus-4-5': anthropic(5, 25),
  'claude-opus-4-1': anthropic(15, 75),
  'claude-opus-4': anthropic(15, 75),
  'claude-sonnet-4-6': anthropic(3, 15),
  'claude-sonnet-4-5': anthropic(3, 15),
  'claude-sonnet-4': anthropic(3, 15),
  'claude-3-7-sonnet': anthropic(3, 15),
  'claude-haiku-4-5': anthropic(1, 5),
  'claude-3-5-haiku': anthropic(0.8, 4),
  'gpt-5': openai(1.25, 10, 0.125),
  'gpt-5-mini': openai(0.25, 2, 0.025),
  'gpt-5-nano': openai(0.05, 0.4, 0.005),
  'gpt-4.1': openai(2, 8, 0.5),
  'gpt-4.1-mini': openai(0.4, 1.6, 0.1),
  'gpt-4.1-nano': openai(0.1, 0.4, 0.025),
  'gpt-4o': openai(2.5, 10, 1.25),
  'gpt-4o-mini': openai(0.15, 0.6, 0.075),
  o3: openai(2, 8, 0.5),
  'o4-mini': openai(1.1, 4.4, 0.275),
};

/**
 * The price of `model`: an exact entry, else the longest entry the name starts with followed by `-`
 * (so `claude-sonnet-4-5-20250929` is priced as `claude-sonnet-4-5`).
 */
export function priceFor(model: string | null | undefined, table: PriceTable): ModelPrice | undefined {
  if (!model) return undefined;
  const exact = table[model];
  if (exact) return exact;
  let best: string | undefined;
  for (const key of Object.keys(table)) {
    if (model.startsWith(`${key}-`) && (best === undefined || key.length > best.length)) best = key;
  }
  return best === undefined ? undefined : table[best];
}

/** Cost of a usage in micro-USD, rounded up so a budget is never under-charged. */
export function costMicros(usage: Usage, price: ModelPrice): number {
  const micros =
    usage.inputTokens * price.inputUsdPerMtok +
    usage.outputTokens * price.outputUsdPerMtok +
    usage.cacheWriteTokens * price.cacheWriteUsdPerMtok +
    usage.cacheReadTokens * price.cacheReadUsdPerMtok;
  return Math.ceil(micros - 1e-9);
}

export const usageTokens = (u: Usage): number =>
  u.inputTokens + u.outputTokens + u.cacheWriteTokens + u.cacheReadTokens;

export const ZERO_USAGE: Usage = { inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheReadTokens: 0 };
