// The user's price table (`--prices FILE` / ENVELOPE_PRICES, or `openEnvelope({ prices })`), checked whole before
// anything is served: a missing rate or a misspelt field would otherwise price calls as NaN and turn USD budgets off.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { EnvelopeError } from '../budget/errors.js';
import type { PriceTable } from './prices.js';

const RATE_FIELDS = ['inputUsdPerMtok', 'outputUsdPerMtok', 'cacheWriteUsdPerMtok', 'cacheReadUsdPerMtok'] as const;
const rate = z.number().finite().nonnegative();
const rates = { inputUsdPerMtok: rate, outputUsdPerMtok: rate, cacheWriteUsdPerMtok: rate, cacheReadUsdPerMtok: rate };
const entry = z.strictObject({ ...rates, tiers: z.array(z.strictObject({ aboveInputTokens: z.number().int().nonnegative(), ...rates })).optional() });
const table = z.record(z.string().min(1), entry);

export const PRICE_FILE_EXAMPLE = '{"my-model": {"inputUsdPerMtok": 3, "outputUsdPerMtok": 15, "cacheWriteUsdPerMtok": 3.75, "cacheReadUsdPerMtok": 0.3}}';

/** A checked price table; `source` names where it came from in the error. */
export function parsePriceTable(value: unknown, source: string): PriceTable {
  const parsed = table.safeParse(value);
  if (parsed.success) {
    for (const p of Object.values(parsed.data)) p.tiers?.sort((a, b) => a.aboveInputTokens - b.aboveInputTokens);
    return parsed.data;
  }
  const issue = parsed.error.issues[0]!;
  const at = issue.path.map((p) => JSON.stringify(String(p))).join('.');
  let why: string;
  if (issue.code === 'unrecognized_keys') why = `${at}: unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  else if (issue.path.length === 0) why = 'it must be one JSON object of model names';
  else if (issue.path.length === 1) why = `${at} must be an object of rates`;
  else {
    const got = issue.path.reduce<unknown>((v, k) => (v as Record<PropertyKey, unknown> | undefined)?.[k as PropertyKey], value);
    why = got === undefined ? `${at} is missing` : `${at} must be a number ≥ 0, got ${JSON.stringify(got)}`;
  }
  throw new EnvelopeError(
    'invalid_request',
    `${source}: ${why}. Every model needs all four rates in USD per million tokens (${RATE_FIELDS.join(', ')}), e.g. ${PRICE_FILE_EXAMPLE}`,
  );
}

/** Reads and checks the price file at `path`; no path: no table. */
export function loadPrices(path: string | undefined): PriceTable | undefined {
  if (!path) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new EnvelopeError('invalid_request', `cannot read the price file ${path}: ${(e as Error).message}. It is JSON: ${PRICE_FILE_EXAMPLE}`);
  }
  return parsePriceTable(value, `the price file ${path}`);
}
