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
  /** Directory of the store (created if absent). Pass this or `store`. */
  path?: string;
  /**
   * A store shared by many processes and hosts instead of a directory: PostgreSQL (needs the `pg`
   * package). PostgreSQL holds only HMAC'd keys and ciphertext; see the README, "PostgreSQL".
   */
  store?: PostgresStoreOptions;
  /**
   * The KMS registry: slot name → slot (`pkcs11`, `aws-kms`, `aws-secrets-manager` or `custom`).
   * An index created with `kmsName` keeps its key in that slot; see docs/key-sources.md.
   */
  kms?: KmsRegistry;
}

/** `new Client({ store })`: an index store in PostgreSQL, shared by every process that opens it. */
export interface PostgresStoreOptions {
  kind: 'postgres';
  /** A connection URL, e.g. `postgres://user:password@host:5432/db?sslmode=require`. */
  connectionString: string;
  /** The schema holding vecvault's table (created if absent); default `'vecvault'`. */
  schema?: string;
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
  /**
   * Turns text into vectors: `upsert` items with string `contents` and no
   * `vector` are embedded, and `query({ queryContents })` works. The index
   * records the embedding's name and dimension (encrypted, in its manifest);
   * `loadIndex` must be given an embedding of the same name to embed text.
   */
  embedding?: Embedding;
  /**
   * CyborgDB's model name for service-side embeddings: `NotSupportedError`
   * (vecvault downloads no models); pass `embedding` with your own function instead.
   */
  embeddingModel?: string;
}

/**
 * The application's embedding model, as a function: vecvault calls it and
 * stores what it returns, and downloads or runs no model itself.
 * A LangChain `Embeddings` object adapts in one line (see `vecvault/langchain`'s
 * `fromLangChainEmbeddings`), and so does transformers.js's feature-extraction pipeline.
 * @example
 * ```ts
 * const embedding = { name: 'all-MiniLM-L6-v2', dimension: 384, embed: (texts: string[]) => model.embedDocuments(texts) };
 * ```
 */
export interface Embedding {
  /** The model's name, recorded in the index: `loadIndex` refuses an embedding of another name (its vectors would not compare). */
  name: string;
  /** Vector length it returns; checked against the index's (and fixes it when `createIndex` had none). */
  dimension?: number;
  /**
   * One vector per text, in order. Called with at most `batchSize` texts at a time
   * (default 64), one call after another.
   */
  embed(texts: string[]): Promise<number[][] | Float32Array[]>;
  /** Embeds a query, when the model embeds queries differently from documents (LangChain's `embedQuery`); `embed` is used otherwise. */
  embedQuery?(text: string): Promise<number[] | Float32Array>;
  /** Texts per `embed` call. Default 64. */
  batchSize?: number;
}

/** `index.getEmbedding()`: the embedding an index was created with (never its function). */
export interface EmbeddingInfo {
  name: string;
  /** The index's vector length; null until the first vectors fix it. */
  dimension: number | null;
  /** Whether this handle was given the embedding (so text upserts and `queryContents` work). */
  attached: boolean;
}

export interface LoadIndexParams {
  indexName: string;
  /** The key of an index created with `indexKey`; leave it out for a KMS-backed index (its entry names its slot). */
  indexKey?: Uint8Array;
  /** Optional for a KMS-backed index: when given, it must be the slot the index was created with. */
  kmsName?: string;
  /**
   * The embedding the index was created with (same `name`), to upsert text
   * and query with `queryContents`. Without it, vector calls work and text
   * calls throw `VECVAULT_VALIDATION`.
   */
  embedding?: Embedding;
  /**
   * Opens the index as this user: `indexKey` is then the user key `createUserKey` returned (for an
   * `indexKey` or a KMS-backed index alike). The handle can do what the user's permissions allow.
   */
  userId?: string;
}

/** A user's permission on an index: `['read']` or `['read', 'write']`. */
export type UserPermission = 'read' | 'write';

export interface CreateUserKeyParams {
  /** The user's name, 1 to 256 characters; stored only sealed or as an HMAC. */
  userId: string;
  /** `['read']` (queries and reads) or `['read', 'write']` (also upsert, delete, compact, snapshot, train). */
  permissions: UserPermission[];
  /** A 32-byte key to use instead of a fresh one (e.g. one the user generated). */
  userKey?: Uint8Array;
}

/** One user of an index, as `listUsers()` reports it. */
export interface UserInfo {
  userId: string;
  permissions: UserPermission[];
}

export interface RevokeUserParams {
  userId: string;
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

/** How far a long call has got: `done` of `total` units (records, chunks, items). */
export interface Progress {
  done: number;
  total: number;
}

/** Options of `index.compact()`. */
export interface CompactOptions {
  /** Called as live records are re-inserted into the new graph: `done` of `total` records. */
  onProgress?: (progress: Progress) => void;
}

/** An item without a vector: its string `contents` is embedded by the index's embedding. */
export interface TextItem {
  id: string;
  vector?: null;
  metadata?: Metadata;
  contents: string;
}

export type UpsertItem = VectorItem | TextItem;

export interface UpsertColumns {
  ids: string[];
  /** One per id; may be left out (or an entry null) where `contents` holds text for the index's embedding. */
  vectors?: (VectorInput | null | undefined)[];
  metadata?: (Metadata | undefined)[];
  contents?: (Contents | undefined)[];
  /** Called as vectors join the graph (the long part of a large batch): `done` of `total` items. */
  onProgress?: (progress: Progress) => void;
}

export type UpsertParams = { items: UpsertItem[]; onProgress?: (progress: Progress) => void } | UpsertColumns | UpsertItem[];

export interface UpsertResponse {
  status: 'success';
  /** 0 for an empty batch, which commits nothing. */
  upsertedCount: number;
}

export type QueryInclude = 'distance' | 'metadata' | 'vector' | 'contents';
export type GetInclude = 'vector' | 'metadata' | 'contents';

export interface QueryParams {
  /** One vector, a batch (arrays or typed-array rows), or a flat Float32Array / Float64Array split by `dimension` (default: the index's). */
  queryVectors?: number[] | number[][] | Float32Array | Float64Array | (Float32Array | Float64Array)[];
  /**
   * Text to search for, embedded by the index's embedding (instead of
   * `queryVectors`): one string gives flat results, an array one list per string.
   */
  queryContents?: string | string[];
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
  /**
   * A store shared through PostgreSQL: `'strong'` (default) first applies every commit other
   * processes made before this call (one round trip when there are none); `'eventual'` answers from
   * what this process has applied so far (at most about a second behind). A local store ignores it.
   */
  consistency?: 'strong' | 'eventual';
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
  /** Bytes held by the ANN engine (graph and vectors); while a write runs, the figure from the last call made with none running. */
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
  /**
   * The last reachability check of the graph, run after it was rebuilt from
   * the records, compacted or restored from a snapshot: live records no
   * search could reach (`unreachable`), the relinks that repaired them, and
   * how many were still unreachable after (`remaining`, normally 0). Null
   * until one ran (a new index, or an open from a snapshot checked whole
   * before it was written, with nothing replayed: that open skips the walk).
   */
  graphCheck: { after: 'rebuild' | 'compaction' | 'snapshot'; unreachable: number; relinked: number; remaining: number } | null;
}
