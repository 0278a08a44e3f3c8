/**
 * Interim engine over the stock usearch JS binding. It blocks the event loop
 * during add/search and cannot serialize to memory, so indexes using it are
 * rebuilt from their encrypted records on open. The native engine replaces it.
 */
import { Index, type MetricKind, type ScalarKind } from 'usearch';
import { NotSupportedError } from '../errors.js';
import type { AnnEngine, EngineFactory, EngineOptions, SearchOptions, SearchResult } from './types.js';

class StockEngine implements AnnEngine {
  private readonly index: Index;

  constructor(readonly options: Readonly<EngineOptions>) {
    this.index = new Index({
      dimensions: options.dimension,
      metric: options.metric as MetricKind,
      quantization: options.precision as ScalarKind,
      connectivity: options.connectivity,
      expansion_add: options.expansionAdd,
      expansion_search: options.expansionSearch,
      multi: false,
    });
  }

  size(): number {
    return this.index.size();
  }

  async add(keys: BigUint64Array, vectors: Float32Array): Promise<void> {
    if (keys.length > 0) this.index.add(keys, vectors, 0);
  }

  async remove(keys: BigUint64Array): Promise<number> {
    let removed = 0;
    for (const key of keys) removed += this.index.contains(key) ? Number(this.index.remove(key)) : 0;
    return removed;
  }

  async search(queries: Float32Array, k: number, options: SearchOptions = {}): Promise<SearchResult> {
    if (options.allowedKeys || options.expansionSearch !== undefined) {
      throw new NotSupportedError('The stock usearch binding cannot filter or change expansionSearch per query.');
    }
    const n = queries.length / this.options.dimension;
    const result = this.index.search(n === 1 ? queries : queries, k, 0) as unknown as {
      keys: BigUint64Array;
      distances: Float32Array;
      counts?: BigUint64Array | number;
    };
    if (n === 1) {
      const count = result.keys.length;
      const keys = new BigUint64Array(k);
      const distances = new Float32Array(k);
      keys.set(result.keys.subarray(0, count));
      distances.set(result.distances.subarray(0, count));
      return { keys, distances, counts: Uint32Array.of(count), k };
    }
    const counts = new Uint32Array(n);
    const raw = result.counts as BigUint64Array;
    for (let i = 0; i < n; i++) counts[i] = Number(raw[i]);
    return { keys: result.keys, distances: result.distances, counts, k };
  }

  contains(key: bigint): boolean {
    return this.index.contains(key) as boolean;
  }

  async serialize(): Promise<Uint8Array> {
    throw new NotSupportedError('The stock usearch binding cannot serialize to memory.');
  }

  memoryUsage(): number {
    const o = this.options;
    const bytesPerScalar = o.precision === 'f32' ? 4 : o.precision === 'f16' ? 2 : 1;
    return this.index.capacity() * (o.dimension * bytesPerScalar + o.connectivity * 2 * 4 + 16);
  }

  async close(): Promise<void> {}
}

export const stockEngine: EngineFactory = {
  name: 'usearch-stock',
  create: (options) => new StockEngine(options),
  deserialize: async () => {
    throw new NotSupportedError('The stock usearch binding cannot deserialize from memory.');
  },
};
