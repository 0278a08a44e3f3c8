/**
 * Public call shapes, mirroring CyborgDB's JS/TS SDK (v0.17). A leaf module:
 * any layer may import these types (they are the contract).
 */
import type { Filter } from '../filter/types.js';

export type { Filter } from '../filter/types.js';

/** Distance reported to users: lower is closer. */
export type Metric = 'euclidean' | 'squared_euclidean' | 'cosine' | 'ip';
/** How the engine holds vectors in memory (records always keep float32). */
export type StoragePrecision = 'float32' | 'float16' | 'int8';

/** HNSW knobs; every field optional, sensible defaults below. */
export interface IndexConfig {
  /** HNSW M: edges per node. Default 16. */
  connectivity?: number;
  /** ef at insert time. Default 128. */
  expansionAdd?: number;
  /** ef at query time (per-query override: `query({ expansionSearch })`). Default 200: recall@10 ≥ 0.95 on sift5k, where 64 gives 0.88. */
  expansionSearch?: number;
}

export interface ClientOptions {
  /** Directory of the store (created if absent). */
  path: string;
  /** Reserved for KMS providers; not supported yet. */
  kms?: unknown;
}

export interface CreateIndexParams {
  indexName: string;
  /** 32-byte key; exactly one of `indexKey` / `kmsName`. */
  indexKey?: Uint8Array;
  kmsName?: string;
  /** Fixed by the first upsert when omitted. */
  dimension?: number;
  metric?: Metric;
  storagePrecision?: StoragePrecision;
  indexConfig?: IndexConfig;
}

export interface LoadIndexParams {
  indexName: string;
  indexKey?: Uint8Array;
  kmsName?: string;
}

/** JSON-like metadata: strings, finite numbers, booleans, null, arrays and plain objects. */
export type MetadataValue = string | number | boolean | null | MetadataValue[] | { [key: string]: MetadataValue };
export type Metadata = { [key: string]: MetadataValue };
export type Contents = string | Uint8Array;
export type VectorInput = number[] | Float32Array | Float64Array;

export interface VectorItem {
  id: string;
  vector: VectorInput;
  metadata?: Metadata;
  contents?: Contents;
}

export interface UpsertColumns {
  ids: string[];
  vectors: VectorInput[];
  metadata?: (Metadata | undefined)[];
  contents?: (Contents | undefined)[];
}

export type UpsertParams = { items: VectorItem[] } | UpsertColumns | VectorItem[];

export interface UpsertResponse {
  status: 'success';
  upsertedCount: number;
}

export type QueryInclude = 'distance' | 'metadata' | 'vector' | 'contents';
export type GetInclude = 'vector' | 'metadata' | 'contents';

export interface QueryParams {
  /** One vector, a batch (arrays or typed-array rows), or a flat Float32Array / Float64Array split by `dimension` (default: the index's). */
  queryVectors: number[] | number[][] | Float32Array | Float64Array | (Float32Array | Float64Array)[];
  /** Default 100. */
  topK?: number;
  /** Mongo-style metadata filter; see README "Filters". */
  filters?: Filter;
  include?: QueryInclude[];
  dimension?: number;
  /** HNSW ef for this query only. */
  expansionSearch?: number;
}

export interface QueryResultItem {
  id: string;
  /** Lower is closer: L2 for euclidean, squared L2, 1 − cos for cosine, 1 − dot for ip. */
  distance?: number;
  metadata?: Metadata;
  vector?: number[];
  contents?: Contents;
}

export interface QueryResponse<R = QueryResultItem[] | QueryResultItem[][]> {
  results: R;
}

export interface GetParams {
  ids: string[];
  include?: GetInclude[];
}

export interface GetResultItem {
  id: string;
  vector?: number[];
  metadata?: Metadata;
  contents?: Contents;
}

export interface DeleteParams {
  ids: string[];
}

export interface DeleteResponse {
  status: 'success';
  deletedCount: number;
}

export interface ListIdsResponse {
  ids: string[];
  count: number;
}

export interface IndexStats {
  indexName: string;
  count: number;
  dimension: number | null;
  metric: Metric;
  storagePrecision: StoragePrecision;
  indexConfig: Required<IndexConfig>;
  /** Bytes held in memory: engine plus filter index. */
  memoryBytes: number;
  /** Bytes held by the ANN engine (graph and vectors). */
  engineMemoryBytes: number;
  /** Estimated bytes of the in-memory metadata index used by filters. */
  filterIndexMemoryBytes: number;
  /** Commits since the index was created. */
  commitCounter: number;
  engine: string;
  /** Generation of the newest encrypted graph snapshot (0: none yet). */
  snapshotGeneration: number;
  /** Records written since that snapshot (replayed from the change log on open). */
  changesSinceSnapshot: number;
  /** How this handle got its graph: new index, snapshot (+ replay), or a rebuild from records. */
  openedFrom: 'create' | 'snapshot' | 'rebuild';
}
