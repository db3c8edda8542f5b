// How many more tokens the same text costs after a model upgrade. Anthropic's tokenizer changed with Claude Opus
// 4.7: the same input counts 1.0–1.35× the tokens it did on earlier models (most for code). A budget calibrated on
// an earlier model can be up to 35 % short, so calibration scales the old runs by the pair's multiplier.
import { EnvelopeError } from '../budget/errors.js';
import { DEFAULT_NATIVE_MODELS } from '../pipeline/native-budgets.js';

/** Multipliers by "FROM:TO" model pair; a pair here wins over the family rule below. */
export type MultiplierTable = Record<string, number>;

export const DEFAULT_MULTIPLIERS: MultiplierTable = {
  'claude-opus-4-6:claude-opus-4-7': 1.35,
};

/** Models on the tokenizer introduced with Claude Opus 4.7 (SPEC §2's native task-budget list). */
const NEW_TOKENIZER = DEFAULT_NATIVE_MODELS;

/** The worst case Anthropic states for moving from the earlier tokenizer to the new one. */
export const NEW_TOKENIZER_MULTIPLIER = 1.35;

export const MULTIPLIER_MIN = 1;
export const MULTIPLIER_MAX = 3;

/** `name` itself or a dated/suffixed version of it (`claude-opus-4-6-20260101`). */
export const isModel = (model: string, name: string): boolean => modelMatcher(name)(model);

/** isModel with the prefix built once, for a loop over many records. */
export function modelMatcher(name: string): (model: string) => boolean {
  const prefix = `${name}-`;
  return (model) => model === name || model.startsWith(prefix);
}

function tokenizerOf(model: string): 'claude-2026' | 'claude-earlier' | undefined {
  if (NEW_TOKENIZER.some((n) => isModel(model, n))) return 'claude-2026';
  if (model.startsWith('claude-')) return 'claude-earlier';
  return undefined;
}

export interface Upgrade {
  from: string;
  to: string;
  multiplier: number;
  /** Where the multiplier came from, shown beside it. */
  basis: 'given' | 'table' | 'same tokenizer' | 'tokenizer change';
}

/**
 * Parses `FROM:TO` or `FROM:TO=MULTIPLIER` and finds the multiplier: given inline, else the table, else the same
 * tokenizer (1.0), else the Claude tokenizer change (1.35). Any other pair must be given a multiplier.
 */
export function resolveUpgrade(spec: string, table: MultiplierTable = DEFAULT_MULTIPLIERS): Upgrade {
  const m = /^([^:=\s]+):([^:=\s]+)(?:=([0-9.]+))?$/.exec(spec.trim());
  if (!m) {
    throw new EnvelopeError('invalid_request', `--model-upgrade takes FROM:TO or FROM:TO=MULTIPLIER, got "${spec}"`);
  }
  const [, from, to, given] = m as unknown as [string, string, string, string | undefined];
  if (given !== undefined) return { from, to, multiplier: checkMultiplier(Number(given), spec), basis: 'given' };
  const listed = table[`${from}:${to}`];
  if (listed !== undefined) return { from, to, multiplier: checkMultiplier(listed, spec), basis: 'table' };
  const a = tokenizerOf(from);
  const b = tokenizerOf(to);
  if (from === to || (a !== undefined && a === b)) return { from, to, multiplier: 1, basis: 'same tokenizer' };
  if (a === 'claude-earlier' && b === 'claude-2026') {
    return { from, to, multiplier: NEW_TOKENIZER_MULTIPLIER, basis: 'tokenizer change' };
  }
  throw new EnvelopeError(
    'invalid_request',
    `no tokenizer multiplier is known for ${from} → ${to}; give one, e.g. --model-upgrade ${from}:${to}=1.2`,
  );
}

function checkMultiplier(x: number, spec: string): number {
  if (!Number.isFinite(x) || x < MULTIPLIER_MIN || x > MULTIPLIER_MAX) {
    throw new EnvelopeError(
      'invalid_request',
      `tokenizer multiplier in "${spec}" must be between ${MULTIPLIER_MIN} and ${MULTIPLIER_MAX}`,
    );
  }
  return x;
}
