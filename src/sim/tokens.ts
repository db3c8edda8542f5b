// The simulator's deterministic token counts. Tests elsewhere compute expected usage from these formulas:
//   text          ceil(characters / 4)
//   message       3 + its content (text blocks; tool_use / tool_result / tool_calls as their JSON or text + 3)
//   system, tools the text / the JSON of the definitions
// Output: `outputTokens` per answer (option, or header x-sim-output-tokens), never above max_tokens.

export const textTokens = (text: string): number => Math.ceil(text.length / 4);

export const MESSAGE_OVERHEAD_TOKENS = 3;

/** Tokens of any message content: a string, or blocks / parts with text, tool calls and tool results. */
export function contentTokens(content: unknown): number {
  if (typeof content === 'string') return textTokens(content);
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const block of content) n += blockTokens(block);
  return n;
}

export function blockTokens(block: unknown): number {
  if (typeof block !== 'object' || block === null) return 0;
  const b = block as Record<string, unknown>;
  if (typeof b.text === 'string') return textTokens(b.text);
  if (b.type === 'tool_use') return MESSAGE_OVERHEAD_TOKENS + textTokens(JSON.stringify(b.input ?? {}));
  if (b.type === 'tool_result') return MESSAGE_OVERHEAD_TOKENS + contentTokens(b.content);
  return textTokens(JSON.stringify(b));
}

/** Text of `n` output tokens: exactly `n × 4` characters, so textTokens() of it is `n`. */
export function outputText(n: number, lead = ''): string {
  const target = n * 4;
  if (lead.length >= target) return lead.slice(0, target);
  const filler = ' lorem ipsum dolor sit amet';
  let text = lead;
  while (text.length < target) text += filler;
  return text.slice(0, target);
}

/** The text of message content: a string, or its text blocks / parts joined. */
export const textOf = (content: unknown): string =>
  typeof content === 'string'
    ? content
    : Array.isArray(content)
      ? content.map((b) => (typeof b?.text === 'string' ? b.text : '')).join('\n')
      : '';
