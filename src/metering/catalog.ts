// The maintained price catalog: @pydantic/genai-prices, the data Pydantic keeps for its own cost tracking, bundled
// in the package (no network at run time). It matches providers' model names as they really come, dated snapshots
// and aliases included (`claude-sonnet-4-5-20250929`, `gpt-4o-2024-08-06`, `mistral-medium-2508`), and carries
// cache rates, long-context tiers and dated price changes. Looking a name up scans the catalog with its match rules
// (about 120 µs), so each name's price is kept once found (for a minute when the price depends on the date or hour).
import { calcPrice, waitForUpdate, type ModelPrice as CatalogRates, type Provider } from '@pydantic/genai-prices';
import { BoundedMap } from '../store/bounded-map.js';
import type { ModelPrice, PriceTier } from './prices.js';

export interface CatalogEntry {
  /** The catalog's provider and model ids (the name asked for may be a snapshot or alias of it). */
  provider: string;
  model: string;
  name: string | null;
  price: ModelPrice;
}

/** Model names a gateway may see are chosen by its callers: the cache is bounded. */
const cache = new BoundedMap<string, { entry: CatalogEntry | null; untilMs: number }>(2_048);
const CONDITIONAL_TTL_MS = 60_000;

/** The catalog's price of `model` at `atMs`, or undefined when it has none (or prices it other than per token). */
export function catalogPrice(model: string, atMs: number = Date.now()): CatalogEntry | undefined {
  const hit = cache.get(model);
  if (hit && hit.untilMs > atMs) return hit.entry ?? undefined;
  const found = calcPrice({}, model, { timestamp: new Date(atMs) });
  const price = found ? tokenPrice(found.model_price) : undefined;
  const entry = found && price ? { provider: found.provider.id, model: found.model.id, name: found.model.name ?? null, price } : null;
  cache.set(model, { entry, untilMs: found && Array.isArray(found.model.prices) ? atMs + CONDITIONAL_TTL_MS : Number.POSITIVE_INFINITY });
  return entry ?? undefined;
}

/** Every model the catalog prices per token, as of `atMs`. */
export async function catalogModels(atMs: number = Date.now()): Promise<CatalogEntry[]> {
  const providers: Provider[] = (await waitForUpdate()) ?? [];
  const out: CatalogEntry[] = [];
  for (const p of providers) {
    for (const m of p.models) {
      const found = calcPrice({}, m.id, { provider: { ...p, models: [m] }, timestamp: new Date(atMs) });
      const price = found ? tokenPrice(found.model_price) : undefined;
      if (price) out.push({ provider: p.id, model: m.id, name: m.name ?? null, price });
    }
  }
  return out;
}

type Rate = CatalogRates[string];

const baseOf = (r: Rate): number | undefined => (typeof r === 'number' ? r : r?.base);

/** The rate once a call's input is above `tokens` (a tier starts to apply past its `start`). */
function rateAbove(r: Rate, tokens: number): number | undefined {
  if (typeof r !== 'object') return r;
  let rate = r.base;
  for (const t of r.tiers) if (tokens >= t.start) rate = t.price;
  return rate;
}

/**
 * Our four rates from the catalog's: a rate the model has none of costs what plain input costs (OpenAI bills no
 * cache write; a model without caching bills cached tokens as input). No input or output rate: not token-priced.
 */
function tokenPrice(r: CatalogRates): ModelPrice | undefined {
  const input = baseOf(r.input_mtok);
  const output = baseOf(r.output_mtok);
  if (input === undefined || output === undefined) return undefined;
  const at = (tokens: number): Omit<PriceTier, 'aboveInputTokens'> => {
    const inputRate = rateAbove(r.input_mtok, tokens)!;
    return {
      inputUsdPerMtok: inputRate,
      outputUsdPerMtok: rateAbove(r.output_mtok, tokens)!,
      cacheWriteUsdPerMtok: rateAbove(r.cache_write_mtok, tokens) ?? inputRate,
      cacheReadUsdPerMtok: rateAbove(r.cache_read_mtok, tokens) ?? inputRate,
    };
  };
  const starts = new Set<number>();
  for (const rate of [r.input_mtok, r.output_mtok, r.cache_write_mtok, r.cache_read_mtok]) {
    if (typeof rate === 'object') for (const t of rate.tiers) starts.add(t.start);
  }
  const tiers = [...starts].sort((a, b) => a - b).map((start) => ({ aboveInputTokens: start, ...at(start + 1) }));
  return { ...at(0), ...(tiers.length ? { tiers } : {}) };
}
