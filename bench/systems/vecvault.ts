/**
 * vecvault through its public API (the Client and index API in the README), exactly as a user calls it:
 * `Client` over a LevelDB directory, records encrypted, usearch HNSW inside.
 * The module is imported at run time so the suite still runs (and says why
 * vecvault was skipped) while `src/index.ts` does not exist.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { EfSupport, ExtrasContext, SystemAdapter, SystemInstance, SystemSpec } from './types.js';
import { medianOf, timedPass } from '../lib/measure.js';

const SRC_INDEX = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'index.ts');
const INDEX_NAME = 'bench';
/** Rows per upsert call: whole small sets in one call, big ones in a few. */
const UPSERT_CHUNK = 50_000;

// The slice of the public API (see the README) the benchmark uses.
interface QueryItem {
  id: string;
  distance?: number;
  metadata?: unknown;
}
interface VecvaultIndex {
  upsert(req: { ids: string[]; vectors: Float32Array[]; metadata?: Record<string, unknown>[] }): Promise<unknown>;
  query(req: {
    queryVectors: number[] | number[][] | Float32Array;
    topK: number;
    include?: string[];
    dimension?: number;
    expansionSearch?: number;
  }): Promise<{ results: QueryItem[] | QueryItem[][] }>;
  get(req: { ids: string[]; include?: string[] }): Promise<{ id: string }[]>;
}
interface VecvaultClient {
  createIndex(req: {
    indexName: string;
    indexKey: Uint8Array;
    dimension: number;
    metric: string;
    indexConfig?: { connectivity?: number; expansionAdd?: number; expansionSearch?: number };
  }): Promise<VecvaultIndex>;
  loadIndex(req: { indexName: string; indexKey: Uint8Array }): Promise<VecvaultIndex>;
  close(): Promise<void>;
}
interface VecvaultModule {
  Client: { new (options: { path: string }): VecvaultClient; generateKey(): Uint8Array };
}

let loaded: Promise<VecvaultModule> | undefined;
function load(): Promise<VecvaultModule> {
  loaded ??= import(pathToFileURL(SRC_INDEX).href) as Promise<VecvaultModule>;
  return loaded;
}

// One key per process: `open` must use the key `create` made.
const keys = new Map<string, Uint8Array>();
function keyFor(mod: VecvaultModule, dir: string): Uint8Array {
  let key = keys.get(dir);
  if (!key) {
    key = mod.Client.generateKey();
    keys.set(dir, key);
  }
  return key;
}

function rows(results: QueryItem[] | QueryItem[][]): number[][] {
  const nested = results.length > 0 && Array.isArray(results[0]) ? (results as QueryItem[][]) : [results as QueryItem[]];
  return nested.map((r) => r.map((item) => Number(item.id)));
}

/** The error vecvault throws when its engine cannot do something (e.g. per-query ef on the stock binding). */
function isNotSupported(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'VECVAULT_NOT_SUPPORTED';
}

class VecvaultInstance implements SystemInstance {
  private ef: number;
  /** Whether `query({ expansionSearch })` works with this build (unknown until tried). */
  private perQueryEf: boolean | undefined;
  constructor(
    private readonly client: VecvaultClient,
    private readonly index: VecvaultIndex,
    private readonly spec: SystemSpec,
  ) {
    this.ef = spec.expansionSearch;
  }

  async insert(vectors: Float32Array, count: number): Promise<void> {
    const d = this.spec.dimension;
    for (let start = 0; start < count; start += UPSERT_CHUNK) {
      const ids: string[] = [];
      const vecs: Float32Array[] = [];
      const metadata: Record<string, unknown>[] = [];
      for (let i = start; i < Math.min(count, start + UPSERT_CHUNK); i++) {
        ids.push(String(i));
        vecs.push(vectors.subarray(i * d, (i + 1) * d));
        metadata.push({ row: i });
      }
      await this.index.upsert({ ids, vectors: vecs, metadata });
    }
  }

  async persist(): Promise<void> {
    // Upserts are durable when they resolve; close() writes the graph snapshot.
  }

  /** `{ expansionSearch }` when per-query ef works, else nothing (the index's own ef applies). */
  private efOption(): { expansionSearch?: number } {
    return this.perQueryEf === true ? { expansionSearch: this.ef } : {};
  }

  async setExpansionSearch(ef: number): Promise<EfSupport> {
    if (this.perQueryEf === undefined) {
      try {
        await this.index.query({ queryVectors: new Float32Array(this.spec.dimension).fill(0.5), dimension: this.spec.dimension, topK: 1, expansionSearch: ef });
        this.perQueryEf = true;
      } catch (error) {
        if (!isNotSupported(error)) throw error;
        this.perQueryEf = false;
      }
    }
    if (!this.perQueryEf) return ef === this.spec.expansionSearch ? 'ok' : 'unsupported';
    this.ef = ef;
    return 'ok';
  }

  note(): string | undefined {
    return this.perQueryEf === false
      ? `this vecvault build cannot change ef per query (VECVAULT_NOT_SUPPORTED), so only its configured ef=${this.spec.expansionSearch} was measured`
      : undefined;
  }

  async query(vector: Float32Array, k: number): Promise<ArrayLike<number>> {
    const { results } = await this.index.query({ queryVectors: vector, dimension: this.spec.dimension, topK: k, ...this.efOption() });
    return rows(results)[0] ?? [];
  }

  async queryBatch(vectors: Float32Array, count: number, k: number): Promise<ArrayLike<number>[]> {
    const { results } = await this.index.query({ queryVectors: vectors, dimension: this.spec.dimension, topK: k, ...this.efOption() });
    const out = rows(results);
    if (count === 1 && out.length !== 1) return [out.flat()];
    return out;
  }

  async extras(ctx: ExtrasContext): Promise<Record<string, number>> {
    const d = this.spec.dimension;
    const q = (i: number) => ctx.queries.subarray((i % ctx.queryCount) * d, ((i % ctx.queryCount) + 1) * d);
    const passes = async (include: string[]) => {
      const qps: number[] = [];
      for (let it = 0; it < ctx.iterations; it++) {
        qps.push(
          await timedPass(ctx.minPassMs, async (i) => {
            await this.index.query({ queryVectors: q(i), dimension: d, topK: ctx.k, include, ...this.efOption() });
          }),
        );
      }
      return medianOf(qps);
    };
    const plain = await passes([]);
    const withMeta = await passes(['metadata']);
    const withDist = await passes(['distance', 'metadata']);
    // get: 10 random ids per call, all fields; then metadata only.
    let seed = 7;
    const pick = () => {
      const ids: string[] = [];
      for (let j = 0; j < 10; j++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        ids.push(String(seed % ctx.baseCount));
      }
      return ids;
    };
    const sample = await this.index.get({ ids: pick(), include: ['vector', 'metadata'] });
    if (sample.length !== 10) throw new Error(`vecvault get returned ${sample.length} items for 10 ids`);
    const getAll: number[] = [];
    const getMeta: number[] = [];
    for (let it = 0; it < ctx.iterations; it++) {
      getAll.push(await timedPass(ctx.minPassMs, async () => void (await this.index.get({ ids: pick() }))));
      getMeta.push(await timedPass(ctx.minPassMs, async () => void (await this.index.get({ ids: pick(), include: ['metadata'] }))));
    }
    return {
      queryQpsNoInclude: plain,
      queryQpsIncludeMetadata: withMeta,
      queryQpsIncludeDistanceMetadata: withDist,
      includeMetadataCostRatio: withMeta / plain,
      getCallsPerSecond10Ids: medianOf(getAll),
      getMetadataOnlyCallsPerSecond10Ids: medianOf(getMeta),
    };
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

export const vecvaultAdapter: SystemAdapter = {
  key: 'vecvault',
  label: 'vecvault',
  indexKind: 'HNSW (usearch core) + AES-256-GCM records in LevelDB, encrypted graph snapshot',
  batchMode: 'one query() call with a flat Float32Array of all queries',
  async unavailable() {
    if (!existsSync(SRC_INDEX)) return 'vecvault is not built yet: src/index.ts does not exist';
    try {
      const mod = await load();
      if (typeof mod.Client !== 'function') return 'src/index.ts does not export Client';
    } catch (error) {
      return `src/index.ts failed to load: ${(error as Error).message.split('\n')[0]}`;
    }
    return undefined;
  },
  async create(spec) {
    const mod = await load();
    const client = new mod.Client({ path: join(spec.dir, 'store') });
    const index = await client.createIndex({
      indexName: INDEX_NAME,
      indexKey: keyFor(mod, spec.dir),
      dimension: spec.dimension,
      metric: spec.metric,
      indexConfig: { connectivity: spec.connectivity, expansionAdd: spec.expansionAdd, expansionSearch: spec.expansionSearch },
    });
    return new VecvaultInstance(client, index, spec);
  },
  async open(spec) {
    const mod = await load();
    const client = new mod.Client({ path: join(spec.dir, 'store') });
    const index = await client.loadIndex({ indexName: INDEX_NAME, indexKey: keyFor(mod, spec.dir) });
    return new VecvaultInstance(client, index, spec);
  },
};
