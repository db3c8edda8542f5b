// Simulated prompt caching. A request is a list of segments (tools, system blocks, message blocks, in order);
// a breakpoint ends a cacheable prefix. A prefix seen before, byte for byte, is read from the cache; the longest
// new prefix is written. Prefixes under `minTokens` are never cached (as with the real providers).
import { createHash } from 'node:crypto';

export interface Segment {
  /** The segment's exact bytes (its JSON). */
  bytes: string;
  tokens: number;
  breakpoint: boolean;
}

export interface CacheUse {
  totalTokens: number;
  readTokens: number;
  writeTokens: number;
}

export class PromptCache {
  private readonly prefixes = new Set<string>();
  private readonly entriesMax: number;
  readonly minTokens: number;

  constructor(minTokens = 1_024, entriesMax = 100_000) {
    this.minTokens = minTokens;
    this.entriesMax = entriesMax;
  }

  account(segments: Segment[], write: boolean): CacheUse {
    let totalTokens = 0;
    let readTokens = 0;
    let longestNew: { key: string; tokens: number } | null = null;
    const fresh: string[] = [];
    const hash = createHash('sha256');
    for (const s of segments) {
      hash.update(s.bytes);
      totalTokens += s.tokens;
      if (!s.breakpoint || totalTokens < this.minTokens) continue;
      const key = hash.copy().digest('hex');
      if (this.prefixes.has(key)) readTokens = totalTokens;
      else {
        fresh.push(key);
        longestNew = { key, tokens: totalTokens };
      }
    }
    const writeTokens = write && longestNew && longestNew.tokens > readTokens ? longestNew.tokens - readTokens : 0;
    if (write) {
      for (const key of fresh) this.prefixes.add(key);
      if (this.prefixes.size > this.entriesMax) this.prefixes.clear();
    }
    return { totalTokens, readTokens, writeTokens };
  }
}
