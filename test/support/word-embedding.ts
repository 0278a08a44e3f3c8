/**
 * A deterministic bag-of-words embedding for tests: each lower-cased word
 * adds 1 to a bucket chosen by its FNV-1a hash, and the vector is scaled to
 * unit length. Texts sharing words are close under cosine; no model needed.
 */
import type { Embedding } from '../../src/index.js';

export function wordVector(text: string, dimension: number): number[] {
  const v = new Array<number>(dimension).fill(0);
  for (const word of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
    let h = 0x811c9dc5;
    for (let i = 0; i < word.length; i++) h = Math.imul(h ^ word.charCodeAt(i), 0x01000193) >>> 0;
    v[h % dimension]! += 1;
  }
  const norm = Math.hypot(...v);
  return norm === 0 ? v.fill(1 / Math.sqrt(dimension)) : v.map((x) => x / norm); // no words: a fixed unit vector (cosine needs one)
}

/** An embedding that records every `embed` call's batch size. */
export function countingEmbedding(options: { name?: string; dimension?: number; batchSize?: number } = {}): Embedding & { calls: number[] } {
  const dimension = options.dimension ?? 16;
  const calls: number[] = [];
  const embedding: Embedding & { calls: number[] } = {
    name: options.name ?? 'words-16',
    calls,
    async embed(texts: string[]) {
      calls.push(texts.length);
      return texts.map((t) => wordVector(t, dimension));
    },
  };
  if (options.dimension !== undefined) embedding.dimension = options.dimension;
  if (options.batchSize !== undefined) embedding.batchSize = options.batchSize;
  return embedding;
}
