// Reading a request body without building it (issue 16): one pass over the bytes that finds where the first few
// levels of values lie (a body's top-level fields, its messages, their role and content) and skips everything deeper
// without making objects or strings of it. A dialect reads the few values its decision needs from those ranges and
// splices the countdown into the bytes, so the body is never parsed whole nor encoded again.
//
// What the scan proves: the bytes are UTF-8 and one JSON value with JSON's grammar (brackets, commas, colons, keys,
// numbers, literals, whitespace), nested at most BODY_DEPTH_MAX deep, every string closed, and short strings checked
// byte by byte. A long string is skipped with a native search for its closing quote: a bad escape or a raw control
// byte inside one is left for the provider to refuse, as it refuses any broken body (its 400 comes back in its shape
// and the hold goes back), except raw tabs and line breaks, which are looked for natively and fall back. Anything
// the scan cannot vouch for makes it return null (or a dialect throw), and the body is parsed whole.
import { isUtf8 } from 'node:buffer';
import { BODY_DEPTH_MAX } from './body-depth.js';

export type JsonKind = 'object' | 'array' | 'string' | 'number' | 'true' | 'false' | 'null';

/** One value of a scanned body, by byte offsets into the buffer scanned. */
export interface JsonNode {
  kind: JsonKind;
  /** Its first byte. */
  start: number;
  /** One past its last byte. */
  end: number;
  /** As an object's member: where its key's opening quote is; else -1. */
  keyStart: number;
  /** An array's elements or an object's members, in order, when within the depth recorded; else null. */
  children: JsonNode[] | null;
  /** A recorded object's keys, decoded on first use (most members are never asked for by name). */
  keys?: string[];
}

/** Bytes that end a run of plain string bytes: the quote, the backslash, and the control bytes JSON refuses raw. */
const STRING_STOP = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) STRING_STOP[c] = 1;
STRING_STOP[0x22] = 1;
STRING_STOP[0x5c] = 1;
/** The characters that may follow a backslash (u is read apart). */
const ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') ESCAPE[c.charCodeAt(0)] = 1;
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;
const WS = new Uint8Array(256);
for (const c of ' \t\n\r') WS[c.charCodeAt(0)] = 1;

/** Bytes of a string checked one by one before the rest is left to a native search: keys, roles, short values. */
const SHORT_STRING_BYTES = 16;

/** The buffer of a scan, with where its next raw tab, line feed and carriage return are (found natively, lazily). */
interface Scan {
  b: Buffer;
  /** The next index ≥ the last asked for of each of \t \n \r, or b.length when there is none. */
  next: [number, number, number];
}

const CONTROL_WS = [0x09, 0x0a, 0x0d] as const;

/** The first raw tab, line feed or carriage return at or after `i`. */
function nextControl(s: Scan, i: number): number {
  let first = s.b.length;
  for (let k = 0; k < 3; k++) {
    if (s.next[k]! < i) {
      const at = s.b.indexOf(CONTROL_WS[k]!, i);
      s.next[k] = at === -1 ? s.b.length : at;
    }
    if (s.next[k]! < first) first = s.next[k]!;
  }
  return first;
}

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;

function skipWs(b: Uint8Array, i: number): number {
  while (WS[b[i]!] === 1) i++;
  return i;
}

/** The index after the string whose opening quote is at `i`; -1 when it is not a JSON string (as far as checked). */
function skipString(s: Scan, i: number): number {
  const b = s.b;
  const n = b.length;
  i++;
  const stop = Math.min(n, i + SHORT_STRING_BYTES);
  while (i < stop) {
    const c = b[i]!;
    if (STRING_STOP[c] === 0) {
      i++;
      continue;
    }
    if (c === 0x22) return i + 1;
    if (c !== 0x5c) return -1;
    const e = b[i + 1]!;
    if (e === 0x75) {
      if (HEX[b[i + 2]!] !== 1 || HEX[b[i + 3]!] !== 1 || HEX[b[i + 4]!] !== 1 || HEX[b[i + 5]!] !== 1) return -1;
      i += 6;
    } else if (ESCAPE[e] === 1) i += 2;
    else return -1;
  }
  // A long string: it ends at the first quote after an even run of backslashes (i is never inside an escape here).
  const from = i;
  for (;;) {
    const q = b.indexOf(0x22, i);
    if (q === -1) return -1;
    let k = q - 1;
    while (k >= from && b[k] === 0x5c) k--;
    if ((q - 1 - k) % 2 === 1) {
      i = q + 1;
      continue;
    }
    return nextControl(s, from) < q ? -1 : q + 1;
  }
}

/** The index after the number at `i`; -1 when it is not a JSON number. */
function skipNumber(b: Uint8Array, i: number): number {
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else if (isDigit(b[i])) while (isDigit(b[i])) i++;
  else return -1;
  if (b[i] === 0x2e) {
    i++;
    if (!isDigit(b[i])) return -1;
    while (isDigit(b[i])) i++;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!isDigit(b[i])) return -1;
    while (isDigit(b[i])) i++;
  }
  return i;
}

function skipLiteral(b: Uint8Array, i: number, word: string): number {
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) return -1;
  return i + word.length;
}

/** The index of a member's value, after its key at `i`, the colon and whitespace; -1 when they are not there. */
function afterKey(s: Scan, i: number): number {
  if (s.b[i] !== 0x22) return -1;
  const end = skipString(s, i);
  if (end === -1) return -1;
  i = skipWs(s.b, end);
  if (s.b[i] !== 0x3a) return -1;
  return skipWs(s.b, i + 1);
}

/**
 * Scans `b` as one JSON text (whitespace around it allowed, as JSON.parse allows): the root value, with the elements
 * and members of containers recorded `depth` levels down (0: the root alone; 3: a body's fields, its messages, their
 * fields). Null when `b` is not UTF-8 or not JSON, or nests deeper than BODY_DEPTH_MAX.
 */
export function scanJson(b: Buffer, depth: number): JsonNode | null {
  if (!isUtf8(b)) return null;
  const s: Scan = { b, next: [-1, -1, -1] };
  /** Per open container: 1 object, 2 array. */
  const kinds = new Uint8Array(BODY_DEPTH_MAX + 1);
  /** Per open container: its node when its children are recorded, else null. */
  const open: (JsonNode | null)[] = [null];
  /** Per open container: its node when recorded at all (its end is written when it closes), else null. */
  const ends: (JsonNode | null)[] = [null];
  let level = 0;
  let root: JsonNode | null = null;
  let i = skipWs(b, 0);
  let keyStart = -1;

  for (;;) {
    // A value starts at i.
    const c = b[i];
    const recorded = level === 0 || open[level] !== null;
    if (c === 0x7b || c === 0x5b) {
      if (level === BODY_DEPTH_MAX) return null;
      let node: JsonNode | null = null;
      if (recorded) {
        node = { kind: c === 0x7b ? 'object' : 'array', start: i, end: -1, keyStart, children: level < depth ? [] : null };
        if (level === 0) root = node;
        else open[level]!.children!.push(node);
      }
      level++;
      kinds[level] = c === 0x7b ? 1 : 2;
      open[level] = node?.children ? node : null;
      ends[level] = node;
      i = skipWs(b, i + 1);
      keyStart = -1;
      if (b[i] !== (c === 0x7b ? 0x7d : 0x5d)) {
        if (c === 0x7b) {
          keyStart = i;
          i = afterKey(s, i);
          if (i === -1) return null;
        }
        continue;
      }
    } else {
      let end: number;
      let kind: JsonKind;
      if (c === 0x22) {
        end = skipString(s, i);
        kind = 'string';
      } else if (c === 0x74) {
        end = skipLiteral(b, i, 'true');
        kind = 'true';
      } else if (c === 0x66) {
        end = skipLiteral(b, i, 'false');
        kind = 'false';
      } else if (c === 0x6e) {
        end = skipLiteral(b, i, 'null');
        kind = 'null';
      } else {
        end = skipNumber(b, i);
        kind = 'number';
      }
      if (end === -1) return null;
      if (recorded) {
        const node: JsonNode = { kind, start: i, end, keyStart, children: null };
        if (level === 0) root = node;
        else open[level]!.children!.push(node);
      }
      i = skipWs(b, end);
      if (level === 0) return i === b.length ? root : null;
    }
    // After a value: a comma and the next, or the end of its container (and maybe of those around it).
    for (;;) {
      const k = kinds[level];
      const d = b[i];
      if (d === 0x2c) {
        i = skipWs(b, i + 1);
        keyStart = -1;
        if (k === 1) {
          keyStart = i;
          i = afterKey(s, i);
          if (i === -1) return null;
        }
        break;
      }
      if (!((k === 1 && d === 0x7d) || (k === 2 && d === 0x5d))) return null;
      i++;
      const node = ends[level];
      if (node) node.end = i;
      level--;
      i = skipWs(b, i);
      if (level === 0) return i === b.length ? root : null;
    }
  }
}

/** A string value or key, decoded as JSON.parse would (only one with an escape is parsed). */
export function stringAt(b: Buffer, start: number, end: number): string {
  const inner = b.toString('utf8', start + 1, end - 1);
  return inner.includes('\\') ? (JSON.parse(b.toString('utf8', start, end)) as string) : inner;
}

/** Any value, parsed (for the few small ones a decision reads whole). */
export const valueAt = (b: Buffer, node: JsonNode): unknown => JSON.parse(b.toString('utf8', node.start, node.end));

/** Thrown by a dialect's scan for what it will not read by ranges; the body is then parsed whole. */
export class ScanFallback extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** The end of the key whose opening quote is at `i` (a key the scan has already checked). */
function keyEndAt(b: Buffer, i: number): number {
  for (i++; b[i] !== 0x22; i++) if (b[i] === 0x5c) i++;
  return i + 1;
}

/** An object's keys, decoded once; a key given twice is a fallback (JSON.parse keeps the last, a splice might not). */
function keysOf(b: Buffer, node: JsonNode): string[] {
  if (node.keys) return node.keys;
  const keys = node.children!.map((m) => stringAt(b, m.keyStart, keyEndAt(b, m.keyStart)));
  if (new Set(keys).size !== keys.length) throw new ScanFallback('duplicate_key');
  node.keys = keys;
  return keys;
}

/** An object node's member by key, or undefined (also for a node that is no recorded object). */
export function member(b: Buffer, node: JsonNode | undefined, key: string): JsonNode | undefined {
  if (node?.kind !== 'object' || !node.children) return undefined;
  const at = keysOf(b, node).indexOf(key);
  return at === -1 ? undefined : node.children[at];
}

/** A member's string value, or undefined when it is absent or no string. */
export function stringMember(b: Buffer, node: JsonNode | undefined, key: string): string | undefined {
  const m = member(b, node, key);
  return m?.kind === 'string' ? stringAt(b, m.start, m.end) : undefined;
}

/** True when the container at `node` holds nothing (read from the bytes: its children may not be recorded). */
const isEmpty = (b: Uint8Array, node: JsonNode): boolean => skipWs(b, node.start + 1) === node.end - 1;

/** A part of a buffer replaced by new text (`from === to`: inserted). */
export interface Edit {
  from: number;
  to: number;
  text: string;
}

/** Text added as the last element of an array or member of an object. */
export const appendTo = (b: Buffer, container: JsonNode, text: string): Edit => ({
  from: container.end - 1,
  to: container.end - 1,
  text: isEmpty(b, container) ? text : `,${text}`,
});

/** An object's member removed with one comma next to it, so the object stays JSON. */
export function removeMember(parent: JsonNode, m: JsonNode): Edit {
  const members = parent.children!;
  const k = members.indexOf(m);
  if (k < members.length - 1) return { from: m.keyStart, to: members[k + 1]!.keyStart, text: '' };
  if (k > 0) return { from: members[k - 1]!.end, to: m.end, text: '' };
  return { from: m.keyStart, to: m.end, text: '' };
}

/** A member's value replaced by `json`, or the member added at the end of the object when it has none. */
export function setMember(b: Buffer, parent: JsonNode, key: string, json: string): Edit {
  const m = member(b, parent, key);
  return m ? { from: m.start, to: m.end, text: json } : appendTo(b, parent, `${JSON.stringify(key)}:${json}`);
}

/**
 * A body as the pieces that make it, in order: slices of the client's buffer (never copied) around the edits' text.
 * A 1 MB body with a countdown spliced in is three pieces, not a second megabyte to allocate, copy and collect.
 */
export type BodyParts = readonly Buffer[];

/** The pieces' bytes in one buffer (a single piece as it is). */
export const joinParts = (parts: BodyParts): Buffer => (parts.length === 1 ? parts[0]! : Buffer.concat(parts as Buffer[]));

export const partsLength = (parts: BodyParts): number => parts.reduce((n, p) => n + p.length, 0);

/** The buffer with the edits made (they must not overlap), as pieces: the bytes between the edits are `b`'s own. */
export function splice(b: Buffer, edits: Edit[]): BodyParts {
  if (edits.length === 0) return [b];
  const sorted = [...edits].sort((x, y) => x.from - y.from || x.to - y.to);
  const parts: Buffer[] = [];
  let at = 0;
  for (const e of sorted) {
    if (e.from < at) throw new Error('splice: overlapping edits');
    if (e.from > at) parts.push(b.subarray(at, e.from));
    if (e.text) parts.push(Buffer.from(e.text, 'utf8'));
    at = e.to;
  }
  if (at < b.length) parts.push(b.subarray(at));
  return parts;
}

/** A value's bytes scanned again on their own, `depth` levels recorded, offsets kept those of `b`. */
export function scanAt(b: Buffer, node: JsonNode, depth: number): JsonNode {
  const inner = scanJson(b.subarray(node.start, node.end), depth);
  if (!inner) throw new ScanFallback('rescan');
  const shift = (n: JsonNode): void => {
    n.start += node.start;
    n.end += node.start;
    if (n.keyStart !== -1) n.keyStart += node.start;
    n.children?.forEach(shift);
  };
  shift(inner);
  return inner;
}

/** A request body scanned: its fields, their elements and those elements' fields recorded. */
export function scanBody(raw: Buffer): JsonNode {
  const body = scanJson(raw, 3);
  if (body?.kind !== 'object') throw new ScanFallback('not_json');
  return body;
}

/** Goes on only when `ok`: what a dialect's scan does not read by ranges is read by its parse. */
export function need(ok: boolean, reason = 'shape'): asserts ok {
  if (!ok) throw new ScanFallback(reason);
}

/** A member's value parsed, or undefined when it is absent (as a parsed body's field reads). */
export const parsedMember = (b: Buffer, node: JsonNode | undefined, key: string): unknown => {
  const m = member(b, node, key);
  return m ? valueAt(b, m) : undefined;
};

/**
 * `text` wrapped around a value's bytes without copying them through a string: `before` goes in front, `after`
 * behind (a string content turned into the first block of a list).
 */
export const wrap = (node: JsonNode, before: string, after: string): Edit[] => [
  { from: node.start, to: node.start, text: before },
  { from: node.end, to: node.end, text: after },
];
