// A command's flags from a JSON file (`envelope serve --config envelope.json` or ENVELOPE_CONFIG): every flag is a
// key, by its long name (`"admin-token"`) or in camelCase (`"adminToken"`). A flag on the command line or its
// environment variable overrides the file; the file overrides the defaults. An unknown key is an error naming it.
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';

export const configOption = (): Option =>
  new Option('--config <file>', 'JSON file with any of these flags as keys (flags and environment override it)').env('ENVELOPE_CONFIG');

/** Sets the options that neither the command line nor the environment gave from the file at `path`. */
export function applyConfigFile(cmd: Command, path: string, notKeys: string[] = []): void {
  const values = readConfig(path);
  const byKey = new Map<string, Option>();
  for (const o of cmd.options as readonly Option[]) {
    const name = o.long?.replace(/^--/, '');
    if (!name || name === 'config' || notKeys.includes(name)) continue;
    byKey.set(name, o);
    byKey.set(o.attributeName(), o);
  }
  const seen = new Map<string, string>();
  for (const [key, value] of Object.entries(values)) {
    const option = byKey.get(key);
    if (!option) {
      const keys = [...new Set([...byKey.values()].map((o) => o.long!.slice(2)))].join(', ');
      throw new Error(`${path}: unknown key "${key}"; the keys are the flags of envelope ${cmd.name()}: ${keys}`);
    }
    const attr = option.attributeName();
    const twice = seen.get(attr);
    if (twice !== undefined) throw new Error(`${path}: "${twice}" and "${key}" are the same flag; keep one`);
    seen.set(attr, key);
    const source = cmd.getOptionValueSource(attr);
    if (source === 'cli' || source === 'env') continue;
    cmd.setOptionValueWithSource(attr, optionValue(path, key, option, value), 'config');
  }
}

function readConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the config file ${path}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`the config file ${path} is not JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`the config file ${path} must hold one JSON object, e.g. {"port": 8787, "store": "sqlite:./envelope.db"}`);
  }
  return parsed as Record<string, unknown>;
}

/** Options whose text is JSON (`--tenants`): in a file their value may be written as JSON itself. */
const JSON_VALUED = new WeakSet<Option>();
export function jsonValued(option: Option): Option {
  JSON_VALUED.add(option);
  return option;
}

/** A file value, checked and parsed exactly as the flag's own text would be. */
function optionValue(path: string, key: string, option: Option, value: unknown): unknown {
  const where = `${path}: "${key}"`;
  if (JSON_VALUED.has(option) && typeof value === 'object' && value !== null) value = JSON.stringify(value);
  if (option.isBoolean()) {
    if (typeof value !== 'boolean') throw new Error(`${where} is on or off: true or false`);
    return value;
  }
  // A repeatable flag (--webhook) takes a list; its parser folds the items as repeated flags would.
  const repeatable = Array.isArray(option.defaultValue);
  const items = repeatable && Array.isArray(value) ? value : [value];
  let parsed: unknown = repeatable ? [] : undefined;
  for (const item of items) {
    if (typeof item !== 'string' && !(typeof item === 'number' && Number.isFinite(item))) {
      throw new Error(`${where} must be ${repeatable ? 'a string or a list of strings' : 'a string or a number'}, as on the command line`);
    }
    const text = String(item);
    if (option.argChoices && !option.argChoices.includes(text)) {
      throw new Error(`${where} must be one of ${option.argChoices.join(', ')}; got "${text}"`);
    }
    try {
      parsed = option.parseArg ? option.parseArg(text, parsed) : text;
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  }
  return parsed;
}
