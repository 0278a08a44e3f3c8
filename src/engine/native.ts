/**
 * The native ANN engine: vecvault's own N-API addon (native/addon.cc) over
 * usearch's header-only HNSW core, built at install time by
 * scripts/build-native.mjs. All policy lives here; the addon only runs work
 * on the libuv thread pool.
 *
 * Thread-safety guarantees (what callers may rely on):
 * - Every operation that costs more than a hash lookup (`add`, `remove`,
 *   `search`, `serialize`, `reserve`, `deserialize`) runs on the libuv pool
 *   and returns a Promise; the main thread's event loop never waits on it.
 *   The one exception is a single small query (one vector, k and ef ≤ 1024,
 *   no `allowedKeys`, and if `exact` an index of at most 2^21 numbers): it
 *   runs on the calling thread, because its tens to hundreds of µs (an exact
 *   scan of 2^21 numbers: about a millisecond) cost less than a pool round
 *   trip (~30–50 µs on a busy 2-core machine). It never
 *   waits there: if an insert row, a remove batch or a capacity growth holds
 *   the index, the query goes to the pool like any other.
 * - Writes (`add`, `remove`, `reserve`) and `serialize` run one at a time,
 *   in call order: each starts after the previous one settled, so
 *   `serialize()` captures exactly the writes called before it. One `add`
 *   runs its chunks on up to `parallelism` pool threads at once (usearch
 *   supports concurrent inserts) but never overlaps another write.
 * - Searches are not queued behind writes: a search issued during a long
 *   `add` interleaves with it and waits for at most one row insert (or one
 *   `remove` batch). Inside the addon a search never touches the graph at
 *   the same moment as an insert or remove, because usearch's lock-free
 *   search can otherwise walk into a half-linked node and return too few
 *   hits. So a concurrent search returns only keys present when it ran, and
 *   sees each `remove` batch entirely or not at all; which rows of a running
 *   `add` it sees is unspecified. Capacity growth excludes everything
 *   briefly (usearch's reserve may not overlap any add or search). The
 *   native gate lets waiting modes in by turns, so nothing starves.
 * - `add` is all-or-nothing for argument errors: non-finite numbers, the
 *   reserved key 2^64-1 and duplicate keys (within the batch or already
 *   present) are rejected before anything is written. A native failure
 *   midway (out of memory) may leave part of the batch added.
 * - `add` reads the caller's `keys` and `vectors` while its promise is
 *   pending (no up-front copy of a large batch): do not modify them until it
 *   settles, as with `fs.write` buffers. `search` copies what it needs.
 * - `close()` stops accepting calls (they reject with `ClosedError`), waits
 *   for everything in flight, then frees native memory at once. A handle
 *   that is garbage-collected unclosed frees its memory on finalization,
 *   after any work still in flight.
 * - Per-call `expansionSearch` mutates nothing shared: the addon pins
 *   usearch's own ef at 1 and asks for max(k, ef) results, keeping the best
 *   k, which is exactly usearch's search at that ef (tested against the stock
 *   binding on the same graph).
 * - Key distribution matters: usearch's key table hashes by identity with
 *   linear probing, so dense sequential keys turn every key lookup
 *   (`contains`, `remove`, add's duplicate check, exact filtered search)
 *   into a long probe. Callers should spread keys (the encrypted index
 *   multiplies ids into 48 bits).
 * - Each pool thread uses its own usearch "thread slot" (search context and
 *   cast buffer); the addon reserves one per libuv pool thread and blocks
 *   a worker (never the main thread) if it ever runs out.
 */
import { availableParallelism } from 'node:os';

import { ClosedError, NativeError, ValidationError } from '../errors.js';
import { loadNativeAddon } from '../util/native-addon.js';
import { tuneAllocator, type MappedRelease } from '../util/memory.js';
import type {
  AnnEngine,
  ChunkSink,
  EngineFactory,
  EngineMetric,
  EngineOptions,
  EnginePrecision,
  SearchOptions,
  GraphCheck,
  SearchResult,
  LoadOptions,
  StreamLoadOptions,
} from './types.js';

// ------------------------------------------------------------ the addon --

/**
 * The addon's index class (`NativeIndex`, native/engine/native-index.h),
 * declared by hand. `NATIVE_INDEX_METHODS` below must list exactly its keys
 * (checked at compile time) and test/native-surface.test.ts checks that list
 * against the real class, so the two cannot drift apart silently.
 */
interface NativeIndexHandle {
  size(): number;
  capacity(): number;
  contains(key: bigint): boolean;
  countPresent(keys: BigUint64Array | Float64Array): Promise<number>;
  memoryUsage(): number;
  isa(): string;
  prepareAdd(keys: BigUint64Array, vectors: Float32Array): Promise<void>;
  addChunk(keys: BigUint64Array, vectors: Float32Array): Promise<void>;
  remove(keys: BigUint64Array): Promise<number>;
  reserve(members: number): Promise<void>;
  /**
   * Resolves to a result block (see `resultViews`). Runs on `lanes` pool threads (default 1) that
   * claim a few queries at a time; the queries and keys are copied before it returns.
   */
  search(queries: Float32Array, k: number, expansion: number, allowedKeys: BigUint64Array | null, exact: boolean, lanes?: number): Promise<ArrayBuffer>;
  /**
   * A plain graph search (no filter, not exact) on the calling thread, for one
   * small query: cheaper than a pool round trip. Null when it could not start
   * without waiting.
   */
  searchSync(queries: Float32Array, k: number, expansion: number, exact: boolean): ArrayBuffer | null;
  serialize(): Promise<Uint8Array>;
  /** `unitVectors`: every vector in the bytes is unit length (see `unitVectors()`). */
  load(bytes: Uint8Array | Uint8Array[], unitVectors: boolean): Promise<void>;
  /** Streams serialize() through `buffers` (reused, acked by JS); events: (0, total), (1, buffer, bytes) per chunk, (2) at the end, (3) to ignore. */
  serializeStream(buffers: Uint8Array[], onEvent: (kind: number, a: number, b: number) => void): SerializeStreamControl;
  /** Loads from chunks pushed in order; `onConsumed(n)`: the first n chunks are used up (and released). */
  loadStream(bound: number, onConsumed: (count: number) => void, detach: boolean, digestKey: Uint8Array | undefined, unitVectors: boolean): LoadStreamControl;
  /**
   * A cosine float32 index scales every vector it adds or searches for to unit length; true while every stored
   * vector is (made or compacted since, or loaded from bytes said to be), so it compares them by their dot
   * product (native/engine/f32-kernels.h).
   */
  unitVectors(): boolean;
  /** Lists live nodes a base-layer walk from the entry point misses and, with `repair`, relinks them (native/engine/reachability.h). */
  checkGraph(repair: boolean, maxRounds: number, expansion: number): Promise<NativeGraphCheck>;
  /** Tests only: removes every link into the key's node. Resolves to how many links were removed. */
  unlinkForTesting(key: bigint): Promise<number>;
  /** Refuses further calls at once; resolves once a pool thread has freed the index. */
  close(): Promise<void>;
}

interface NativeGraphCheck {
  found: number;
  repaired: number;
  remaining: number;
  rounds: number;
  live: number;
  keys: BigUint64Array;
}

interface SerializeStreamControl {
  /** Settles once the pool thread let go of the index (events may still be on their way). */
  done: Promise<void>;
  ack(buffer: number): void;
  cancel(): void;
}

interface LoadStreamControl {
  /** With a digest key: the KeyDigest of the loaded graph's live keys (native/key-digest.h). */
  done: Promise<Uint8Array | undefined>;
  push(chunk: Uint8Array): void;
  end(): void;
  cancel(): void;
}

/** The addon module's exports (native/addon.cc `Init`), declared by hand; see `NATIVE_ADDON_EXPORTS`. */
interface NativeAddon {
  NativeIndex: new (
    dimension: number,
    metric: EngineMetric,
    precision: EnginePrecision,
    connectivity: number,
    expansionAdd: number,
    slots: number,
  ) => NativeIndexHandle;
  /** Batched AES-GCM and HMAC (native/crypto.cc), typed and used by src/crypto/bulk.ts. */
  crypto: object;
  /** Bulk fills of the live table's hash tables (native/tables.cc), typed and used by src/core/live-table.ts. */
  tables: object;
  simdInfo(): { compiled: string; available: string };
  /** glibc's malloc_trim(0): false where there is none (src/util/memory.ts). */
  trimMemory(): boolean;
  /** `trimMemory` on a pool thread. */
  trimMemoryAsync(): Promise<boolean>;
  /** glibc's mallopt of fixed mmap and trim thresholds and top pad: false where there is none (src/util/memory.ts). */
  tuneAllocator(mmapThreshold: number, trimThreshold: number, topPad: number): boolean;
  /** v8::Isolate::MemoryPressureNotification (1 moderate, 2 critical): false where the symbol is not found (src/util/memory.ts). */
  memoryPressure(level: 1 | 2): boolean;
  /** Unmaps this process's resident pages of shared read-only file mappings under a directory (src/util/memory.ts). */
  releaseMappedPages(dir: string): number;
  /** `releaseMappedPages` on a pool thread, gated on resident shared bytes ≥ minShared. */
  releaseMappedPagesAsync(dir: string, minShared?: number): Promise<MappedRelease>;
  /**
   * Pool threads adding to a graph step aside while V8 is in a mark-compact's final pause (native/engine/gc-yield.h):
   * environments hooked, pauses seen, waits and their total time, process-wide. For benches and tests.
   */
  gcYieldStats(): { hooked: number; pauses: number; yields: number; waitedMs: number };
  /** Whether pool threads wait out those pauses (on by default; the hooks stay either way); returns the previous setting. For paired benches. */
  setGcYield(enabled: boolean): boolean;
  /** Begins (true) or ends (false) a pretend mark-compact pause. Tests only. */
  gcPauseForTesting(inPause: boolean): void;
  /** How many of usearch's arenas were mapped on a 2 MiB boundary and accepted MADV_HUGEPAGE (native/engine/usearch.h). */
  hugePageArenas(): number;
  usearchVersion: string;
}

/** `true` when `List` names every key of `T`; else the keys it leaves out, so `Assert` fails naming them. */
type ListsEveryKey<T, List extends readonly PropertyKey[]> = [Exclude<keyof T, List[number]>] extends [never]
  ? true
  : { missing: Exclude<keyof T, List[number]> };
type Assert<Check extends true> = Check;

/**
 * Every method of `NativeIndexHandle`, for test/native-surface.test.ts to
 * compare with the real class's prototype. Exhaustive at compile time: a name
 * that is not a method fails `satisfies`, a method left out fails `Assert`.
 * @internal
 */
export const NATIVE_INDEX_METHODS = [
  'size',
  'capacity',
  'contains',
  'countPresent',
  'memoryUsage',
  'isa',
  'prepareAdd',
  'addChunk',
  'remove',
  'reserve',
  'search',
  'searchSync',
  'serialize',
  'load',
  'serializeStream',
  'loadStream',
  'unitVectors',
  'checkGraph',
  'unlinkForTesting',
  'close',
] as const satisfies readonly (keyof NativeIndexHandle)[];
type NativeIndexMethodsCheck = Assert<ListsEveryKey<NativeIndexHandle, typeof NATIVE_INDEX_METHODS>>;

/**
 * Every export of the addon module (`NativeAddon`), for
 * test/native-surface.test.ts; exhaustive at compile time like
 * `NATIVE_INDEX_METHODS`.
 * @internal
 */
export const NATIVE_ADDON_EXPORTS = [
  'NativeIndex',
  'crypto',
  'tables',
  'simdInfo',
  'trimMemory',
  'trimMemoryAsync',
  'tuneAllocator',
  'memoryPressure',
  'releaseMappedPages',
  'releaseMappedPagesAsync',
  'gcYieldStats',
  'setGcYield',
  'gcPauseForTesting',
  'hugePageArenas',
  'usearchVersion',
] as const satisfies readonly (keyof NativeAddon)[];
type NativeAddonExportsCheck = Assert<ListsEveryKey<NativeAddon, typeof NATIVE_ADDON_EXPORTS>>;

/** Loads the addon on first use (never at import time). */
function loadAddon(): NativeAddon {
  return loadNativeAddon() as NativeAddon;
}

// ------------------------------------------------------ public helpers --

export interface SimdCapabilities {
  /** ISA kernel families compiled into the addon (decided by NumKong's compiler probe). */
  compiled: string[];
  /** Those the CPU running this process supports; `['serial']` alone means no SIMD. */
  available: string[];
}

/** Which SIMD kernels the addon can use here. */
export function simdCapabilities(): SimdCapabilities {
  const info = loadAddon().simdInfo();
  const split = (s: string): string[] =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  return { compiled: split(info.compiled), available: split(info.available) };
}

/** The usearch version whose C++ core the addon was compiled against. */
export function nativeUsearchVersion(): string {
  return loadAddon().usearchVersion;
}

export interface NativeSearchOptions extends SearchOptions {
  /**
   * Brute force instead of the graph. With `allowedKeys` it scans only those
   * keys (about 0.3–0.5 µs a key): exact, and cheaper than a filtered graph
   * walk, which must visit ~ef/selectivity nodes to collect ef allowed ones.
   * Measured on 50k × 64 with spread keys (loaded 2-core machine): 1%
   * allowed, exact 0.4 ms vs graph 130 ms (unfiltered 1.7 ms); 10% allowed,
   * exact 10 ms vs graph 27 ms. Above 1/8 of the index allowed, the addon
   * scans all members with the predicate instead of looking keys up one by
   * one. Callers choose by selectivity; without `allowedKeys` it scans all.
   */
  exact?: boolean;
}

export interface NativeAnnEngine extends AnnEngine {
  search(queries: Float32Array, k: number, options?: NativeSearchOptions): Promise<SearchResult>;
  /** Members that fit before the next (automatic) growth. */
  capacity(): number;
  /** Grows capacity ahead of a large add, so the add does not pause searches to grow. */
  reserve(capacity: number): Promise<void>;
  /** SIMD kernel serving this engine's metric and precision, e.g. 'haswell'; 'serial' means none. */
  isa(): string;
  checkGraph(options?: GraphCheckOptions): Promise<GraphCheck>;
  loadedKeyDigest(): Uint8Array | undefined;
  unitVectors(): boolean;
  /**
   * Tests only: cuts every link into `key`'s node, leaving it stored but
   * unreachable, as usearch's slot reuse can. Not for the entry point.
   * @internal
   */
  unlinkForTesting(key: bigint): Promise<number>;
}

export interface GraphCheckOptions {
  /** Relink what the check finds (default true); false only counts. */
  repair?: boolean;
  /** Repair rounds, each followed by another check (default 4). */
  maxRounds?: number;
  /** ef of the relinking search (default 64). */
  expansion?: number;
}

export interface NativeEngineFactory extends EngineFactory {
  create(options: EngineOptions): NativeAnnEngine;
  deserialize(bytes: Uint8Array | readonly Uint8Array[], options: EngineOptions, load?: LoadOptions): Promise<NativeAnnEngine>;
  deserializeFrom(chunks: AsyncIterable<Uint8Array>, options: EngineOptions, stream: StreamLoadOptions): Promise<NativeAnnEngine>;
}

// ----------------------------------------------------------- validation --

const METRICS: readonly EngineMetric[] = ['l2sq', 'cos', 'ip'];
const PRECISIONS: readonly EnginePrecision[] = ['f32', 'f16', 'i8'];
const MAX_K = 100_000;
/** Bounds one call's result arrays (~12 bytes per entry). */
const MAX_RESULT_ROWS = 1 << 26;

function checkInteger(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(`${path} must be an integer in [${min}, ${max}]`, { path });
  }
  return value;
}

function checkOptions(options: EngineOptions): Readonly<EngineOptions> {
  if (typeof options !== 'object' || options === null) {
    throw new ValidationError('engine options must be an object', { path: 'options' });
  }
  if (!METRICS.includes(options.metric)) {
    throw new ValidationError(`metric must be one of ${METRICS.join(', ')}`, { path: 'metric' });
  }
  if (!PRECISIONS.includes(options.precision)) {
    throw new ValidationError(`precision must be one of ${PRECISIONS.join(', ')}`, { path: 'precision' });
  }
  if (options.precision === 'i8' && options.metric !== 'cos') {
    // usearch scales every vector to unit length before rounding to int8,
    // so l2sq / ip rankings on unnormalized data would come out silently wrong.
    throw new ValidationError('precision i8 supports only the cos metric', { path: 'precision' });
  }
  return Object.freeze({
    dimension: checkInteger(options.dimension, 'dimension', 1, 65_536),
    metric: options.metric,
    precision: options.precision,
    connectivity: checkInteger(options.connectivity, 'connectivity', 2, 1024),
    expansionAdd: checkInteger(options.expansionAdd, 'expansionAdd', 1, 100_000),
    expansionSearch: checkInteger(options.expansionSearch, 'expansionSearch', 1, 100_000),
  });
}

function checkKeys(keys: unknown, path: string): BigUint64Array {
  if (!(keys instanceof BigUint64Array)) throw new ValidationError(`${path} must be a BigUint64Array`, { path });
  return keys;
}

function checkVectorShape(vectors: unknown, rows: number, dimension: number, path: string): Float32Array {
  if (!(vectors instanceof Float32Array)) throw new ValidationError(`${path} must be a Float32Array`, { path });
  if (vectors.length !== rows * dimension) {
    throw new ValidationError(`${path} must hold ${rows} × ${dimension} numbers, got ${vectors.length}`, { path });
  }
  return vectors;
}

function checkVectors(vectors: unknown, rows: number, dimension: number, path: string): Float32Array {
  const values = checkVectorShape(vectors, rows, dimension, path);
  for (let i = 0; i < values.length; i++) {
    // NaN or ±∞ would poison the graph's distance comparisons.
    if (!Number.isFinite(values[i])) throw new ValidationError(`${path} holds NaN or ±Infinity at ${i}`, { path });
  }
  return values;
}

// ---------------------------------------------------------- error mapping --

/** Native rejections carry `code` CLOSED / INVALID / NATIVE; map them onto vecvault errors. */
function mapNativeError(error: unknown, what: string): Error {
  const { code, path } = (error ?? {}) as { code?: unknown; path?: unknown };
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'CLOSED') return new ClosedError(`the engine was closed during ${what}`, { cause: error });
  if (code === 'INVALID') {
    return new ValidationError(`${what}: ${message}`, { cause: error, path: typeof path === 'string' ? path : 'keys' });
  }
  return new NativeError(`${what} failed in the native engine: ${message}`, { cause: error });
}

async function nativeCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw mapNativeError(error, what);
  }
}

// --------------------------------------------------------------- engine --

/** Buffers a streamed serialize cycles through: two sealing groups' worth (WRITE_GROUP in storage/snapshot.ts). */
const SERIALIZE_BUFFERS = 4;
/** Chunks pushed ahead of a streamed load. */
const LOAD_AHEAD = 4;

/** Repair rounds, each followed by another check (native/engine/reachability.h: each round links in what the last check found). */
const GRAPH_REPAIR_ROUNDS = 4;
/** ef of a repair's relinking search: it only needs some reached nodes near the orphan (256 took ~2 ms an orphan at 1M). */
const GRAPH_REPAIR_EXPANSION = 64;

/** libuv's pool size: the addon reserves one usearch thread slot per pool thread. */
function threadPoolSize(): number {
  const size = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(size) && size > 0 ? Math.min(size, 1024) : 4;
}

/** A single query runs on the calling thread when it is this small (well under a millisecond). */
const SYNC_MAX_K = 1024;
const SYNC_MAX_EF = 1024;
/** An exact single query runs on the calling thread while the index holds at most this many numbers (size × dimension). */
const SYNC_EXACT_MAX_VALUES = 1 << 21;

/**
 * Most queries per search call: the call's lanes hold pool threads until it is
 * answered (~50 ms per lane at 200 µs a query), so bigger batches are searched
 * in several calls, one after another.
 */
const SEARCH_CALL_QUERIES_PER_LANE = 256;
/**
 * Fewer queries than this per lane cost more in a hand-off (queuing a lane
 * took the calling thread ~100 µs on the 2-core VMs here) than a second
 * thread saves. Within a call the lanes claim a few queries at a time
 * in the addon (search.h `SearchBatch`): one hand-off per lane, and a
 * descheduled pool thread holds back one claim, not half the batch
 * (measured against the four round trips through JS per lane it replaced:
 * docs/performance.md, "Eleventh round").
 */
const MIN_LANE_QUERIES = 4;

/** Rows per add chunk: ~128 KiB of float32 per task, so no task holds a pool thread for long. */
function chunkRows(dimension: number): number {
  return Math.max(16, Math.min(1024, Math.floor(32_768 / dimension)));
}

/**
 * The addon returns `n` queries' results as one buffer (one allocation per
 * call instead of three arrays and a holder):
 * keys (u64 × n·k), then distances (f32 × n·k), then counts (u32 × n).
 */
function resultViews(block: ArrayBuffer, n: number, k: number): SearchResult {
  const rows = n * k;
  return {
    keys: new BigUint64Array(block, 0, rows),
    distances: new Float32Array(block, rows * 8, rows),
    counts: new Uint32Array(block, rows * 12, n),
    k,
  };
}

class NativeEngine implements NativeAnnEngine {
  readonly options: Readonly<EngineOptions>;
  /** Tasks of one add or search batch in flight at once: all cores, but always one pool thread left for fs and others. */
  readonly parallelism: number;
  #handle: NativeIndexHandle;
  #closed = false;
  #writes: Promise<unknown> = Promise.resolve();
  /**
   * Writes running (on the pool). usearch's memory_usage walks every node up
   * to the index's size, which an add raises before it has stored the new
   * node: read from the main thread meanwhile, it met a null node and the
   * process crashed (`stats()` during an upsert).
   */
  #writing = 0;
  /** `memoryUsage()` as of the last call with no write running. */
  #memory = 0;
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Graph changes run so far (adds, removes), counted in write order. */
  #changes = 0;
  /** `#changes` when a repairing check last left every live node reachable: until the next change, another finds nothing. */
  #reachableAt = -1;
  /** Set by a `loadFrom` given a digest key. */
  #loadedKeyDigest: Uint8Array | undefined;

  constructor(handle: NativeIndexHandle, options: Readonly<EngineOptions>) {
    this.#handle = handle;
    this.options = options;
    this.parallelism = Math.max(1, Math.min(availableParallelism(), threadPoolSize() - 1));
  }

  size(): number {
    return this.#live().size();
  }

  capacity(): number {
    return this.#live().capacity();
  }

  contains(key: bigint): boolean {
    if (typeof key !== 'bigint') throw new ValidationError('key must be a bigint', { path: 'key' });
    return this.#live().contains(key);
  }

  countPresent(keys: BigUint64Array | Float64Array): Promise<number> {
    return this.#guard(async () => {
      if (!(keys instanceof Float64Array)) checkKeys(keys, 'keys');
      // Numbers are checked on the pool (-1: one is not a non-negative safe integer): a pass here held the loop ~10 ms at 200k keys.
      const present = await nativeCall('countPresent', () => this.#handle.countPresent(keys));
      if (present < 0) throw new ValidationError('keys must be non-negative safe integers', { path: 'keys' });
      return present;
    });
  }

  /** usearch's own figure; while a write runs, the one from the last call with none running (see #writing). */
  memoryUsage(): number {
    const handle = this.#live();
    if (this.#writing === 0) this.#memory = handle.memoryUsage();
    return this.#memory;
  }

  isa(): string {
    return this.#live().isa();
  }

  add(keys: BigUint64Array, vectors: Float32Array): Promise<void> {
    return this.#guard(() => {
      checkKeys(keys, 'keys');
      checkVectorShape(vectors, keys.length, this.options.dimension, 'vectors');
      if (keys.length === 0) return Promise.resolve();
      // Values (finite numbers, reserved or repeated keys) are checked off the
      // main thread before anything is written; a 100k × 384 batch would
      // otherwise stall the event loop for a scan and a copy.
      return this.#write(() => {
        this.#changes++;
        return this.#addAll(keys, vectors);
      });
    });
  }

  remove(keys: BigUint64Array): Promise<number> {
    return this.#guard(() => {
      checkKeys(keys, 'keys');
      if (keys.length === 0) return Promise.resolve(0);
      const copy = keys.slice();
      return this.#write(() => {
        this.#changes++;
        return nativeCall('remove', () => this.#handle.remove(copy));
      });
    });
  }

  reserve(capacity: number): Promise<void> {
    return this.#guard(() => {
      checkInteger(capacity, 'capacity', 0, 2 ** 32 - 2);
      return this.#write(() => nativeCall('reserve', () => this.#handle.reserve(capacity)));
    });
  }

  search(queries: Float32Array, k: number, options: NativeSearchOptions = {}): Promise<SearchResult> {
    // Written without #guard's closures: a single query at small ef costs
    // ~25 µs, so every allocation on this path shows in QPS. Errors still
    // come back as rejections, never throws.
    let ef: number;
    let allowed: BigUint64Array | null;
    let exact: boolean;
    try {
      if (this.#closed) throw new ClosedError('the engine is closed');
      const { dimension } = this.options;
      if (!(queries instanceof Float32Array) || queries.length % dimension !== 0) {
        throw new ValidationError(`queries must be a Float32Array of n × ${dimension} numbers`, { path: 'queries' });
      }
      checkInteger(k, 'k', 1, MAX_K);
      if ((queries.length / dimension) * k > MAX_RESULT_ROWS) {
        throw new ValidationError(`queries × k must stay within ${MAX_RESULT_ROWS}: split the batch`, { path: 'k' });
      }
      ef = options.expansionSearch ?? this.options.expansionSearch;
      checkInteger(ef, 'expansionSearch', 1, 100_000);
      allowed = options.allowedKeys === undefined ? null : checkKeys(options.allowedKeys, 'allowedKeys');
      if (options.exact !== undefined && typeof options.exact !== 'boolean') {
        throw new ValidationError('exact must be a boolean', { path: 'exact' });
      }
      checkVectors(queries, queries.length / dimension, dimension, 'queries');
      exact = options.exact ?? false;
      if (
        queries.length === dimension &&
        k <= SYNC_MAX_K &&
        ef <= SYNC_MAX_EF &&
        allowed === null &&
        (!exact || this.#handle.size() * dimension <= SYNC_EXACT_MAX_VALUES)
      ) {
        // One plain graph query costs tens to hundreds of µs: less than a pool
        // round trip; so does an exact scan of a small index (an untrained one
        // holds at most 2,000 vectors). Filtered searches and larger exact scans
        // can take far longer (a filtered walk at 1% selectivity visits most of
        // the graph), so they always go to the pool; so does this one if the addon cannot start
        // it without waiting (an insert row, remove batch or growth running).
        // Not tracked for close(): it has finished when it returns.
        const direct = this.#searchDirect(queries, k, ef, exact);
        if (direct) return Promise.resolve(direct);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#guard(() => nativeCall('search', () => this.#searchAll(queries, k, ef, allowed, exact)));
  }

  serialize(): Promise<Uint8Array> {
    return this.#guard(() => this.#write(() => nativeCall('serialize', () => this.#handle.serialize())));
  }

  checkGraph({ repair = true, maxRounds = GRAPH_REPAIR_ROUNDS, expansion }: GraphCheckOptions = {}): Promise<GraphCheck> {
    return this.#guard(() => {
      if (typeof repair !== 'boolean') throw new ValidationError('repair must be a boolean', { path: 'repair' });
      checkInteger(maxRounds, 'maxRounds', 0, 100);
      const ef = checkInteger(expansion ?? GRAPH_REPAIR_EXPANSION, 'expansion', 1, 100_000);
      // A write: the repair relinks nodes, and the check must not see half of an add.
      return this.#write(async () => {
        const started = performance.now();
        if (repair && this.#reachableAt === this.#changes) {
          // Nothing changed since a repair left the graph whole (e.g. the snapshot right after a compaction).
          return { unreachable: 0, relinked: 0, remaining: 0, checks: 0, live: this.#handle.size(), keys: new BigUint64Array(0), ms: 0 };
        }
        const r = await nativeCall('checkGraph', () => this.#handle.checkGraph(repair, maxRounds, ef));
        if (repair && r.remaining === 0) this.#reachableAt = this.#changes;
        return {
          unreachable: r.found,
          relinked: r.repaired,
          remaining: r.remaining,
          checks: r.rounds,
          live: r.live,
          keys: r.keys,
          ms: performance.now() - started,
        };
      });
    });
  }

  unlinkForTesting(key: bigint): Promise<number> {
    return this.#guard(() =>
      this.#write(() => {
        this.#changes++;
        return nativeCall('unlinkForTesting', () => this.#handle.unlinkForTesting(key));
      }),
    );
  }

  serializeTo(chunkBytes: number, sink: ChunkSink): Promise<number> {
    return this.#guard(() => {
      checkInteger(chunkBytes, 'chunkBytes', 1, 2 ** 30);
      return this.#write(() => this.#serializeStream(chunkBytes, sink));
    });
  }

  async #serializeStream(chunkBytes: number, sink: ChunkSink): Promise<number> {
    // The addon fills these in turn; a buffer is refilled once the sink's promise for it resolved.
    const buffers = Array.from({ length: SERIALIZE_BUFFERS }, () => new Uint8Array(chunkBytes));
    let total = -1;
    let offset = 0;
    let index = 0;
    let failure: unknown;
    let ended!: () => void;
    const end = new Promise<void>((resolve) => (ended = resolve));
    let sinking: Promise<unknown> = Promise.resolve();
    const control: SerializeStreamControl = this.#handle.serializeStream(buffers, (kind, a, b) => {
      if (kind === 0) total = a;
      else if (kind === 2) ended();
      else if (kind === 1) {
        const chunk = buffers[a]!.subarray(0, b);
        const at = index++;
        offset += b;
        const last = offset === total;
        const step = Promise.resolve()
          .then(() => sink(chunk, at, last))
          .then(
            () => control.ack(a),
            (error: unknown) => {
              failure ??= error;
              control.cancel();
            },
          );
        sinking = Promise.all([sinking, step]);
      }
    });
    try {
      await nativeCall('serialize', () => control.done);
    } catch (error) {
      await sinking;
      throw failure ?? error; // the sink's own error when it stopped the stream
    }
    await end; // every chunk event delivered
    await sinking;
    if (failure !== undefined) throw failure;
    if (offset !== total) throw new NativeError('the serialized stream ended early');
    return total;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // allSettled: close must not fail because some caller's call failed.
    await Promise.allSettled([...this.#inFlight]);
    await this.#handle.close(); // freed on the pool: ~80 ms of munmap at 1M vectors
  }

  /** Only the loader calls this, before the engine is handed out. */
  load(bytes: Uint8Array | readonly Uint8Array[], { unitVectors = false }: LoadOptions = {}): Promise<void> {
    return nativeCall('deserialize', () => this.#handle.load(bytes as Uint8Array | Uint8Array[], unitVectors));
  }

  unitVectors(): boolean {
    return this.#handle.unitVectors();
  }

  /** Only the loader calls this, before the engine is handed out: pulls chunks a few ahead of the addon. */
  async loadFrom(chunks: AsyncIterable<Uint8Array>, { bound, release = false, keyDigest, unitVectors = false }: StreamLoadOptions): Promise<void> {
    checkInteger(bound, 'bound', 0, Number.MAX_SAFE_INTEGER);
    if (keyDigest !== undefined && (!(keyDigest instanceof Uint8Array) || keyDigest.byteLength !== 32)) {
      throw new ValidationError('keyDigest must be a 32-byte Uint8Array', { path: 'keyDigest' });
    }
    let consumed = 0;
    let pushed = 0;
    let finished = false;
    let wake: (() => void) | undefined;
    const control = this.#handle.loadStream(
      bound,
      (count) => {
        consumed = Math.max(consumed, count);
        wake?.();
      },
      release,
      keyDigest,
      unitVectors,
    );
    const done = nativeCall('deserialize', () => control.done).finally(() => {
      finished = true;
      wake?.();
    });
    done.catch(() => undefined); // awaited below
    let failure: unknown;
    try {
      for await (const chunk of chunks) {
        while (!finished && pushed - consumed >= LOAD_AHEAD) await new Promise<void>((resolve) => (wake = resolve));
        if (finished) break; // the addon stopped early (invalid bytes): stop reading
        control.push(chunk);
        pushed++;
      }
      control.end();
    } catch (error) {
      failure = error;
      control.cancel();
    }
    let digest: Uint8Array | undefined;
    try {
      digest = await done;
    } catch (error) {
      throw failure ?? error;
    }
    if (failure !== undefined) throw failure;
    this.#loadedKeyDigest = digest;
  }

  loadedKeyDigest(): Uint8Array | undefined {
    return this.#loadedKeyDigest;
  }

  async #addAll(keys: BigUint64Array, vectors: Float32Array): Promise<void> {
    await nativeCall('add', () => this.#handle.prepareAdd(keys, vectors));
    const { dimension } = this.options;
    const rows = chunkRows(dimension);
    let next = 0;
    let failed = false;
    const lane = async (): Promise<void> => {
      while (!failed && next < keys.length) {
        const start = next;
        next = Math.min(keys.length, start + rows);
        const chunkKeys = keys.subarray(start, next);
        const chunkVectors = vectors.subarray(start * dimension, next * dimension);
        try {
          await this.#handle.addChunk(chunkKeys, chunkVectors);
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    // Settle every lane before reporting, so the next write never overlaps this one.
    const lanes = await Promise.allSettled(Array.from({ length: this.parallelism }, lane));
    const rejected = lanes.find((lane): lane is PromiseRejectedResult => lane.status === 'rejected');
    if (rejected) throw mapNativeError(rejected.reason, 'add');
  }

  #searchDirect(query: Float32Array, k: number, ef: number, exact: boolean): SearchResult | null {
    let block: ArrayBuffer | null;
    try {
      block = this.#handle.searchSync(query, k, ef, exact);
    } catch (error) {
      throw mapNativeError(error, 'search');
    }
    return block && resultViews(block, 1, k);
  }

  /** A batch runs on up to `parallelism` pool threads; a big one as several calls, assembled row-major. */
  async #searchAll(queries: Float32Array, k: number, ef: number, allowed: BigUint64Array | null, exact: boolean): Promise<SearchResult> {
    const { dimension } = this.options;
    const total = queries.length / dimension;
    const lanesFor = (count: number) => Math.max(1, Math.min(this.parallelism, Math.floor(count / MIN_LANE_QUERIES)));
    const lanes = lanesFor(total);
    const perCall = lanes * SEARCH_CALL_QUERIES_PER_LANE;
    if (total <= perCall) {
      // One call (a single query too): the addon copies the arrays before it returns.
      return resultViews(await this.#handle.search(queries, k, ef, allowed, exact, lanes), total, k);
    }
    // Later calls start after this one returns: snapshot the caller's arrays now.
    queries = queries.slice();
    allowed = allowed?.slice() ?? null;
    const result: SearchResult = {
      keys: new BigUint64Array(total * k),
      distances: new Float32Array(total * k),
      counts: new Uint32Array(total),
      k,
    };
    for (let start = 0; start < total; start += perCall) {
      const end = Math.min(total, start + perCall);
      const block = await this.#handle.search(queries.subarray(start * dimension, end * dimension), k, ef, allowed, exact, lanesFor(end - start));
      const { keys, distances, counts } = resultViews(block, end - start, k);
      result.keys.set(keys, start * k);
      result.distances.set(distances, start * k);
      result.counts.set(counts, start);
    }
    return result;
  }

  #live(): NativeIndexHandle {
    if (this.#closed) throw new ClosedError('the engine is closed');
    return this.#handle;
  }

  /** Validates synchronously-thrown errors into rejections and tracks the call for close(). */
  #guard<T>(start: () => Promise<T>): Promise<T> {
    let promise: Promise<T>;
    try {
      this.#live();
      promise = start();
    } catch (error) {
      return Promise.reject(error);
    }
    this.#inFlight.add(promise);
    const untrack = (): void => {
      this.#inFlight.delete(promise);
    };
    promise.then(untrack, untrack);
    return promise;
  }

  /** Runs `task` after every earlier write settled (writes never overlap). */
  #write<T>(task: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      this.#writing++;
      try {
        return await task();
      } finally {
        this.#writing--;
      }
    };
    const result = this.#writes.then(run, run);
    this.#writes = result.catch(() => undefined);
    return result;
  }
}

function newHandle(options: Readonly<EngineOptions>): NativeIndexHandle {
  const { NativeIndex } = loadAddon();
  tuneAllocator(); // once per process, before the first graph and its bulk work (util/memory.ts)
  try {
    return new NativeIndex(
      options.dimension,
      options.metric,
      options.precision,
      options.connectivity,
      options.expansionAdd,
      threadPoolSize() + 1, // one usearch thread slot per pool thread, plus the main thread (searchSync)
    );
  } catch (cause) {
    throw new NativeError('the native engine could not be created', { cause });
  }
}

export const nativeEngine: NativeEngineFactory = {
  name: 'native',

  create(options: EngineOptions): NativeAnnEngine {
    const checked = checkOptions(options);
    return new NativeEngine(newHandle(checked), checked);
  },

  async deserialize(bytes: Uint8Array | readonly Uint8Array[], options: EngineOptions, load?: LoadOptions): Promise<NativeAnnEngine> {
    const checked = checkOptions(options);
    const parts = bytes instanceof Uint8Array ? [bytes] : Array.isArray(bytes) ? bytes : [];
    if (parts.length === 0 || !parts.every((part) => part instanceof Uint8Array)) {
      throw new ValidationError('bytes must be a Uint8Array or a non-empty array of them', { path: 'bytes' });
    }
    const engine = new NativeEngine(newHandle(checked), checked);
    try {
      await engine.load(bytes, load);
    } catch (error) {
      await engine.close();
      throw error;
    }
    return engine;
  },

  async deserializeFrom(chunks: AsyncIterable<Uint8Array>, options: EngineOptions, stream: StreamLoadOptions): Promise<NativeAnnEngine> {
    const checked = checkOptions(options);
    const engine = new NativeEngine(newHandle(checked), checked);
    try {
      await engine.loadFrom(chunks, stream);
    } catch (error) {
      await engine.close();
      throw error;
    }
    return engine;
  },
};
