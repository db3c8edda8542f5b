// The scan of request bodies (issue 16, providers/json-scan.ts) against the parse it stands in for: for generated
// bodies of every dialect, written compactly, pretty-printed and with escapes, a body the scan reads has the same
// CallShape as `parse` gives, and its spliced rewrite parses to exactly what `prepare` (and `strip`) make of the parsed
// body, with every message but the one the countdown goes into byte for byte as the client sent it. A body the scan
// does not read is one `parse` refuses or one it names a reason for; one that is not JSON is never read.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { anthropic } from '../src/providers/anthropic.js';
import { gemini } from '../src/providers/gemini.js';
import { joinParts, member, scanBody, scanJson, ScanFallback } from '../src/providers/json-scan.js';
import { openai } from '../src/providers/openai.js';
import { openaiResponses } from '../src/providers/openai-responses.js';
import type { CallPlan, Provider } from '../src/providers/provider.js';
import { anthropicBody, chatBody, geminiBody, geminiPath, responsesBody, wire } from './helpers/fuzz-arbitraries.js';

const params = { seed: 1616, numRuns: 300, endOnFailure: true, includeErrorInReport: true };

/** JSON text of a value written three ways: as JSON.stringify does, pretty-printed, and with escapes in every string. */
function encode(value: unknown, style: 'compact' | 'pretty' | 'escaped'): string {
  if (style === 'compact') return JSON.stringify(value);
  if (style === 'pretty') return JSON.stringify(value, null, 2);
  // \u escapes for letters and \/ for slashes, in keys and values alike: what other encoders write.
  return JSON.stringify(value).replace(/"(?:[^"\\]|\\.)*"/g, (s) => s.replace(/[aeiou]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`).replace(/\//g, '\\/'));
}

const plan = fc.record({
  maxTokens: fc.option(fc.integer({ min: 1, max: 64_000 })),
  countdown: fc.option(fc.string({ unit: 'grapheme', maxLength: 40 })),
  nativeBudget: fc.option(fc.record({ total: fc.integer({ min: 20_000, max: 10 ** 9 }), remaining: fc.integer({ min: 20_000, max: 10 ** 6 }) })),
}) as fc.Arbitrary<CallPlan>;

const tryParse = (provider: Provider, body: unknown, path: string): ReturnType<Provider['parse']> | Error => {
  try {
    return provider.parse(body, path);
  } catch (e) {
    return e as Error;
  }
};

/** The messages (or input items, or contents) of a body, each as its bytes. */
function turnBytes(raw: Buffer, field: string): string[] {
  const list = member(raw, scanBody(raw), field);
  return list?.kind === 'array' ? list.children!.map((m) => raw.toString('utf8', m.start, m.end)) : [];
}

const parses = (text: string): boolean => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

const LIST_FIELD: Record<string, string> = { anthropic: 'messages', openai: 'messages', 'openai-responses': 'input', gemini: 'contents' };

function checkOne(provider: Provider, value: unknown, path: string, style: 'compact' | 'pretty' | 'escaped', plans: CallPlan[], fallbacks: Map<string, number>): void {
  const text = encode(value, style);
  const raw = Buffer.from(text);
  const parsed = tryParse(provider, JSON.parse(text), path);
  let scanned;
  try {
    scanned = provider.scan!(raw, path);
  } catch (e) {
    assert.ok(e instanceof ScanFallback || parsed instanceof Error, `the scan threw ${(e as Error).message} on a body parse reads: ${text.slice(0, 300)}`);
    if (!(parsed instanceof Error)) fallbacks.set((e as ScanFallback).reason, (fallbacks.get((e as ScanFallback).reason) ?? 0) + 1);
    return;
  }
  assert.ok(!(parsed instanceof Error), `the scan read a body parse refuses (${(parsed as Error).message}): ${text.slice(0, 300)}`);
  assert.deepEqual(scanned.shape, parsed, text.slice(0, 300));
  assert.deepEqual(JSON.parse(joinParts(scanned.strip()).toString()), provider.strip(JSON.parse(text) as Record<string, unknown>), `strip: ${text.slice(0, 300)}`);
  for (const p of plans) {
    const spliced = joinParts(scanned.prepare(p));
    const expected = provider.prepare(JSON.parse(text) as Record<string, unknown>, p);
    assert.deepEqual(JSON.parse(spliced.toString()), expected, `prepare ${JSON.stringify(p)}: ${text.slice(0, 300)}`);
    // Every turn but the one the countdown goes into keeps the client's own bytes (its escapes, its spacing); a
    // countdown in a turn of its own leaves all of them so.
    const before = turnBytes(raw, LIST_FIELD[provider.name]!);
    const after = turnBytes(spliced, LIST_FIELD[provider.name]!);
    const changed = before.filter((t, i) => after[i] !== t).length;
    assert.ok(after.length === before.length ? changed <= (p.countdown ? 1 : 0) : after.length === before.length + 1 && changed === 0, `turns rewritten: ${text.slice(0, 300)}`);
  }
}

const dialects: Array<[Provider, fc.Arbitrary<unknown>, fc.Arbitrary<string>]> = [
  [anthropic, anthropicBody, fc.constant('/v1/messages')],
  [openai, chatBody, fc.constant('/v1/chat/completions')],
  [openaiResponses, responsesBody, fc.constant('/v1/responses')],
  [gemini, geminiBody, geminiPath.map((p) => p.split('?')[0]!)],
];

describe('request body scan (issue 16)', () => {
  for (const [provider, body, path] of dialects) {
    it(`${provider.name}: a scanned body reads and rewrites exactly as the parsed one, in any JSON encoding`, () => {
      const fallbacks = new Map<string, number>();
      let read = 0;
      fc.assert(
        fc.property(body, path, fc.array(plan, { minLength: 1, maxLength: 3 }), (value, p, plans) => {
          for (const style of ['compact', 'pretty', 'escaped'] as const) checkOne(provider, value, p, style, plans, fallbacks);
          read++;
        }),
        params,
      );
      assert.equal(read, params.numRuns);
      // Bodies written by an encoder never give the scan a reason to stop: every one parse reads, the scan reads.
      assert.deepEqual([...fallbacks], []);
    });

    it(`${provider.name}: a body that is not JSON is never read by the scan`, () => {
      fc.assert(
        fc.property(wire(body), path, (text, p) => {
          if (parses(text)) return;
          assert.throws(() => provider.scan!(Buffer.from(text), p), ScanFallback, text.slice(0, 200));
        }),
        params,
      );
    });
  }

  it('reads what JSON.parse reads and nothing else', () => {
    const cases: Array<[string, boolean]> = [
      ['{"a":1,}', false], ['{"a":01}', false], ['{"a":"\t"}', false], ['[1 2]', false], ['{"a":1}x', false], ['{"a":"\\x"}', false],
      ['{"a":-}', false], ['{"a":1.}', false], ['{"a":1e}', false], ['{"a":tru}', false], ['{"a":"\\u12"}', false], ['\ufeff{}', false],
      [`{"a":"${'x'.repeat(100)}\n"}`, false], [`{"a":"${'x'.repeat(100)}\\"}`, false], ['{"a" 1}', false], ['{,}', false], ['', false],
      [' {"a":[1,{"b":null}]} ', true], ['{}', true], ['[]', true], ['"x"', true], ['-0.5e+3', true], ['{"a":"\\u00e9\\/\\n"}', true],
      [`{"a":"${'x'.repeat(100)}\\\\"}`, true], [`{"a":"${'x'.repeat(100)}\\"y"}`, true], ['{"a":1,"a":2}', true],
    ];
    for (const [text, ok] of cases) {
      assert.equal(parses(text), ok, `JSON.parse ${JSON.stringify(text)}`);
      assert.equal(scanJson(Buffer.from(text), 3) !== null, ok, JSON.stringify(text));
    }
    // Invalid UTF-8 is parsed whole (JSON.parse would read it with replacement characters, the bytes are not those).
    assert.equal(scanJson(Buffer.from([0x22, 0xff, 0x22]), 0), null);
  });

  it('reads bodies nested up to the depth limit, and no deeper', () => {
    const nested = (depth: number): Buffer => Buffer.from(`{"messages":[{"role":"user","content":"hi"}],"x":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`);
    assert.notEqual(scanJson(nested(512), 3), null);
    assert.equal(scanJson(nested(513), 3), null);
    assert.equal(scanJson(Buffer.from(`${'['.repeat(200_000)}${']'.repeat(200_000)}`), 3), null);
  });

  it('names a key given twice as its reason, where it reads keys', () => {
    const raw = Buffer.from('{"model":"claude-sonnet-4-6","max_tokens":10,"max_tokens":20,"messages":[{"role":"user","content":"hi"}]}');
    assert.throws(() => anthropic.scan!(raw, '/v1/messages'), (e: unknown) => e instanceof ScanFallback && e.reason === 'duplicate_key');
  });
});
