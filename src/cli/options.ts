// Flags shared by several commands, each with its environment variable (SPEC §5).
import { Option } from 'commander';
import { DEFAULT_STORE_URL } from '../store/open.js';

export const storeOption = (): Option =>
  new Option('--store <url>', 'ledger store: memory:, sqlite:PATH, redis://…, redis+cluster://HOST:PORT,…, postgres://…')
    .env('ENVELOPE_STORE')
    .default(DEFAULT_STORE_URL);

export const jsonOption = (): Option => new Option('--json', 'print JSON instead of a table');

export const intArg = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new Error(`${name} must be a whole number, got "${value}"`);
  return n;
};

export const numberArg = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got "${value}"`);
  return n;
};
