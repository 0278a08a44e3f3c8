/**
 * The narrow seam between the encrypted index and an ANN engine. The engine
 * sees plaintext vectors and 64-bit keys only: no ids, metadata or keys of
 * any kind, and it never touches the disk (persistence goes through
 * `serialize`, whose bytes the caller encrypts).
 */

/** Distance as the engine computes it: lower is closer. */
export type EngineMetric = 'l2sq' | 'cos' | 'ip';
/** How the engine stores vectors in memory. */
export type EnginePrecision = 'f32' | 'f16' | 'i8';

export interface EngineOptions {
  dimension: number;
  metric: EngineMetric;
  precision: EnginePrecision;
  /** HNSW M. */
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
}

export interface SearchOptions {
  /** HNSW ef for this call only; never changes the engine's default. */
  expansionSearch?: number;
  /** Only these keys may be returned. */
  allowedKeys?: BigUint64Array;
  /** With `allowedKeys`: brute-force over just those keys instead of walking the graph (exact; cheaper for small sets). */
  exact?: boolean;
}

/**
 * Row-major results for `n` queries: row `i` holds `counts[i]` valid hits in
 * `keys[i*k ..]` / `distances[i*k ..]`, best first.
 */
export interface SearchResult {
  keys: BigUint64Array;
  distances: Float32Array;
  counts: Uint32Array;
  k: number;
}

export interface AnnEngine {
  readonly options: Readonly<EngineOptions>;
  size(): number;
  /** Keys must not be present already. `vectors.length === keys.length * dimension`. */
  add(keys: BigUint64Array, vectors: Float32Array): Promise<void>;
  /** Removes present keys, ignores absent ones; resolves to how many were removed. */
  remove(keys: BigUint64Array): Promise<number>;
  /** `queries.length` is a multiple of the dimension; one row of `k` per query. */
  search(queries: Float32Array, k: number, options?: SearchOptions): Promise<SearchResult>;
  contains(key: bigint): boolean;
  /** How many of `keys` the engine holds, counted off the main thread (keys as u64, or as safe integers). */
  countPresent(keys: BigUint64Array | Float64Array): Promise<number>;
  /** The whole graph and its vectors as bytes, to be encrypted by the caller. */
  serialize(): Promise<Uint8Array>;
  /**
   * The same bytes as `serialize()`, streamed: `sink` gets them in order in
   * chunks of `chunkBytes` (the last may be shorter, `last` says which), and
   * at most a few chunks exist outside the engine at once (a chunk's memory
   * is reused once its promise resolves: copy or seal it before that).
   * Resolves to the total length; a sink rejection stops the stream and
   * rejects with it.
   */
  serializeTo(chunkBytes: number, sink: ChunkSink): Promise<number>;
  /**
   * Finds live records the graph cannot reach (no search at any ef returns
   * them) and, unless `repair` is false, relinks them. Optional: an engine
   * without it is taken as fully connected.
   */
  checkGraph?(options?: { repair?: boolean }): Promise<GraphCheck>;
  /** Bytes of memory held by the engine (best effort where the binding cannot tell). */
  memoryUsage(): number;
  /**
   * After a `deserializeFrom` given `keyDigest`: the digest of the live keys
   * the loaded graph held (see StreamLoadOptions.keyDigest). Optional: an
   * engine without it leaves the caller to count the keys (`countPresent`).
   */
  loadedKeyDigest?(): Uint8Array | undefined;
  /**
   * Whether every stored vector is unit length (a cosine float32 engine scales what it adds; one loaded from
   * older bytes is not until it is rebuilt). Recorded with a snapshot (`LoadOptions.unitVectors`), so the
   * engine that loads it may compare vectors by their dot product. Optional: absent means false.
   */
  unitVectors?(): boolean;
  /** Frees native memory; waits for work in flight. Further calls reject. */
  close(): Promise<void>;
}

/** What `checkGraph` found and did. */
export interface GraphCheck {
  /** Live records unreachable from the entry point at the first check. */
  unreachable: number;
  /** Relinks performed (a record may need more than one). */
  relinked: number;
  /** Still unreachable after the last round (0 unless the round bound was hit). */
  remaining: number;
  /** Checks run (one per round, plus the first); 0 when nothing changed since a repair left the graph whole. */
  checks: number;
  /** Live records examined. */
  live: number;
  /** The keys found unreachable at the first check. */
  keys: BigUint64Array;
  /** Wall time of the whole call, ms. */
  ms: number;
}

/** Receives one chunk of a streamed `serializeTo`; the chunk's bytes are valid until the promise resolves. */
export type ChunkSink = (chunk: Uint8Array, index: number, last: boolean) => Promise<void>;

export interface LoadOptions {
  /**
   * Every vector in the bytes is unit length (what `unitVectors()` said when they were serialized): a cosine
   * float32 engine then compares them by a float32 dot product (1 - dot), which gives the cosine distances (to
   * float32 rounding: within ~1e-7, so near-duplicates may tie) for far less arithmetic. False or absent: the
   * engine's own kernel. Vouched for by the caller (a snapshot's authenticated manifest); wrong, it gives wrong
   * distances, never unsafe reads.
   */
  unitVectors?: boolean;
}

export interface StreamLoadOptions extends LoadOptions {
  /** An upper bound on the total length (e.g. chunks × chunk size): counts in the bytes that could not fit are refused before anything is sized by them. */
  bound: number;
  /**
   * The caller gives up each chunk: once the engine has used it up, the
   * chunk's whole ArrayBuffer is detached, so its memory is freed at once
   * rather than at a later GC. Only for chunks that own their ArrayBuffer.
   */
  release?: boolean;
  /**
   * A fresh random 32-byte key: the engine digests the live keys of the
   * graph it loads under it as they stream past (`keyDigestAsync` in
   * crypto/bulk.ts: order-free, AES-based), for `loadedKeyDigest()`. Lets the
   * caller check the graph against the keys it should hold beside the load
   * instead of one lookup per key after it.
   */
  keyDigest?: Uint8Array;
}

export interface EngineFactory {
  readonly name: string;
  create(options: EngineOptions): AnnEngine;
  /**
   * Rebuilds an engine from `serialize()` bytes (already authenticated by the
   * caller), whole or as consecutive parts (joined off the main thread).
   */
  deserialize(bytes: Uint8Array | readonly Uint8Array[], options: EngineOptions, load?: LoadOptions): Promise<AnnEngine>;
  /**
   * Rebuilds an engine from `serialize()` bytes pulled from `chunks` (each
   * already authenticated by the caller) while they are still being read: only
   * a few chunks are taken ahead of the engine, and every structural unit is
   * checked before the engine uses it.
   */
  deserializeFrom(chunks: AsyncIterable<Uint8Array>, options: EngineOptions, stream: StreamLoadOptions): Promise<AnnEngine>;
}
