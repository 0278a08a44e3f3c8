/**
 * Raw usearch (the stock npm binding, 2.25.x): the engine vecvault wraps, with
 * no encryption and no storage. Our ceiling. Its binding has no per-query ef,
 * so `setExpansionSearch` reloads the saved file into an index constructed
 * with the new `expansion_search` (the file does not carry ef; measured).
 * Its `add`/`search` are synchronous and block the event loop.
 */
import { join } from 'node:path';
import usearch from 'usearch';
import type { EfSupport, SystemAdapter, SystemInstance, SystemSpec } from './types.js';

const FILE = 'index.usearch';

type UsearchIndex = InstanceType<typeof usearch.Index>;

function newIndex(spec: SystemSpec, ef: number): UsearchIndex {
  return new usearch.Index({
    dimensions: spec.dimension,
    metric: spec.metric === 'cosine' ? usearch.MetricKind.Cos : usearch.MetricKind.L2sq,
    quantization: usearch.ScalarKind.F32,
    connectivity: spec.connectivity,
    expansion_add: spec.expansionAdd,
    expansion_search: ef,
    multi: false,
  });
}

function matchesToRows(keys: BigUint64Array, from: number, count: number): number[] {
  const rows: number[] = [];
  for (let j = 0; j < count; j++) rows.push(Number(keys[from + j]!));
  return rows;
}

class UsearchInstance implements SystemInstance {
  private saved = false;
  constructor(
    private index: UsearchIndex,
    private readonly spec: SystemSpec,
  ) {}

  async insert(vectors: Float32Array, count: number): Promise<void> {
    const keys = new BigUint64Array(count);
    for (let i = 0; i < count; i++) keys[i] = BigInt(i);
    this.index.add(keys, vectors, 0);
  }

  async persist(): Promise<void> {
    this.index.save(join(this.spec.dir, FILE));
    this.saved = true;
  }

  async setExpansionSearch(ef: number): Promise<EfSupport> {
    if (!this.saved) await this.persist();
    // Let the old graph go before loading the new copy, or peak RSS counts both.
    this.index = newIndex(this.spec, ef);
    (globalThis as { gc?: () => void }).gc?.();
    const next = newIndex(this.spec, ef);
    next.load(join(this.spec.dir, FILE));
    this.index = next;
    return 'ok';
  }

  async query(vector: Float32Array, k: number): Promise<ArrayLike<number>> {
    const m = this.index.search(vector, k, 1);
    return matchesToRows(m.keys, 0, m.keys.length);
  }

  async queryBatch(vectors: Float32Array, count: number, k: number): Promise<ArrayLike<number>[]> {
    if (count === 1) return [await this.query(vectors, k)];
    const m = this.index.search(vectors, k, 0) as unknown as InstanceType<typeof usearch.BatchMatches>;
    const out: number[][] = [];
    for (let q = 0; q < count; q++) out.push(matchesToRows(m.keys, q * k, Number(m.counts[q]!)));
    return out;
  }

  async close(): Promise<void> {
    // The stock binding has no close(); memory goes with GC.
  }
}

export const usearchAdapter: SystemAdapter = {
  key: 'usearch',
  label: 'raw usearch',
  indexKind: 'HNSW (usearch 2.25.3, f32), saved to a plaintext file',
  batchMode: 'one search() call over all queries, threads=0 (all cores)',
  async unavailable() {
    return undefined;
  },
  async create(spec) {
    return new UsearchInstance(newIndex(spec, spec.expansionSearch), spec);
  },
  async open(spec) {
    const index = newIndex(spec, spec.expansionSearch);
    index.load(join(spec.dir, FILE));
    const instance = new UsearchInstance(index, spec);
    (instance as unknown as { saved: boolean }).saved = true;
    return instance;
  },
};
