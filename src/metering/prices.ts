// Model prices (USD per million tokens) with cache rates: the user's own table (`--prices FILE`) first, then the
// maintained catalog (./catalog.ts). A model known to neither has no price, and a USD budget on it fails closed
// rather than counting it at $0.
import type { Usage } from '../budget/types.js';
import { catalogPrice } from './catalog.js';

export interface Rates {
  inputUsdPerMtok: number;
  outputUsdPerMtok: number;
  cacheWriteUsdPerMtok: number;
  cacheReadUsdPerMtok: number;
}

/** Rates that apply once a call's whole input (cache reads and writes included) is above `aboveInputTokens`. */
export interface PriceTier extends Rates {
  aboveInputTokens: number;
}

export interface ModelPrice extends Rates {
  /** Long-context prices, ascending (Gemini 2.5 Pro past 200,000 input tokens, …). */
  tiers?: PriceTier[];
}

/** The user's own prices by model name: they win over the catalog. */
export type PriceTable = Record<string, ModelPrice>;

/** The price of `model` at `atMs`: the user's table (./prices-file.ts), else the catalog. */
export function priceFor(model: string | null | undefined, table: PriceTable, atMs?: number): ModelPrice | undefined {
  if (!model) return undefined;
  return tablePrice(model, table)?.price ?? catalogPrice(model, atMs)?.price;
}

/**
 * The user's entry for `model`: an exact one, else the longest key the name starts with followed by `-`
 * (so a file's `my-model` prices `my-model-20260101` too).
 */
export function tablePrice(model: string, table: PriceTable): { key: string; price: ModelPrice } | undefined {
  const exact = table[model];
  if (exact) return { key: model, price: exact };
  let best: string | undefined;
  for (const key of Object.keys(table)) {
    if (model.startsWith(`${key}-`) && (best === undefined || key.length > best.length)) best = key;
  }
  return best === undefined ? undefined : { key: best, price: table[best]! };
}

/** The rates of a call whose whole input is `inputTokens`. */
export function ratesAt(price: ModelPrice, inputTokens: number): Rates {
  let rates: Rates = price;
  for (const tier of price.tiers ?? []) if (inputTokens > tier.aboveInputTokens) rates = tier;
  return rates;
}

/** The highest input and output rates a call could be billed at: what a reservation holds. */
export function worstRates(price: ModelPrice): { inputPerToken: number; outputPerToken: number } {
  let input = Math.max(price.inputUsdPerMtok, price.cacheWriteUsdPerMtok);
  let output = price.outputUsdPerMtok;
  for (const t of price.tiers ?? []) {
    input = Math.max(input, t.inputUsdPerMtok, t.cacheWriteUsdPerMtok);
    output = Math.max(output, t.outputUsdPerMtok);
  }
  return { inputPerToken: input, outputPerToken: output };
}

/** Cost of a usage in micro-USD, rounded up so a budget is never under-charged. */
export function costMicros(usage: Usage, price: ModelPrice): number {
  const r = ratesAt(price, usage.inputTokens + usage.cacheWriteTokens + usage.cacheReadTokens);
  const micros =
    usage.inputTokens * r.inputUsdPerMtok +
    usage.outputTokens * r.outputUsdPerMtok +
    usage.cacheWriteTokens * r.cacheWriteUsdPerMtok +
    usage.cacheReadTokens * r.cacheReadUsdPerMtok;
  return Math.ceil(micros - 1e-9);
}

export const usageTokens = (u: Usage): number =>
  u.inputTokens + u.outputTokens + u.cacheWriteTokens + u.cacheReadTokens;

export const ZERO_USAGE: Usage = { inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheReadTokens: 0 };
