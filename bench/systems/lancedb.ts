/**
 * LanceDB 0.31.0 (embedded, Rust core behind N-API): rows go into a Lance
 * table on disk, then an IVF_HNSW_SQ index is built over the vector column
 * with one IVF partition (so it is one HNSW graph, M=16, ef_construction=128)
 * and 8-bit scalar-quantised vectors, the closest LanceDB index to a plain
 * HNSW. Queries are async; `ef` is per query; "batched" = all queries issued
 * concurrently (it has no multi-query call for independent queries).
 */
import type * as lancedb from '@lancedb/lancedb';

/** Imported on first use, so processes measuring other systems do not load it. */
async function lance(): Promise<typeof lancedb> {
  return import('@lancedb/lancedb');
}
import type { EfSupport, SystemAdapter, SystemInstance, SystemSpec } from './types.js';

const TABLE = 'vectors';
const CHUNK = 10_000;

function distance(spec: SystemSpec): 'cosine' | 'l2' {
  return spec.metric === 'cosine' ? 'cosine' : 'l2';
}

class LanceInstance implements SystemInstance {
  private ef: number;
  constructor(
    private readonly db: lancedb.Connection,
    private table: lancedb.Table | undefined,
    private readonly spec: SystemSpec,
  ) {
    this.ef = spec.expansionSearch;
  }

  async insert(vectors: Float32Array, count: number): Promise<void> {
    const d = this.spec.dimension;
    for (let start = 0; start < count; start += CHUNK) {
      const rows: { id: number; vector: number[] }[] = [];
      for (let i = start; i < Math.min(count, start + CHUNK); i++) rows.push({ id: i, vector: Array.from(vectors.subarray(i * d, (i + 1) * d)) });
      if (!this.table) this.table = await this.db.createTable(TABLE, rows);
      else await this.table.add(rows);
    }
    const { Index } = await lance();
    await this.table!.createIndex('vector', {
      config: Index.hnswSq({
        distanceType: distance(this.spec),
        numPartitions: 1,
        m: this.spec.connectivity,
        efConstruction: this.spec.expansionAdd,
      }),
      replace: true,
    });
  }

  async persist(): Promise<void> {
    // Every add and the index are already committed to the Lance dataset on disk.
  }

  async setExpansionSearch(ef: number): Promise<EfSupport> {
    this.ef = ef;
    return 'ok';
  }

  private search(vector: Float32Array, k: number): lancedb.VectorQuery {
    return this.table!.vectorSearch(vector).distanceType(distance(this.spec)).limit(k).ef(this.ef).select(['id', '_distance']);
  }

  async query(vector: Float32Array, k: number): Promise<ArrayLike<number>> {
    const batch = await this.search(vector, k).toArrow();
    return Array.from(batch.getChild('id')!.toArray() as ArrayLike<number | bigint>, Number);
  }

  async queryBatch(vectors: Float32Array, count: number, k: number): Promise<ArrayLike<number>[]> {
    const d = this.spec.dimension;
    const pending: Promise<ArrayLike<number>>[] = [];
    for (let q = 0; q < count; q++) pending.push(this.query(vectors.subarray(q * d, (q + 1) * d), k));
    return Promise.all(pending);
  }

  async close(): Promise<void> {
    this.table?.close();
    this.db.close();
  }
}

export const lancedbAdapter: SystemAdapter = {
  key: 'lancedb',
  label: 'LanceDB',
  indexKind: 'IVF_HNSW_SQ, 1 partition (one HNSW graph, M=16, ef_construction=128, int8 SQ vectors), Lance files on disk',
  batchMode: 'all queries in flight at once (Promise.all); no multi-query call',
  async unavailable() {
    return undefined;
  },
  async create(spec) {
    const db = await (await lance()).connect(spec.dir);
    return new LanceInstance(db, undefined, spec);
  },
  async open(spec) {
    const db = await (await lance()).connect(spec.dir);
    const table = await db.openTable(TABLE);
    return new LanceInstance(db, table, spec);
  },
};
