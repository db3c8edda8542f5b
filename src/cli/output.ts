// How commands print: plain text for people, --json for programs, errors with what to do next.
import { isEnvelopeError } from '../budget/errors.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function reportError(e: unknown): void {
  if (isEnvelopeError(e)) process.stderr.write(`envelope: ${e.message}\n`);
  else if (e instanceof Error) process.stderr.write(`envelope: ${e.message}\n`);
  else process.stderr.write(`envelope: ${String(e)}\n`);
}
