// How deep a request body may nest. JSON.parse reads any depth, but re-encoding a body (JSON.stringify, to forward it
// with the countdown in) recurses, and overflows the stack some thousands of levels down: a body nested 200,000 deep
// answered 502 "Maximum call stack size exceeded". Such a body is refused as a 400 when it is read, before anything
// is reserved.
import { EnvelopeError } from '../budget/errors.js';

/** Far deeper than any request a client sends (tool schemas nest a few dozen levels), far above where encoders fail. */
export const BODY_DEPTH_MAX = 512;

/** True for what JSON.parse builds and a structured walk may enter: arrays and plain objects (not class instances). */
function container(v: unknown): v is object {
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return true;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** How deep `value` nests arrays and objects, walked without recursion; stops counting past `max`. */
export function depthOf(value: unknown, max = BODY_DEPTH_MAX): number {
  if (!container(value)) return 0;
  const values: object[] = [value];
  const depths: number[] = [1];
  let deepest = 1;
  while (values.length > 0) {
    const v = values.pop()!;
    const depth = depths.pop()!;
    if (depth > deepest) deepest = depth;
    if (deepest > max) return deepest;
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const child of children) {
      if (!container(child)) continue;
      values.push(child);
      depths.push(depth + 1);
    }
  }
  return deepest;
}

/** Refuses a body nested deeper than BODY_DEPTH_MAX, in words a client can act on. */
export function checkDepth(body: unknown): void {
  if (depthOf(body) > BODY_DEPTH_MAX) {
    throw new EnvelopeError('invalid_request', `the request body nests arrays and objects more than ${BODY_DEPTH_MAX} levels deep; no model API takes such a body`);
  }
}
