/**
 * Vectra 0.12.3, a pure-JS store: every item lives in one `index.json`, loaded
 * whole into memory; a query is an exact linear scan with cosine similarity
 * (no ANN index, no ef, no other metric). 0.15 needs Node 22, so 0.12.3 is
 * the newest whose engines allow Node 20. Only run on the small sets.
 */
import type { LocalIndex } from 'vectra';
import type { EfSupport, SystemAdapter, SystemInstance, SystemSpec } from './types.js';

/** Above this many vectors a full run skips Vectra (whole-file JSON, linear scan). */
const MAX_ROWS = 50_000;
/** In a quick run, only the small GloVe sets (up to 9,500 × 50 values' worth). */
const QUICK_MAX_VALUES = 9_500 * 50;

/** Imported on first use: vectra's entry pulls in its OpenAI/web helpers (over a second). */
async function newIndex(dir: string): Promise<LocalIndex> {
  const { LocalIndex: Index } = await import('vectra');
  return new Index(dir);
}

class VectraInstance implements SystemInstance {
  constructor(
    private readonly index: LocalIndex,
    private readonly spec: SystemSpec,
  ) {}

  async insert(vectors: Float32Array, count: number): Promise<void> {
    const d = this.spec.dimension;
    if (!(await this.index.isIndexCreated())) await this.index.createIndex({ version: 1, deleteIfExists: true });
    await this.index.beginUpdate();
    for (let i = 0; i < count; i++) {
      await this.index.insertItem({ id: String(i), vector: Array.from(vectors.subarray(i * d, (i + 1) * d)), metadata: { row: i } });
    }
    await this.index.endUpdate();
  }

  async persist(): Promise<void> {
    // endUpdate() already wrote index.json.
  }

  async setExpansionSearch(): Promise<EfSupport> {
    return 'no-knob';
  }

  async query(vector: Float32Array, k: number): Promise<ArrayLike<number>> {
    const hits = await this.index.queryItems(Array.from(vector), '', k);
    return hits.map((h) => Number(h.item.id));
  }

  async queryBatch(vectors: Float32Array, count: number, k: number): Promise<ArrayLike<number>[]> {
    const d = this.spec.dimension;
    const out: ArrayLike<number>[] = [];
    for (let q = 0; q < count; q++) out.push(await this.query(vectors.subarray(q * d, (q + 1) * d), k));
    return out;
  }

  async close(): Promise<void> {
    // Nothing held but memory.
  }
}

export const vectraAdapter: SystemAdapter = {
  key: 'vectra',
  label: 'Vectra (pure JS)',
  indexKind: 'none: exact linear scan over index.json (cosine only)',
  batchMode: 'no batch API: batched = single-query figure',
  batchIsLoop: true,
  async unavailable({ metric, count, dimension, quick }) {
    if (metric !== 'cosine') return 'Vectra only ranks by cosine similarity; this dataset is euclidean';
    if (quick && count * dimension > QUICK_MAX_VALUES) return 'quick run: Vectra (an exact JS scan, tens of ms per query) only runs on the small GloVe sets';
    if (count > MAX_ROWS) return `Vectra keeps one JSON file and scans linearly: skipped above ${MAX_ROWS} vectors`;
    return undefined;
  },
  async create(spec) {
    return new VectraInstance(await newIndex(spec.dir), spec);
  },
  async open(spec) {
    return new VectraInstance(await newIndex(spec.dir), spec);
  },
};
