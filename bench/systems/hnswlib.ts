/**
 * hnswlib-node 3.0.0: the C++ hnswlib behind a synchronous N-API binding.
 * Points go in as plain `number[]`, one `addPoint` call each, single-threaded;
 * it has no batch search, so "batched" is a loop of `searchKnn` calls.
 */
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import type { EfSupport, SystemAdapter, SystemInstance, SystemSpec } from './types.js';

const FILE = 'index.hnsw';

type Hnsw = InstanceType<typeof hnswlib.HierarchicalNSW>;

function space(spec: SystemSpec): 'cosine' | 'l2' {
  return spec.metric === 'cosine' ? 'cosine' : 'l2';
}

class HnswlibInstance implements SystemInstance {
  constructor(
    private readonly index: Hnsw,
    private readonly spec: SystemSpec,
  ) {}

  async insert(vectors: Float32Array, count: number): Promise<void> {
    const d = this.spec.dimension;
    if (this.index.getMaxElements() < count) this.index.resizeIndex(count);
    for (let i = 0; i < count; i++) this.index.addPoint(Array.from(vectors.subarray(i * d, (i + 1) * d)), i);
  }

  async persist(): Promise<void> {
    await this.index.writeIndex(join(this.spec.dir, FILE));
  }

  async setExpansionSearch(ef: number): Promise<EfSupport> {
    this.index.setEf(ef);
    return 'ok';
  }

  async query(vector: Float32Array, k: number): Promise<ArrayLike<number>> {
    return this.index.searchKnn(Array.from(vector), k).neighbors;
  }

  async queryBatch(vectors: Float32Array, count: number, k: number): Promise<ArrayLike<number>[]> {
    const d = this.spec.dimension;
    const out: number[][] = [];
    for (let q = 0; q < count; q++) out.push(this.index.searchKnn(Array.from(vectors.subarray(q * d, (q + 1) * d)), k).neighbors);
    return out;
  }

  async close(): Promise<void> {
    // No close() in the binding.
  }
}

export const hnswlibAdapter: SystemAdapter = {
  key: 'hnswlib',
  label: 'hnswlib-node',
  indexKind: 'HNSW (C++ hnswlib via hnswlib-node 3.0.0), writeIndex/readIndex file',
  batchMode: 'no batch API: batched = single-query figure',
  batchIsLoop: true,
  async unavailable() {
    return undefined;
  },
  async create(spec) {
    const index = new hnswlib.HierarchicalNSW(space(spec), spec.dimension);
    index.initIndex({ maxElements: 1024, m: spec.connectivity, efConstruction: spec.expansionAdd, randomSeed: 100 });
    index.setEf(spec.expansionSearch);
    return new HnswlibInstance(index, spec);
  },
  async open(spec) {
    const index = new hnswlib.HierarchicalNSW(space(spec), spec.dimension);
    await index.readIndex(join(spec.dir, FILE));
    index.setEf(spec.expansionSearch);
    return new HnswlibInstance(index, spec);
  },
};
