// Stream deltas read without parsing (issue 16, providers/provider.ts PLAIN): for any text, a meter fed a provider's
// delta events counts exactly what it counts when every event is parsed, whether the event is written as the
// provider writes it (read by its pattern) or any other way (parsed); and the providers' own formats, as the
// simulator writes them, are the ones the patterns read.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { anthropic, PLAIN_TEXT_DELTA as ANTHROPIC_TEXT, PLAIN_THINKING_DELTA } from '../src/providers/anthropic.js';
import { openai, PLAIN_CONTENT_CHUNK } from '../src/providers/openai.js';
import { openaiResponses, PLAIN_TEXT_DELTA as RESPONSES_TEXT } from '../src/providers/openai-responses.js';
import { DeliveredOutput, type Provider } from '../src/providers/provider.js';

const params = { seed: 1616, numRuns: 400 };

interface Format {
  provider: Provider;
  event: string | undefined;
  /** The event's data for a delta of `text`, in the provider's field order, with `extra` fields where it allows them. */
  data(text: string, n: number, extra: boolean): string;
  pattern: RegExp;
}

const formats: Record<string, Format> = {
  'Anthropic text': {
    provider: anthropic,
    event: 'content_block_delta',
    data: (text, n, extra) => JSON.stringify({ type: 'content_block_delta', index: n, delta: { type: 'text_delta', text, ...(extra ? { note: 1 } : {}) } }),
    pattern: ANTHROPIC_TEXT,
  },
  'Anthropic thinking': {
    provider: anthropic,
    event: 'content_block_delta',
    data: (text, n, extra) => JSON.stringify({ type: 'content_block_delta', index: n, delta: { type: 'thinking_delta', thinking: text }, ...(extra ? { x: [1] } : {}) }),
    pattern: PLAIN_THINKING_DELTA,
  },
  'OpenAI chat': {
    provider: openai,
    event: undefined,
    data: (text, n, extra) =>
      JSON.stringify({
        id: `chatcmpl-${n}`,
        object: 'chat.completion.chunk',
        created: 1_700_000_000 + n,
        model: 'gpt-4o-mini',
        ...(n % 2 ? { service_tier: 'default', system_fingerprint: 'fp_1' } : {}),
        choices: [{ index: 0, delta: extra ? { content: text, refusal: text } : { content: text }, logprobs: null, finish_reason: null }],
        ...(n % 3 ? { usage: null } : {}),
        ...(n % 5 === 0 ? { obfuscation: 'abc' } : {}),
      }),
    pattern: PLAIN_CONTENT_CHUNK,
  },
  'OpenAI Responses': {
    provider: openaiResponses,
    event: 'response.output_text.delta',
    data: (text, n, extra) =>
      JSON.stringify({ type: 'response.output_text.delta', sequence_number: n, item_id: `msg_${n}`, output_index: 0, content_index: 0, delta: text, logprobs: [], ...(extra ? { more: true } : {}) }),
    pattern: RESPONSES_TEXT,
  },
};

/** Any text: plain words, quotes and backslashes, control bytes, any code point. */
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom('', 'plain words', 'a "quote"', 'back\\slash', 'tab\there', 'line\nbreak', 'é 漢字 🙂'));

describe('stream deltas read without parsing', () => {
  for (const [name, f] of Object.entries(formats)) {
    it(`${name}: the meter counts exactly what parsing every delta counts`, () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(text, fc.boolean()), { maxLength: 12 }), (deltas) => {
          const meter = f.provider.streamMeter();
          const reference = new DeliveredOutput();
          deltas.forEach(([t, extra], n) => {
            const data = f.data(t, n, extra);
            meter.push(f.event, data);
            const parsed = JSON.parse(data) as { delta?: { text?: string; thinking?: string; content?: string; refusal?: string } | string; choices?: Array<{ delta: { content: string; refusal?: string } }> };
            if (typeof parsed.delta === 'string') reference.add(parsed.delta);
            else if (parsed.delta) reference.add(parsed.delta.text ?? parsed.delta.thinking);
            else for (const c of parsed.choices!) (reference.add(c.delta.content), reference.add(c.delta.refusal));
          });
          assert.equal(meter.outputTokensDelivered(), reference.tokens());
        }),
        params,
      );
    });

    it(`${name}: the pattern reads the provider's own format and nothing it would have to unescape`, () => {
      assert.equal(f.pattern.exec(f.data('plain words', 3, false))?.[1], 'plain words');
      assert.equal(f.pattern.exec(f.data('plain words', 4, false))?.[1], 'plain words');
      for (const t of ['a "quote"', 'back\\slash', 'line\nbreak', 'x\u0001']) assert.equal(f.pattern.exec(f.data(t, 3, false)), null, t);
      assert.equal(f.pattern.exec(f.data('plain', 3, true)), null);
      assert.equal(f.pattern.exec(` ${f.data('plain', 3, false)}`), null);
    });
  }
});
