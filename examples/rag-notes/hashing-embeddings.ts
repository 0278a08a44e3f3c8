/**
 * A deterministic, offline stand-in for an embedding model: each word (lower
 * case, a plural "s" dropped, common words skipped) adds 1 to one of
 * `dimension` buckets picked by its hash, and the vector is scaled to unit
 * length. Texts that share words are close under cosine. It knows nothing of
 * meaning ("bread" and "loaf" are unrelated to it): swap in a real model for
 * real use (see main.ts).
 */
import { Embeddings } from '@langchain/core/embeddings';

const STOPWORDS = new Set('a an and are at be by do does for from how i in is it of on or should the then to what when where which with'.split(' '));

export class HashingEmbeddings extends Embeddings {
  /** Recorded in the index (`embeddingName`): reopening with another model is refused. */
  readonly name: string;
  readonly dimension: number;

  constructor(dimension = 256) {
    super({});
    this.dimension = dimension;
    this.name = `hashing-bow-${dimension}`;
  }

  embedDocuments(texts: string[]): Promise<number[][]> {
    return Promise.resolve(texts.map((text) => this.#vector(text)));
  }

  embedQuery(text: string): Promise<number[]> {
    return Promise.resolve(this.#vector(text));
  }

  #vector(text: string): number[] {
    const v = new Array<number>(this.dimension).fill(0);
    for (const raw of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
      if (STOPWORDS.has(raw)) continue;
      const word = raw.length > 3 && raw.endsWith('s') ? raw.slice(0, -1) : raw;
      let h = 0x811c9dc5; // FNV-1a
      for (let i = 0; i < word.length; i++) h = Math.imul(h ^ word.charCodeAt(i), 0x01000193) >>> 0;
      v[h % this.dimension]! += 1;
    }
    const norm = Math.hypot(...v);
    // A text with no words still needs a direction under cosine.
    return norm === 0 ? v.fill(1 / Math.sqrt(this.dimension)) : v.map((x) => x / norm);
  }
}
