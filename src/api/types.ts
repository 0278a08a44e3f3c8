/**
 * Public call shapes, mirroring CyborgDB's JS/TS SDK (v0.17). A leaf module:
 * any layer may import these types (they are the contract).
 */
import type { Filter } from '../filter/types.js';
import type { KmsProviderName, KmsRegistry } from '../keys/kms/types.js';

export type { Filter } from '../filter/types.js';

/** Distance reported to users: lower is closer. */
export type Metric = 'euclidean' | 'squared_euclidean' | 'cosine' | 'ip';
/** How the engine holds vectors in memory (records always keep float32). */
export type StoragePrecision = 'float32' | 'float16' | 'int8';

/**
 * Index types `createIndex` accepts. vecvault's engine is HNSW for all of
 * them; CyborgDB's IVF family is accepted so SDK code runs unchanged, and
 * recorded so `getIndexType()` answers what was asked (see docs/coming-from-cyborgdb.md).
 */
export type IndexType = 'hnsw' | 'ivf' | 'ivfflat' | 'ivfpq' | 'ivfsq';

/** HNSW knobs; every field optional, sensible defaults below. */
export interface IndexConfig {
  /** HNSW M: edges per node. Default 16. */
  connectivity?: number;
  /** ef at insert time. Default 128. */
  expansionAdd?: number;
  /** ef at query time (per-query override: `query({ expansionSearch })`). Default 200: recall@10 ≥ 0.95 on sift5k, where 64 gives 0.88. */
  expansionSearch?: number;
}

/**
 * `createIndex({ indexConfig })`: the HNSW knobs, and CyborgDB's `IndexIVF` /
 * `IndexIVFFlat` / `IndexIVFPQ` / `IndexIVFSQ` shapes: `dimension` is taken
 * from here, the type and IVF parameters are recorded (docs/coming-from-cyborgdb.md).
 */
export interface CreateIndexConfig extends IndexConfig {
  /** `'hnsw'` (default) or one of CyborgDB's IVF types (served by the same HNSW engine). */
  type?: IndexType;
  /** CyborgDB shape: the vector length (same as `createIndex({ dimension })`; both must agree). */
  dimension?: number;
  /** CyborgDB IVF: lists to cluster into (0: choose). Recorded; `query({ nProbes })` ≥ this asks for an exhaustive search. */
  nLists?: number;
  /** CyborgDB IVFPQ: recorded, not used (vectors are not product-quantized). */
  pqDim?: number;
  /** CyborgDB IVFPQ: recorded, not used. */
  pqBits?: number;
  /** CyborgDB IVFSQ: recorded, not used (see `storagePrecision` for smaller in-memory vectors). */
  sqBits?: number;
}

export interface ClientOptions {
  /** Directory of the store (created if absent). */
  path: string;
  /**
   * The KMS registry: slot name → slot (`pkcs11`, `aws-kms`, `aws-secrets-manager` or `custom`).
   * An index created with `kmsName` keeps its key in that slot; see docs/key-sources.md.
   */
  kms?: KmsRegistry;
}

/** Where an index's key lives (`index.getKeySource()`): never a secret. */
export type KeySource =
  | { provider: 'none' }
  | {
      provider: KmsProviderName;
      /** The registry slot named at `createIndex({ kmsName })`. */
      kmsName: string;
      /** The key's id at the provider (KMS key ARN, PKCS#11 URI, secret ARN, custom `keyId`), when known. */
      keyId?: string;
    };

/** `index.rotateKey()`: the new key source, exactly one of a new 32-byte `indexKey` or a `kmsName` (a slot of `new Client({ kms })`). */
export type RotateKeyParams = { indexKey: Uint8Array; kmsName?: undefined } | { kmsName: string; indexKey?: undefined };

/** `index.rotateDataKey()`: `onProgress` is called with `{ done, total }` records as they are re-sealed. */
export interface RotateDataKeyOptions {
  onProgress?: (progress: { done: number; total: number }) => void;
}

export interface CreateIndexParams {
  indexName: string;
  /** 32-byte key; exactly one of `indexKey` / `kmsName`. */
  indexKey?: Uint8Array;
  /** A slot of `new Client({ kms })` that holds the index's key; exactly one of `indexKey` / `kmsName`. */
  kmsName?: string;
  /** Fixed by the first upsert when omitted. */
  dimension?: number;
  metric?: Metric;
  storagePrecision?: StoragePrecision;
  indexConfig?: CreateIndexConfig;
  /** CyborgDB's automatic embeddings: not supported yet (`NotSupportedError`), never silently ignored. */
  embeddingModel?: string;
}

export interface LoadIndexParams {
  indexName: string;
  /** The key of an index created with `indexKey`; leave it out for a KMS-backed index (its entry names its slot). */
  indexKey?: Uint8Array;
  /** Optional for a KMS-backed index: when given, it must be the slot the index was created with. */
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
  /** 0 for an empty batch, which commits nothing. */
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
  /**
   * `true`: compare the query with every live vector (exact top-k). `false`:
   * walk the graph even while the index is small enough to be searched
   * exactly. Default: exact while the index is untrained (`isTrained()` false).
   */
  exact?: boolean;
  /** CyborgDB IVF hint: lists to probe. `nProbes ≥ getNLists()` (every list) is answered by an exact search; smaller values leave the graph search as it is. */
  nProbes?: number;
  /** CyborgDB hint: candidates re-ranked per result. The graph search looks at `max(expansionSearch, topK × rerankMult)` candidates. */
  rerankMult?: number;
  /** CyborgDB hint (faster approximate search): accepted and ignored; the graph search is already the fast path. */
  greedy?: boolean;
}

/** `train()` arguments: CyborgDB's, accepted and checked. `nLists` is recorded for `getNLists()`; the rest have nothing to tune in HNSW. */
export interface TrainParams {
  nLists?: number;
  batchSize?: number;
  maxIters?: number;
  tolerance?: number;
  maxMemory?: number;
}

export interface TrainResponse {
  status: 'success';
  message: string;
}

/** `getIndexConfig()`: the type and parameters asked for at `createIndex`, with the HNSW parameters that serve them. */
export interface IndexConfigInfo {
  type: IndexType;
  dimension: number | null;
  metric: Metric;
  nLists?: number;
  pqDim?: number;
  pqBits?: number;
  sqBits?: number;
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
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
