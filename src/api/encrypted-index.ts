/**
 * One open, authorised index: the public methods. Each checks its arguments
 * and the handle's state, then makes one call into src/core/, which encrypts
 * and talks to the narrow seams (the per-index store: ciphertext only; the
 * ANN engine: plaintext vectors in memory only). Construction stays with
 * `Client` (`createIndex` / `loadIndex`).
 */
import type { IndexState } from '../core/index-state.js';
import { compact, writeSnapshot } from '../core/maintenance.js';
import { getRecords, listIds, query, type SearchMode } from '../core/query.js';
import { deleteRecords, upsertRecords } from '../core/writes.js';
import { catchUp, catchUpForRead } from '../core/follow.js';
import { CallsInFlight } from '../core/calls-in-flight.js';
import { verifyIndex } from '../core/verify.js';
import { ClosedError, NotSupportedError, PermissionError, ValidationError } from '../errors.js';
import { checkEmbeddingMatches, checkQueryContents, embedTexts, embedUpsert, noEmbeddingError, type CheckedEmbedding } from './embedding.js';
import { createUser, listUsers, revokeUser } from '../core/users.js';
import { checkIndexKey } from '../keys/index-key.js';
import { isPermissions, type Permissions } from '../keys/users.js';
import type { HandleAccess } from './access.js';
import { rotateDataKey, rotateKey } from '../core/rotation.js';
import type { KmsRegistry } from '../keys/kms/types.js';
import { checkRotateKeyParams, keySourceOf, rotatedKeyEntry, rotationKeys } from './key-rotation.js';
import { compileFilter } from '../filter/index.js';
import type {
  DeleteParams,
  DeleteResponse,
  EmbeddingInfo,
  Filter,
  GetInclude,
  GetParams,
  GetResultItem,
  IndexConfigInfo,
  IndexStats,
  IndexType,
  CreateUserKeyParams,
  KeySource,
  ListIdsResponse,
  RevokeUserParams,
  UserInfo,
  Metric,
  QueryInclude,
  QueryParams,
  QueryResponse,
  QueryResultItem,
  RotateDataKeyOptions,
  RotateKeyParams,
  StoragePrecision,
  TrainParams,
  TrainResponse,
  UpsertParams,
  CompactOptions,
  UpsertResponse,
} from './types.js';
import {
  checkIds,
  checkInclude,
  checkPositiveInt,
  checkProgressOption,
  checkUserId,
  isEmptyUpsert,
  isPlainObject,
  normalizeQueryVectors,
  normalizeUpsert,
} from './validate.js';
import { requestedConfig } from '../storage/manifest.js';
import { exactWhileUntrained, nListsOf } from '../core/training.js';
import type { VerifyOptions, VerifyReport } from './check-types.js';

const QUERY_INCLUDE: readonly QueryInclude[] = ['distance', 'metadata', 'vector', 'contents'];
const GET_INCLUDE: readonly GetInclude[] = ['vector', 'metadata', 'contents'];
/** A query returns ids only unless `include` asks for more. */
const NO_INCLUDE: readonly QueryInclude[] = [];
const MAX_TOP_K = 10_000;
const DEFAULT_TOP_K = 100;

/**
 * @internal Gives a handle the embedding `loadIndex` was passed, after checking it matches the one the
 * index records (a handle already open in a Client is handed out again by `loadIndex`).
 */
export let attachEmbedding: (index: EncryptedIndex, embedding: CheckedEmbedding) => void;

/**
 * An encrypted index, opened with its key. Get one from
 * {@link Client.createIndex} or {@link Client.loadIndex}; it stays usable
 * until `close()` (of the index or its Client) or `deleteIndex()`, after which
 * every call but the synchronous getters throws `ClosedError` (`VECVAULT_CLOSED`).
 *
 * Every call may also throw `IntegrityError` (`VECVAULT_INTEGRITY`) when
 * stored data fails authentication, `StorageError` (`VECVAULT_IO`) when the
 * file system refuses a read or write, and `NativeError` (`VECVAULT_NATIVE`)
 * when the engine fails after a write was saved (load the index again).
 *
 * @example
 * ```ts
 * const index = await client.createIndex({ indexName: 'notes', indexKey, dimension: 3 });
 * await index.upsert({ items: [{ id: 'a', vector: [1, 0, 0], metadata: { folder: 'work' } }] });
 * const { results } = await index.query({ queryVectors: [1, 0, 0], topK: 1 });
 * ```
 */
export class EncryptedIndex {
  readonly #state: IndexState;
  /** Lets go of this handle's share of the index (the last handle closes it). */
  readonly #release: () => Promise<void>;
  /** Where the index's key lives, from its catalog entry. */
  readonly #keySource: KeySource;
  /** The KMS registry of the Client that gave out this handle: rotation resolves slots in it. */
  readonly #kms: KmsRegistry | undefined;
  /** This handle was closed (by itself or its Client); other handles of the index may still be open. */
  #closed = false;
  #closing: Promise<void> | null = null;
  /** Calls through this handle started and not yet settled: its close() waits for them (not for other handles'). */
  readonly #calls = new CallsInFlight();
  /** Opened with the root key source, or as a user (and with which permissions). */
  readonly #access: HandleAccess;

  /** The function that embeds text for this handle (`createIndex`/`loadIndex({ embedding })`); null without one. */
  #embedding: CheckedEmbedding | null = null;

  static {
    attachEmbedding = (index, embedding) => {
      const state = index.#state;
      checkEmbeddingMatches(embedding, state.manifest.embedding, state.manifest.dimension, state.name);
      index.#embedding = embedding;
    };
  }

  /**
   * @internal Built by `Client` after the key check. Several handles (one per
   * Client that loaded the index) may share one state.
   */
  constructor(
    state: IndexState,
    release: () => Promise<void>,
    keySource: KeySource = { provider: 'none' },
    access: HandleAccess = { role: 'root' },
    kms?: KmsRegistry,
  ) {
    this.#state = state;
    this.#release = release;
    this.#keySource = keySource;
    this.#access = access;
    this.#kms = kms;
  }

  /** Runs a public call on the shared state, after checking this handle is open (and its user not revoked). */
  async #call<T>(work: () => Promise<T>): Promise<T> {
    this.#assertOpen();
    const access = this.#access;
    if (access.role === 'user' && this.#state.revokedSlots.has(access.slot)) {
      throw new PermissionError(`User "${access.userId}" was revoked from index "${this.#state.name}".`);
    }
    return this.#calls.run(() => this.#state.call(work));
  }

  /** A write: the root, or a user with `write`. Checked before anything else, so nothing is written. */
  #requireWrite(method: string): void {
    const access = this.#access;
    if (access.role === 'user' && !access.permissions.includes('write')) {
      throw new PermissionError(`${method}() needs write permission; user "${access.userId}" of index "${this.#state.name}" may only read.`);
    }
  }

  /** User administration and deletion: only a handle opened with the root key source. */
  #requireRoot(method: string): void {
    const access = this.#access;
    if (access.role === 'user') {
      throw new PermissionError(
        `${method}() needs the index's root key source (its indexKey or KMS slot); this handle was opened with the user key of "${access.userId}".`,
      );
    }
  }

  #assertOpen(): void {
    if (this.#closed) {
      this.#state.assertUsable(); // deleted says so
      throw new ClosedError(`Index "${this.#state.name}" is closed. Load it again from an open Client.`);
    }
  }

  // ---- getters (CyborgDB shapes) ----

  /** The index's name, as given to `createIndex`. */
  getIndexName(): string {
    return this.#state.name;
  }

  /**
   * Where the index's key lives: `{ provider: 'none' }` for an index created with `indexKey`, or
   * `{ provider, kmsName, keyId? }` for one created with `kmsName` (the slot, its provider and the
   * key's id there). Never a secret. Works on a closed handle.
   * @example
   * ```ts
   * index.getKeySource(); // { provider: 'aws-kms', kmsName: 'aws', keyId: 'arn:aws:kms:…' }
   * ```
   */
  getKeySource(): KeySource {
    // The entry in force (rotateKey through any handle of the index changes it), else the one it was opened with.
    const entry = this.#state.root?.entry;
    const source = entry ? keySourceOf(entry) : this.#keySource;
    return source.provider === 'none' ? { provider: 'none' } : { ...source };
  }

  /** Vector length; `null` until the first upsert fixes it when `createIndex` left it out. */
  getDimension(): number | null {
    return this.#state.manifest.dimension;
  }

  /**
   * The embedding the index was created with: its name, the index's
   * dimension, and whether this handle holds the function (`attached`: text
   * upserts and `queryContents` work); `null` for an index created without one.
   * Works on a closed handle.
   * @example
   * ```ts
   * index.getEmbedding(); // { name: 'all-MiniLM-L6-v2', dimension: 384, attached: true }
   * ```
   */
  getEmbedding(): EmbeddingInfo | null {
    const ref = this.#state.manifest.embedding;
    return ref === undefined ? null : { name: ref.name, dimension: this.#state.manifest.dimension, attached: this.#embedding !== null };
  }

  /** The distance metric chosen at `createIndex`. */
  getMetric(): Metric {
    return this.#state.manifest.metric;
  }

  /** How the engine holds vectors in memory (records always keep float32). */
  getStoragePrecision(): StoragePrecision {
    return this.#state.manifest.precision;
  }

  /**
   * The index type asked for at `createIndex` (`'hnsw'` when none was):
   * CyborgDB's `'ivf'`, `'ivfflat'`, `'ivfpq'` and `'ivfsq'` are recorded as
   * given and served by the same HNSW engine (docs/coming-from-cyborgdb.md).
   */
  getIndexType(): IndexType {
    return requestedConfig(this.#state.manifest).type;
  }

  /** The configuration asked for at `createIndex` (type, dimension, IVF parameters as given) and the HNSW parameters that serve it. */
  getIndexConfig(): IndexConfigInfo {
    const m = this.#state.manifest;
    const { type, ...ivf } = requestedConfig(m);
    return { type, dimension: m.dimension, metric: m.metric, ...ivf, ...m.indexConfig };
  }

  /**
   * CyborgDB's IVF list count: the `nLists` given to `createIndex` or
   * `train()`, else CyborgDB's rule of thumb for the current size
   * (√count, at least 1). `query({ nProbes })` at or above it asks for every
   * list: an exhaustive search, which vecvault answers exactly.
   */
  getNLists(): number {
    return nListsOf(this.#state);
  }

  /**
   * Which search answers unfiltered queries: `false` while the index is small
   * enough that comparing the query with every vector is exact and at least
   * as fast as the graph (see docs/coming-from-cyborgdb.md for the measured
   * size), `true` once the graph answers (past that size, or after
   * `train()`). Filtered queries choose by the number of matches either way.
   */
  isTrained(): boolean {
    return !exactWhileUntrained(this.#state);
  }

  /** Always false: nothing trains in the background (the graph is built as vectors arrive). */
  isTraining(): boolean {
    return false;
  }

  /**
   * CyborgDB's `train()`: the graph is built as vectors arrive, so nothing
   * needs training; this switches unfiltered queries of a small index from
   * exact search to the graph (`isTrained()` becomes true, for every handle,
   * until the index is closed), and records `nLists` for `getNLists()`.
   * `batchSize`, `maxIters`, `tolerance` and `maxMemory` are checked and have
   * nothing to tune.
   * @throws `VECVAULT_VALIDATION` for a bad parameter; `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * const { status } = await index.train(); // 'success'
   * ```
   */
  async train(params: TrainParams = {}): Promise<TrainResponse> {
    const state = this.#state;
    this.#requireWrite('train');
    return this.#call(async () => {
      if (!isPlainObject(params)) throw new ValidationError('train takes { nLists?, batchSize?, maxIters?, tolerance?, maxMemory? }.', { path: 'train' });
      const known = new Set(['nLists', 'batchSize', 'maxIters', 'tolerance', 'maxMemory']);
      for (const key of Object.keys(params)) {
        if (!known.has(key)) throw new ValidationError(`train: ${key} is not a known option.`, { path: key });
      }
      const checked: Partial<Record<'nLists' | 'batchSize' | 'maxIters' | 'maxMemory', number>> = {};
      for (const key of ['nLists', 'batchSize', 'maxIters', 'maxMemory'] as const) {
        if (params[key] !== undefined && params[key] !== 0) checked[key] = checkPositiveInt(params[key], key, 2 ** 53);
      }
      const tolerance = params.tolerance;
      if (tolerance !== undefined && (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance < 0)) {
        throw new ValidationError('tolerance must be a finite number ≥ 0.', { path: 'tolerance' });
      }
      if (checked.nLists !== undefined) state.trainedLists = checked.nLists;
      state.trainedByCall = true;
      return { status: 'success', message: `Index "${state.name}" is searched through its HNSW graph (no training needed).` };
    });
  }

  /**
   * Counts, configuration, memory and commit state of this handle.
   * @throws `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * const { count, commitCounter, memoryBytes } = index.stats();
   * ```
   */
  stats(): IndexStats {
    const state = this.#state;
    this.#assertOpen();
    state.assertCallable();
    const m = state.manifest;
    const engineMemory = state.engine?.memoryUsage() ?? 0;
    const filterMemory = state.live.memoryUsage();
    return {
      indexName: state.name,
      count: state.live.size,
      dimension: m.dimension,
      metric: m.metric,
      storagePrecision: m.precision,
      indexConfig: { ...m.indexConfig },
      memoryBytes: engineMemory + filterMemory,
      engineMemoryBytes: engineMemory,
      filterIndexMemoryBytes: filterMemory,
      commitCounter: m.counter,
      engine: state.engines.name,
      snapshotGeneration: m.snapshot?.generation ?? 0,
      changesSinceSnapshot: state.changedSinceSnapshot,
      openedFrom: state.openedFrom,
      graphCheck: state.graphCheck && { ...state.graphCheck },
    };
  }

  // ---- writes ----

  /**
   * Inserts or overwrites records by id, in one atomic, durable commit: all
   * of the call is saved or none of it.
   * Accepts `{ items }`, `{ ids, vectors, metadata?, contents? }` or a bare array of items.
   * `onProgress({ done, total })` beside `items` or `ids` hears as the vectors join the graph
   * (in steps of 10,000 items), for a progress bar over a large batch; it is called before the
   * commit, so throwing from it cancels the call and nothing is written.
   * With an embedding (`createIndex`/`loadIndex({ embedding })`), an item with
   * string `contents` and no `vector` gets its vector from it: one `embed`
   * call per `batchSize` such items, all before the commit.
   * @throws `VECVAULT_VALIDATION` for bad input (wrong dimension, NaN/∞, empty or repeated ids, bad metadata,
   * an item without a vector on a handle with no embedding); nothing is written.
   * @throws `VECVAULT_EMBEDDING` when the embedding fails or returns unusable vectors (`cause` says why); nothing is written.
   * @throws `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * await index.upsert({ items: [{ id: 'a', vector: [1, 0, 0], metadata: { year: 2025 }, contents: 'note' }] });
   * await index.upsert({ ids: ['b'], vectors: [[0, 1, 0]] });
   * ```
   */
  async upsert(params: UpsertParams): Promise<UpsertResponse> {
    const state = this.#state;
    this.#requireWrite('upsert');
    return this.#call(async () => {
      // An empty batch is a success with nothing written, as in CyborgDB's SDK (no commit).
      if (isEmptyUpsert(params)) return { status: 'success', upsertedCount: 0 };
      const onProgress = Array.isArray(params) ? undefined : checkProgressOption({ onProgress: (params as { onProgress?: unknown }).onProgress });
      const m = state.manifest;
      state.writeCalls++; // from here: checking a large batch can outlast the idle-snapshot timer
      try {
        const embedded = await embedUpsert(params, this.#embedding, m.embedding, state.name, m.dimension, m);
        const batch = await normalizeUpsert(embedded, state.manifest.dimension, state.manifest);
        await state.exclusive(() => upsertRecords(state, { ...batch, onProgress }));
        return { status: 'success', upsertedCount: batch.items.length };
      } finally {
        state.writeCalls--;
      }
    });
  }

  /**
   * Deletes records by id in one atomic commit; ids that are not there are ignored.
   * @throws `VECVAULT_VALIDATION` when `ids` is not an array of non-empty strings.
   * @throws `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * const { deletedCount } = await index.delete({ ids: ['a', 'not-there'] }); // 1
   * ```
   */
  async delete(params: DeleteParams): Promise<DeleteResponse> {
    const state = this.#state;
    this.#requireWrite('delete');
    return this.#call(async () => {
      const ids = checkIds((params as DeleteParams | undefined)?.ids, 'ids', true);
      const deletedCount = await state.exclusive(() => deleteRecords(state, ids));
      return { status: 'success', deletedCount };
    });
  }

  /**
   * Removes every key of this index and its catalog entry in one atomic
   * batch; the handle is closed afterwards.
   * @throws `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * await index.deleteIndex();
   * ```
   */
  async deleteIndex(): Promise<void> {
    const state = this.#state;
    this.#requireRoot('deleteIndex');
    await this.#call(() =>
      state.exclusive(async () => {
        let removed = false;
        try {
          await state.store.destroy(() => {
            removed = true;
          });
        } finally {
          // Once the batch removed it, the handle is done even if erasing its bytes failed (the error says why).
          if (removed) await state.release('deleted');
        }
      }),
    );
  }

  // ---- users (per-user keys; docs/key-sources.md) ----

  /**
   * Creates a user of this index and returns the user's 32-byte key (a fresh one, or `userKey` when
   * given). The user opens the index with `client.loadIndex({ indexName, indexKey: userKey, userId })`;
   * `['read']` may query and read, `['read', 'write']` also write. Only the wraps of what the user
   * may hold are stored. Needs a handle opened with the root key source.
   * @throws `VECVAULT_PERMISSION` on a user's handle; `VECVAULT_VALIDATION` for a bad `userId`,
   * `permissions` or `userKey`, or a `userId` that already exists; `VECVAULT_NOT_SUPPORTED` for an
   * index created before signed commits; `VECVAULT_CLOSED`.
   * @example
   * ```ts
   * const aliceKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
   * ```
   */
  async createUserKey(params: CreateUserKeyParams): Promise<Uint8Array> {
    const state = this.#state;
    this.#requireRoot('createUserKey');
    if (!isPlainObject(params))
      throw new ValidationError("createUserKey takes { userId, permissions: ['read'] | ['read', 'write'], userKey? }.", { path: 'params' });
    const userId = checkUserId(params.userId);
    if (!isPermissions(params.permissions)) {
      throw new ValidationError("permissions must be ['read'] or ['read', 'write'].", { path: 'permissions' });
    }
    const permissions: Permissions = params.permissions.includes('write') ? ['read', 'write'] : ['read'];
    const given = params.userKey === undefined ? undefined : checkIndexKey(params.userKey, 'userKey');
    try {
      return await this.#call(() => state.exclusive(() => createUser(state, userId, permissions, given)));
    } finally {
      given?.fill(0);
    }
  }

  /**
   * The users of this index and their permissions, sorted by `userId`. Needs the root key source.
   * @throws `VECVAULT_PERMISSION` on a user's handle; `VECVAULT_CLOSED`.
   * @example
   * ```ts
   * const users = await index.listUsers(); // [{ userId: 'alice', permissions: ['read'] }]
   * ```
   */
  async listUsers(): Promise<UserInfo[]> {
    const state = this.#state;
    this.#requireRoot('listUsers');
    return this.#call(() => state.exclusive(() => listUsers(state)));
  }

  /**
   * Revokes a user at once: the user's wraps are deleted and erased from the store's files before
   * this resolves, later `loadIndex` calls with that user's key fail with `VECVAULT_INVALID_KEY`, and
   * the user's open handles in this process get `VECVAULT_PERMISSION`. A user who copied keys or
   * files before can still decrypt what was sealed under the current data key: `rotateDataKey()`
   * afterwards (docs/key-sources.md; the other users keep their keys). An unknown `userId` is not an error. Needs the root key source.
   * @throws `VECVAULT_PERMISSION` on a user's handle; `VECVAULT_VALIDATION` for a bad `userId`; `VECVAULT_CLOSED`.
   * @example
   * ```ts
   * await index.revokeUser({ userId: 'alice' });
   * ```
   */
  async revokeUser(params: RevokeUserParams): Promise<void> {
    const state = this.#state;
    this.#requireRoot('revokeUser');
    if (!isPlainObject(params)) throw new ValidationError('revokeUser takes { userId }.', { path: 'params' });
    const userId = checkUserId(params.userId);
    await this.#call(() => state.exclusive(() => revokeUser(state, userId)));
  }

  // ---- reads ----

  /**
   * Nearest neighbours of one vector (flat results) or of a batch (one list
   * per query). With `filters`, the true filtered top-k. Lower distance is closer.
   * `queryContents` (text, with the index's embedding) stands in for `queryVectors`.
   * @throws `VECVAULT_VALIDATION` for a bad vector, `topK`, `include` or filter (`err.path` names it), or
   * `queryContents` on a handle without the index's embedding.
   * @throws `VECVAULT_EMBEDDING` when the embedding fails or returns an unusable vector.
   * @throws `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * const { results } = await index.query({ queryVectors: [1, 0, 0], topK: 5, filters: { folder: 'work' }, include: ['distance', 'metadata'] });
   * ```
   */
  query(params: QueryParams & { queryVectors: number[] }): Promise<QueryResponse<QueryResultItem[]>>;
  query(params: QueryParams & { queryVectors: number[][] }): Promise<QueryResponse<QueryResultItem[][]>>;
  query(params: QueryParams & { queryContents: string }): Promise<QueryResponse<QueryResultItem[]>>;
  query(params: QueryParams & { queryContents: string[] }): Promise<QueryResponse<QueryResultItem[][]>>;
  query(params: QueryParams): Promise<QueryResponse>;
  async query(params: QueryParams): Promise<QueryResponse> {
    const state = this.#state;
    return this.#call(async () => {
      if (typeof params !== 'object' || params === null) throw new ValidationError('query takes { queryVectors, topK?, include? }.', { path: 'query' });
      const topK = params.topK === undefined ? DEFAULT_TOP_K : checkPositiveInt(params.topK, 'topK', MAX_TOP_K);
      const include = checkInclude(params.include, QUERY_INCLUDE, NO_INCLUDE);
      let expansionSearch = params.expansionSearch === undefined ? undefined : checkPositiveInt(params.expansionSearch, 'expansionSearch', 65_536);
      const filter = params.filters === undefined ? undefined : compileFilter(params.filters);
      const hints = params;
      if (hints.exact !== undefined && typeof hints.exact !== 'boolean') throw new ValidationError('exact must be a boolean.', { path: 'exact' });
      if (hints.greedy !== undefined && typeof hints.greedy !== 'boolean') throw new ValidationError('greedy must be a boolean.', { path: 'greedy' });
      const nProbes = hints.nProbes === undefined ? undefined : checkPositiveInt(hints.nProbes, 'nProbes', 2 ** 32);
      if (hints.rerankMult !== undefined) {
        const rerank = checkPositiveInt(hints.rerankMult, 'rerankMult', 65_536);
        expansionSearch = Math.min(65_536, Math.max(expansionSearch ?? state.manifest.indexConfig.expansionSearch, topK * rerank));
      }
      // exact: true / false decides; else every list probed (an exhaustive IVF search) is exact; else exact while untrained.
      let mode: SearchMode = 'auto';
      if (hints.exact !== undefined) mode = hints.exact ? 'exact' : 'graph';
      else if (nProbes !== undefined && nProbes >= nListsOf(state)) mode = 'exact';
      const consistency = checkConsistency(params.consistency);
      // A shared store: every commit acknowledged before this call, unless 'eventual' (no await when local).
      if (state.store.remote) await catchUpForRead(state, consistency);
      const vectors =
        params.queryContents === undefined
          ? normalizeQueryVectors(params.queryVectors, state.manifest.dimension, params.dimension, state.manifest)
          : await this.#embedQuery(params);
      // Spelled out, not spread: a spread into a literal with more fields built a new hidden class on every call (~3 µs a query).
      const { data, count, batch } = vectors;
      return query(state, { data, count, batch, topK, include, expansionSearch, filter, mode });
    });
  }

  /** `queryContents` embedded into query rows, checked like `queryVectors`. */
  async #embedQuery(params: QueryParams): Promise<{ data: Float32Array; count: number; batch: boolean }> {
    const state = this.#state;
    if (params.queryVectors !== undefined) throw new ValidationError('Pass queryVectors or queryContents, not both.', { path: 'queryContents' });
    const { texts, batch } = checkQueryContents(params.queryContents);
    if (this.#embedding === null) throw noEmbeddingError(state.manifest.embedding, state.name, 'queryContents');
    const { data } = await embedTexts(this.#embedding, texts, state.manifest.dimension, state.manifest, true);
    return { data, count: texts.length, batch };
  }

  /**
   * Records by id, in the order asked; a missing id comes back as `{ id }` alone.
   * `include` defaults to `['vector', 'contents', 'metadata']`.
   * @throws `VECVAULT_VALIDATION` for bad ids or `include`.
   * @throws `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * const [a, missing] = await index.get({ ids: ['a', 'zzz'], include: ['contents'] });
   * ```
   */
  async get(params: GetParams): Promise<GetResultItem[]> {
    const state = this.#state;
    return this.#call(async () => {
      const ids = checkIds((params as GetParams | undefined)?.ids, 'ids', true);
      const include = checkInclude(params.include, GET_INCLUDE, GET_INCLUDE);
      await catchUpForRead(state);
      return getRecords(state, ids, include);
    });
  }

  /**
   * Every live id, or with `{ filters }` those whose metadata matches.
   * @throws `VECVAULT_VALIDATION` for a bad filter.
   * @throws `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * const { ids, count } = await index.listIds({ filters: { folder: 'work' } });
   * ```
   */
  async listIds(params: { filters?: Filter } = {}): Promise<ListIdsResponse> {
    const state = this.#state;
    return this.#call(async () => {
      const filter = params?.filters === undefined ? undefined : compileFilter(params.filters);
      await catchUpForRead(state);
      return listIds(state, filter);
    });
  }

  // ---- lifecycle ----

  /** @internal Open and in step with its store: the Client may hand it out again from loadIndex. */
  isUsable(): boolean {
    return !this.#closed && this.#state.isUsable();
  }

  /**
   * Waits for the calls on this index that started before it (writes and
   * reads), writes a snapshot if anything changed, then frees memory and
   * wipes the index's keys. Calls on this handle that start once close()
   * began get `VECVAULT_CLOSED`. When other Clients of this process hold the
   * same index, only this handle closes (the last one closes the index).
   * Idempotent; never throws (a failed snapshot is covered by the change
   * log). `client.close()` closes every index it opened.
   * @example
   * ```ts
   * await index.close();
   * ```
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= this.#calls.settled().then(() => this.#release());
    return this.#closing;
  }

  /**
   * Rebuilds the graph from the live records only, so removed and overwritten
   * vectors stop holding memory, snapshots it and drops dead values from disk.
   * Queries keep using the old graph until the swap. Also runs by itself once
   * removed vectors outnumber live ones.
   * @param options `onProgress({ done, total })`, called as live records are re-inserted.
   * @throws `VECVAULT_VALIDATION` when `onProgress` is not a function; `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * await index.compact({ onProgress: ({ done, total }) => console.log(`${done}/${total}`) });
   * ```
   */
  async compact(options: CompactOptions = {}): Promise<void> {
    const state = this.#state;
    this.#requireWrite('compact');
    const onProgress = checkProgressOption(options);
    await this.#call(() => state.exclusive(() => compact(state, onProgress)));
  }

  /**
   * Writes an encrypted snapshot of the graph now, so the next open needs no
   * replay (it also happens on close and after many changes).
   * @throws `VECVAULT_CLOSED` after close or deleteIndex.
   * @example
   * ```ts
   * await index.snapshot();
   * ```
   */
  async snapshot(): Promise<void> {
    const state = this.#state;
    this.#requireWrite('snapshot');
    await this.#call(() => state.exclusive(() => writeSnapshot(state)));
  }

  /**
   * Re-wraps the index's data key under a new key source: `{ indexKey }` (a
   * new 32-byte key) or `{ kmsName }` (a slot of this handle's Client's
   * `kms` registry). One atomic, synced replacement of the catalog entry,
   * whatever the index size; a crash leaves the old key source or the new one
   * in force, never both or neither. From then on the old key is an
   * `InvalidKeyError` (the old KMS wrap is gone), and the replaced entry is
   * erased from LevelDB's files before the call resolves. Every handle of the
   * index in this process keeps working. SDK → KMS, KMS → SDK, KMS → KMS and
   * SDK → SDK.
   * @throws `VECVAULT_VALIDATION` unless exactly one of `indexKey`/`kmsName` (the key 32 bytes);
   * `VECVAULT_KMS` when the slot is missing or its provider fails (nothing is changed);
   * `VECVAULT_NOT_SUPPORTED` for `{ kmsName }` on a format-1 index (run `rotateDataKey()` first);
   * `VECVAULT_PERMISSION` on a handle not opened with the root key source; `VECVAULT_CLOSED`.
   * @example
   * ```ts
   * const newKey = Client.generateKey();
   * await index.rotateKey({ indexKey: newKey }); // or { kmsName: 'hsm' }
   * ```
   */
  async rotateKey(params: RotateKeyParams): Promise<void> {
    this.#requireRoot('rotateKey'); // the state may hold the root's keys for another handle: this one must be the root's
    const choice = checkRotateKeyParams(params);
    const state = this.#state;
    try {
      await this.#call(() => state.exclusive(() => rotateKey(state, (root) => rotatedKeyEntry(this.#kms, state.name, root, choice))));
    } finally {
      if ('key' in choice) choice.key.fill(0);
    }
  }

  /**
   * A new data key: every record, the change log and the snapshot are
   * re-sealed under a new DEK generation (new subkeys, new record keys, a new
   * index id), and the catalog entry switches to it in one atomic batch.
   * Writes wait for it; reads go on. A crash midway leaves the index as it
   * was (it opens and serves every record from the old generation); the next
   * `rotateDataKey()` continues the copy (or starts it over if the index was
   * written meanwhile). When it resolves, no value sealed under the old DEK
   * and not the old wrapped DEK remain in the store's files. A KMS-backed
   * index makes one `wrap` call with the new generation's context. Users keep
   * their keys and permissions: the switch re-grants each the new generation.
   * @param options.onProgress called with `{ done, total }` records as the copy advances.
   * @throws `VECVAULT_KMS` when the index's slot fails (before anything is written);
   * `VECVAULT_PERMISSION` on a handle not opened with the root key source;
   * `VECVAULT_INTEGRITY` when a stored record does not match the index; `VECVAULT_IO`; `VECVAULT_CLOSED`.
   * @example
   * ```ts
   * await index.rotateDataKey({ onProgress: ({ done, total }) => console.log(`${done}/${total}`) });
   * ```
   */
  async rotateDataKey(options: RotateDataKeyOptions = {}): Promise<void> {
    this.#requireRoot('rotateDataKey');
    const onProgress = checkProgressOption(options);
    const state = this.#state;
    await this.#call(() => state.exclusive(() => rotateDataKey(state, rotationKeys(this.#kms, state.name), onProgress)));
  }

  /**
   * Authenticates every value the index keeps (catalog entry, manifest,
   * commit head, every record, the change log, both snapshot sections) and
   * recomputes the manifest digest from the records. Reports every problem
   * rather than throwing at the first; `detail` never holds record ids or
   * plaintext. Writes wait while it reads (it runs in the write queue);
   * queries go on. When it finds problems, `recoverIndex()` (CLI:
   * `vecvault recover`) copies what still authenticates into a new store.
   * @param options `onProgress({ done, total })`, called as records and snapshot chunks are read.
   * @throws `VECVAULT_VALIDATION` when `onProgress` is not a function.
   * @throws `VECVAULT_CLOSED` after close or deleteIndex.
   * @throws `VECVAULT_IO` when the disk refuses a read.
   * @example
   * ```ts
   * const { ok, checked, problems } = await index.verify();
   * if (!ok) console.error(problems.map((p) => `${p.kind}: ${p.detail}`));
   * ```
   */
  async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    const onProgress = checkProgressOption(options);
    const state = this.#state;
    return this.#call(() =>
      state.exclusive(async () => {
        await catchUp(state); // a shared store: check the newest commit, not this process's view of an older one
        return verifyIndex(state.store, state.manifest, onProgress);
      }),
    );
  }
}

/** `query({ consistency })`: 'strong' (default) or 'eventual'. */
function checkConsistency(value: unknown): 'strong' | 'eventual' {
  if (value === undefined) return 'strong';
  if (value !== 'strong' && value !== 'eventual') throw new ValidationError("consistency must be 'strong' or 'eventual'.", { path: 'consistency' });
  return value;
}
