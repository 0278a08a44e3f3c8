/**
 * One open, authorised index. Public methods validate, then encrypt and call
 * the narrow seams: the key-value store (ciphertext only) and the ANN engine
 * (plaintext vectors in memory only). Writes are serialised per index; each is
 * one atomic LevelDB batch that also advances the authenticated manifest.
 */
import { constantTimeEqual, u64 } from '../crypto/kdf.js';
import type { AnnEngine, EngineFactory, EngineMetric, EngineOptions, EnginePrecision, SearchOptions } from '../engine/types.js';
import { ClosedError, IntegrityError, NativeError, ValidationError, VecvaultError } from '../errors.js';
import { compileFilter, MetadataIndex } from '../filter/index.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import type { IndexKeys } from '../keys/envelope.js';
import type { HeadFile } from '../storage/heads.js';
import type { BatchOp, KvStore } from '../storage/kv-store.js';
import { catalogKey, CHANGELOG, indexKey, indexRange, kindRange, keySuffix, MANIFEST, RECORD, SNAPSHOT } from '../storage/layout.js';
import {
  hashIds,
  liveTags,
  openChange,
  openManifest,
  openRecords,
  sealChange,
  sealManifest,
  sealRecords,
  type ChangeEntry,
  type Manifest,
  type RecordBody,
} from '../storage/sealed.js';
import { clearGeneration, decodeTable, dropSnapshotOps, encodeTable, readSection, unpackMetadataFrame, writeSection, type SnapshotTable } from '../storage/snapshot.js';
import type {
  DeleteParams,
  Filter,
  DeleteResponse,
  GetInclude,
  GetParams,
  GetResultItem,
  IndexStats,
  ListIdsResponse,
  Metadata,
  Metric,
  QueryInclude,
  QueryParams,
  QueryResponse,
  QueryResultItem,
  StoragePrecision,
  UpsertParams,
  UpsertResponse,
} from './types.js';
import { KeyTable } from './key-table.js';
import { checkIds, checkInclude, checkPositiveInt, normalizeQueryVectors, normalizeUpsert, type NormalizedItem } from './validate.js';

const QUERY_INCLUDE: readonly QueryInclude[] = ['distance', 'metadata', 'vector', 'contents'];
const GET_INCLUDE: readonly GetInclude[] = ['vector', 'metadata', 'contents'];
/** A query returns ids only unless `include` asks for more. */
const NO_INCLUDE: readonly QueryInclude[] = [];
const MAX_TOP_K = 10_000;
/** Snapshot in the background once this many records changed (or a quarter of the index, if larger). */
const SNAPSHOT_MIN_CHANGES = 10_000;
/**
 * A due snapshot waits until writes pause this long, so a bulk import of
 * back-to-back upserts is not held up by snapshots between its calls (the
 * change log covers a crash meanwhile). Once the changes since the last
 * snapshot reach SNAPSHOT_MAX_BACKLOG or half the index, whichever is more,
 * it is taken at once: replaying the log after a crash stays bounded, and a
 * growing import snapshots at geometrically spaced sizes.
 */
const SNAPSHOT_IDLE_MS = 250;
const SNAPSHOT_MAX_BACKLOG = 100_000;
/**
 * Filtered queries brute-force the matching vectors when at most this many
 * match (or this share of the index); past that the graph search with an
 * allowed-key predicate is cheaper. Measured in bench/ (filtered figures).
 */
const EXACT_FILTER_MAX_KEYS = 4_000;
const EXACT_FILTER_MAX_SHARE = 0.02;
/** Compact in the background once removed vectors outnumber live ones (and at least this many). */
const COMPACT_MIN_DEAD = 1_000;
const COMPACT_BATCH = 4_096;

const ENGINE_METRIC: Record<Metric, EngineMetric> = { euclidean: 'l2sq', squared_euclidean: 'l2sq', cosine: 'cos', ip: 'ip' };
const ENGINE_PRECISION: Record<StoragePrecision, EnginePrecision> = { float32: 'f32', float16: 'f16', int8: 'i8' };

/** Where a live record sits: its engine key and the commit that wrote it. */
interface LiveEntry {
  key: number;
  seq: number;
}

/** Everything an index needs from its Client; built by the Client after the key check. */
export interface IndexContext {
  name: string;
  indexId: Uint8Array;
  keys: IndexKeys;
  store: KvStore;
  head: HeadFile;
  engines: EngineFactory;
  /** Tells the Client this handle is gone (closed or deleted). */
  onRelease: (index: EncryptedIndex) => void;
}

export class EncryptedIndex {
  private manifest: Manifest;
  private engine: AnnEngine | null = null;
  /** Live records by id. Use `live`, which first finishes listing a restored snapshot. */
  private readonly liveById = new Map<string, LiveEntry>();
  /**
   * Records of a restored snapshot not in `liveById` yet: queries only need
   * `idOfKey`, so the open does not wait for this map; a background task
   * fills it slice by slice, and anything that needs it first fills the rest.
   */
  private unlisted: { ids: string[]; keys: Float64Array; seqs: Float64Array; next: number } | null = null;
  private idOfKey = new KeyTable();
  /** Decrypted metadata by engine key, for filters; memory only. Use `filterIndex()`, which fills it on first use. */
  private readonly metadata = new MetadataIndex();
  /**
   * Metadata restored from a snapshot, still packed: opening stays fast. A
   * background task indexes it frame by frame after the open; a filter or
   * write that needs it first indexes the rest at once.
   */
  private unindexed: { keys: Float64Array; frames: Uint8Array[]; next: number; offset: number } | null = null;
  private writeTail: Promise<unknown> = Promise.resolve();
  private state: 'open' | 'closed' | 'deleted' = 'open';
  /** Set when memory no longer matches the store (an engine failure after a commit). */
  private broken: Error | null = null;
  /** Records written since the newest snapshot; the next snapshot resets it. */
  private changedSinceSnapshot = 0;
  private openedFrom: 'create' | 'snapshot' | 'rebuild' = 'create';
  /** Maintenance queued or running (at most one of each kind). */
  private readonly background = new Set<'snapshot' | 'compaction'>();
  /** A due background snapshot, waiting for writes to pause (see SNAPSHOT_IDLE_MS). */
  private snapshotTimer: NodeJS.Timeout | undefined;
  /** Vectors removed from the engine since it was built; they still hold memory until a compaction. */
  private deadSlots = 0;
  private closing: Promise<void> | null = null;
  /** Bumped when a write starts committing and when its memory update ends: readers use it to tell a race from tampering. */
  private writeEpoch = 0;
  private writing = false;

  private constructor(
    private readonly ctx: IndexContext,
    manifest: Manifest,
  ) {
    this.manifest = manifest;
  }

  /** Seals and commits the first manifest of a new index (the caller adds the catalog entry to `ops`). */
  static async create(ctx: IndexContext, manifest: Manifest, ops: BatchOp[]): Promise<EncryptedIndex> {
    await ctx.head.create(manifest.counter);
    ops.push({ type: 'put', key: indexKey(ctx.indexId, MANIFEST), value: sealManifest(ctx.keys.manifest, ctx.indexId, manifest) });
    await ctx.store.batch(ops);
    const index = new EncryptedIndex(ctx, manifest);
    if (manifest.dimension !== null) index.engine = index.newEngine(manifest.dimension);
    return index;
  }

  /**
   * Authenticates the manifest and checks it against the commit head, then
   * restores the newest snapshot (replaying the change log after it), or,
   * when there is none or it fails authentication, verifies every record and
   * rebuilds the graph.
   */
  static async load(ctx: IndexContext): Promise<EncryptedIndex> {
    const raw = await ctx.store.get(indexKey(ctx.indexId, MANIFEST));
    if (raw === undefined) throw new IntegrityError(`The manifest of index "${ctx.name}" is missing. Restore the store from a backup.`);
    const manifest = openManifest(ctx.keys.manifest, ctx.indexId, raw, ctx.name);
    const acknowledged = ctx.head.read(ctx.name);
    if (manifest.counter < acknowledged) {
      throw new IntegrityError(
        `Index "${ctx.name}" is missing committed writes (store at commit ${manifest.counter}, ${acknowledged} were acknowledged): LevelDB dropped data or its files were rolled back. Restore the store from a backup.`,
      );
    }
    const index = new EncryptedIndex(ctx, manifest);
    if (manifest.snapshot && manifest.dimension !== null) {
      try {
        await index.restoreSnapshot();
        index.openedFrom = 'snapshot';
        void index.finishRestoreInBackground();
        return index;
      } catch (error) {
        if (!(error instanceof VecvaultError)) throw error;
        // Records are authenticated on their own: rebuilding from them is slower but sound.
        process.emitWarning(`vecvault: the graph snapshot of index "${ctx.name}" could not be used (${error.code}); rebuilding it from the encrypted records.`, {
          code: 'VECVAULT_SNAPSHOT_REBUILD',
        });
        await index.engine?.close();
        index.engine = null;
        index.unlisted = null;
        index.liveById.clear();
        index.idOfKey.clear();
        index.metadata.clear();
        index.unindexed = null;
      }
    }
    await index.rebuild();
    index.openedFrom = 'rebuild';
    index.changedSinceSnapshot = index.live.size;
    return index;
  }

  // ---- getters (CyborgDB shapes) ----

  getIndexName(): string {
    return this.ctx.name;
  }

  getDimension(): number | null {
    return this.manifest.dimension;
  }

  getMetric(): Metric {
    return this.manifest.metric as Metric;
  }

  getStoragePrecision(): StoragePrecision {
    return this.manifest.precision as StoragePrecision;
  }

  /** HNSW needs no training. */
  isTrained(): boolean {
    return true;
  }

  /** For API compatibility: resolves at once. */
  async train(): Promise<void> {
    this.assertUsable();
  }

  stats(): IndexStats {
    this.assertUsable();
    const m = this.manifest;
    return {
      indexName: this.ctx.name,
      count: this.idOfKey.size,
      dimension: m.dimension,
      metric: m.metric as Metric,
      storagePrecision: m.precision as StoragePrecision,
      indexConfig: { ...m.indexConfig },
      memoryBytes: (this.engine?.memoryUsage() ?? 0) + this.metadata.memoryUsage(),
      engineMemoryBytes: this.engine?.memoryUsage() ?? 0,
      filterIndexMemoryBytes: this.metadata.memoryUsage(),
      commitCounter: m.counter,
      engine: this.ctx.engines.name,
      snapshotGeneration: m.snapshot?.generation ?? 0,
      changesSinceSnapshot: this.changedSinceSnapshot,
      openedFrom: this.openedFrom,
    };
  }

  // ---- writes ----

  async upsert(params: UpsertParams): Promise<UpsertResponse> {
    this.assertUsable();
    const { items, vectors, dimension: given } = await normalizeUpsert(params, this.manifest.dimension, this.getMetric());
    return this.exclusive(async () => {
      const next = this.nextManifest();
      next.dimension ??= given;
      // Checked again here: a concurrent first upsert may have fixed the dimension meanwhile.
      if (given !== next.dimension) {
        throw new ValidationError(`items[0].vector has ${given} values; the index dimension is ${next.dimension}.`, { path: 'items[0].vector' });
      }
      const seq = next.counter;
      const dimension = next.dimension;
      const keys = new BigUint64Array(items.length);
      for (let i = 0; i < items.length; i++) {
        if (i > 0 && i % (16 * SLICE) === 0) await yieldToEventLoop();
        keys[i] = BigInt(engineKey(next.nextKey++));
      }
      // The graph inserts on the pool while this thread seals the records. The
      // new keys stay invisible (no id maps) until the commit; if the commit
      // fails they are taken out again.
      const created = this.engine === null;
      const engine = (this.engine ??= this.newEngine(dimension));
      const adding = engine.add(keys, vectors);
      adding.catch(() => undefined); // awaited below; never an unhandled rejection
      try {
        const ops: BatchOp[] = [];
        const replaced: number[] = [];
        // Sealed a slice at a time: one native call per slice for the HMACs and the AES-GCM.
        for (let start = 0; start < items.length; start += SLICE) {
          if (start > 0) await yieldToEventLoop();
          const slice = items.slice(start, start + SLICE);
          const hkeys = hashIds(this.ctx.keys.ids, slice.map((item) => item.id));
          const oldHkeys: Uint8Array[] = [];
          const oldSeqs: number[] = [];
          const bodies = slice.map((item, i): RecordBody => {
            const old = this.live.get(item.id);
            if (old) {
              oldHkeys.push(hkeys[i]!);
              oldSeqs.push(old.seq);
              replaced.push(old.key);
            } else {
              next.count++;
            }
            const body: RecordBody = { id: item.id, key: Number(keys[start + i]), vector: rowBytes(vectors, start + i, dimension) };
            if (item.metadata !== undefined) body.metadata = item.metadata;
            if (item.contents !== undefined) body.contents = item.contents;
            return body;
          });
          if (oldHkeys.length > 0) xorInto(next.digest, liveTags(this.ctx.keys.manifest, oldHkeys, oldSeqs));
          xorInto(next.digest, liveTags(this.ctx.keys.manifest, hkeys, seq));
          const values = sealRecords(this.ctx.keys.records, this.ctx.indexId, hkeys, seq, bodies);
          hkeys.forEach((hkey, i) => ops.push({ type: 'put', key: indexKey(this.ctx.indexId, RECORD, hkey), value: values[i]! }));
        }
        const ids = items.map((item) => item.id);
        await this.commitThenApply(next, ops, { upserted: ids, deleted: [] }, async () => {
          await adding;
          await this.publishUpsert(items, keys, replaced, seq);
        });
      } catch (error) {
        if (this.manifest !== next) await this.withdraw(engine, created, adding, keys);
        throw error;
      }
      this.maybeSnapshotLater();
      this.maybeCompactLater();
      return { status: 'success' as const, upsertedCount: items.length };
    });
  }

  async delete(params: DeleteParams): Promise<DeleteResponse> {
    this.assertUsable();
    const ids = checkIds((params as DeleteParams | undefined)?.ids, 'ids', true);
    return this.exclusive(async () => {
      const next = this.nextManifest();
      const gone = new Map<string, LiveEntry>();
      for (const id of ids) {
        const entry = this.live.get(id);
        if (entry) gone.set(id, entry);
      }
      if (gone.size === 0) return { status: 'success' as const, deletedCount: 0 };
      const hkeys = hashIds(this.ctx.keys.ids, [...gone.keys()]);
      xorInto(next.digest, liveTags(this.ctx.keys.manifest, hkeys, Array.from(gone.values(), (entry) => entry.seq)));
      next.count -= gone.size;
      const ops: BatchOp[] = hkeys.map((hkey) => ({ type: 'del', key: indexKey(this.ctx.indexId, RECORD, hkey) }));
      await this.commitThenApply(next, ops, { upserted: [], deleted: [...gone.keys()] }, async () => {
        for (const [id, entry] of gone) {
          this.live.delete(id);
          this.idOfKey.delete(entry.key);
          this.filterIndex().delete(entry.key);
        }
        await this.engine?.remove(BigUint64Array.from([...gone.values()], (e) => BigInt(e.key)));
        this.deadSlots += gone.size;
      });
      this.maybeCompactLater();
      return { status: 'success' as const, deletedCount: gone.size };
    });
  }

  /** Removes every key of this index and its catalog entry in one atomic batch. */
  async deleteIndex(): Promise<void> {
    this.assertUsable();
    await this.exclusive(async () => {
      const ops: BatchOp[] = [{ type: 'del', key: catalogKey(this.ctx.name) }];
      for await (const key of this.ctx.store.keys(indexRange(this.ctx.indexId))) ops.push({ type: 'del', key });
      await this.ctx.store.batch(ops);
      this.ctx.head.remove();
      await this.release('deleted');
    });
  }

  // ---- reads ----

  query(params: QueryParams & { queryVectors: number[] }): Promise<QueryResponse<QueryResultItem[]>>;
  query(params: QueryParams & { queryVectors: number[][] }): Promise<QueryResponse<QueryResultItem[][]>>;
  query(params: QueryParams): Promise<QueryResponse>;
  async query(params: QueryParams): Promise<QueryResponse> {
    this.assertUsable();
    if (typeof params !== 'object' || params === null) throw new ValidationError('query takes { queryVectors, topK?, include? }.', { path: 'query' });
    const topK = params.topK === undefined ? 100 : checkPositiveInt(params.topK, 'topK', MAX_TOP_K);
    const include = checkInclude(params.include, QUERY_INCLUDE, NO_INCLUDE);
    const ef = params.expansionSearch === undefined ? undefined : checkPositiveInt(params.expansionSearch, 'expansionSearch', 65_536);
    const filter = params.filters === undefined ? undefined : compileFilter(params.filters);
    const { data, count, batch } = normalizeQueryVectors(params.queryVectors, this.manifest.dimension, params.dimension, this.getMetric());
    if (!this.engine || this.idOfKey.size === 0) return emptyResponse(batch, count);

    const options: SearchOptions = ef === undefined ? {} : { expansionSearch: ef };
    let candidates = this.idOfKey.size;
    if (filter && !filter.matchesEverything) {
      const allowed = this.filterIndex().match(filter);
      if (allowed.size === 0) return emptyResponse(batch, count);
      candidates = allowed.size;
      options.allowedKeys = this.allowedKeysOf(allowed);
      options.exact = allowed.size <= EXACT_FILTER_MAX_KEYS || allowed.size <= this.idOfKey.size * EXACT_FILTER_MAX_SHARE;
    }
    const k = Math.min(topK, candidates);
    const found = await this.engine.search(data, k, options);
    this.assertUsable(); // closed or deleted while the search ran
    const rows: QueryResultItem[][] = [];
    // Metadata alone is served from memory (the filter index holds it decrypted): no record read.
    // Decided once per call, not per hit: a single query at small ef costs ~25 µs
    // in the engine, so this loop's per-hit work shows in QPS.
    const withDistance = include.has('distance');
    const fromRecords = include.has('vector') || include.has('contents');
    const metadataFromMemory = include.has('metadata') && !fromRecords;
    const wanted = fromRecords ? new Set<string>() : null;
    const { keys, distances, counts } = found;
    for (let q = 0; q < count; q++) {
      const row: QueryResultItem[] = [];
      const base = q * found.k;
      for (let j = 0; j < counts[q]!; j++) {
        const key = Number(keys[base + j]);
        const id = this.idOfKey.get(key);
        if (id === undefined) continue; // deleted while the search ran
        const item: QueryResultItem = { id };
        if (withDistance) item.distance = this.toDistance(distances[base + j]!);
        if (metadataFromMemory) {
          // Authenticated when the index was loaded or written; a copy, so callers cannot alter the filter index.
          const metadata = this.filterIndex().get(key);
          if (metadata !== undefined) item.metadata = structuredClone(metadata) as Metadata;
        }
        row.push(item);
        wanted?.add(id);
      }
      rows.push(row);
    }
    if (wanted) {
      const bodies = await this.readRecords([...wanted]);
      for (const row of rows) {
        for (const item of row) {
          const body = bodies.get(item.id);
          if (body) copyFields(item, body, include);
        }
      }
    }
    return { results: batch ? rows : rows[0]! };
  }

  async get(params: GetParams): Promise<GetResultItem[]> {
    this.assertUsable();
    const ids = checkIds((params as GetParams | undefined)?.ids, 'ids', true);
    const include = checkInclude(params.include, GET_INCLUDE, GET_INCLUDE);
    const bodies = await this.readRecords(ids);
    return ids.map((id) => {
      const body = bodies.get(id);
      const item: GetResultItem = { id };
      if (body) copyFields(item, body, include);
      return item;
    });
  }

  /** Every live id, or with `{ filters }` those whose metadata matches. */
  async listIds(params: { filters?: Filter } = {}): Promise<ListIdsResponse> {
    this.assertUsable();
    const filter = params?.filters === undefined ? undefined : compileFilter(params.filters);
    let ids: string[];
    if (!filter || filter.matchesEverything) {
      ids = [...this.live.keys()];
    } else {
      ids = [];
      for (const key of this.filterIndex().match(filter)) {
        const id = this.idOfKey.get(key);
        if (id !== undefined) ids.push(id);
      }
    }
    return { ids, count: ids.length };
  }

  // ---- lifecycle (used by Client) ----

  /** Open and in step with its store: safe to hand out again from loadIndex. */
  isUsable(): boolean {
    return this.state === 'open' && this.broken === null && this.closing === null;
  }

  /** Waits for writes in flight, writes a snapshot if anything changed, then frees memory. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    if (this.state !== 'open') return;
    this.ctx.onRelease(this); // loadIndex from now on opens a fresh handle
    await this.exclusive(async () => {
      if (this.changedSinceSnapshot > 0) {
        await this.writeSnapshot();
        // Flush LevelDB's memtable now: otherwise the next open replays the whole snapshot from the log.
        await this.ctx.store.compactRange(kindRange(this.ctx.indexId, SNAPSHOT));
      }
      await this.release('closed');
    }).catch(() => this.release('closed'));
  }

  /**
   * Rebuilds the graph from the live records only, so removed and overwritten
   * vectors stop holding memory, then snapshots it and asks LevelDB to drop
   * dead values from disk. Queries keep using the old graph until the swap.
   * Also runs by itself once removed vectors outnumber live ones.
   */
  async compact(): Promise<void> {
    this.assertUsable();
    await this.exclusive(() => this.compactNow());
  }

  /** Writes an encrypted snapshot of the graph now (it also happens on close and after many changes). */
  async snapshot(): Promise<void> {
    this.assertUsable();
    await this.exclusive(() => this.writeSnapshot());
  }

  private async release(state: 'closed' | 'deleted'): Promise<void> {
    if (this.state !== 'open') return;
    this.state = state;
    clearTimeout(this.snapshotTimer);
    this.unlisted = null;
    this.liveById.clear();
    this.idOfKey.clear();
    this.metadata.clear();
    this.unindexed = null;
    const engine = this.engine;
    this.engine = null;
    this.ctx.onRelease(this);
    await engine?.close();
  }

  // ---- internals ----

  private assertUsable(): void {
    if (this.state === 'closed') throw new ClosedError(`Index "${this.ctx.name}" is closed. Load it again from an open Client.`);
    if (this.state === 'deleted') throw new ClosedError(`Index "${this.ctx.name}" was deleted.`);
    if (this.broken) throw new IntegrityError(`Index "${this.ctx.name}" is out of step with its store after an earlier failure. Load it again.`, { cause: this.broken });
  }

  /** Runs write-side work one at a time, in call order. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeTail.then(() => {
      this.assertUsable();
      return fn();
    });
    this.writeTail = run.catch(() => undefined);
    return run;
  }

  private nextManifest(): Manifest {
    const m = this.manifest;
    return { ...m, counter: m.counter + 1, digest: new Uint8Array(m.digest), indexConfig: { ...m.indexConfig } };
  }

  /** One atomic batch: the records, a change-log entry and the new manifest; then the head moves forward. */
  private async commit(next: Manifest, ops: BatchOp[], change?: ChangeEntry): Promise<void> {
    if (change) {
      ops.push({ type: 'put', key: indexKey(this.ctx.indexId, CHANGELOG, u64(next.counter)), value: sealChange(this.ctx.keys.records, this.ctx.indexId, next.counter, change) });
      this.changedSinceSnapshot += change.upserted.length + change.deleted.length;
    }
    ops.push({ type: 'put', key: indexKey(this.ctx.indexId, MANIFEST), value: sealManifest(this.ctx.keys.manifest, this.ctx.indexId, next) });
    await this.ctx.store.batch(ops);
    this.manifest = next;
    try {
      await this.ctx.head.update(next.counter);
    } catch (error) {
      // The write is durable; a head left behind only weakens rollback detection until the next commit.
      process.emitWarning(`vecvault: could not update the commit head of index "${this.ctx.name}": ${(error as Error).message}`, { code: 'VECVAULT_HEAD_WRITE' });
    }
  }

  /** Queues a compaction once removed vectors outnumber live ones. */
  private maybeCompactLater(): void {
    if (this.deadSlots >= Math.max(COMPACT_MIN_DEAD, this.live.size)) this.inBackground('compaction', () => this.compactNow());
  }

  /**
   * Runs maintenance after the writes queued so far, at most one of each kind
   * at a time. Failures only warn: the data is safe (the change log covers a
   * missing snapshot; a missed compaction only costs memory).
   */
  private inBackground(kind: 'snapshot' | 'compaction', task: () => Promise<void>): void {
    if (this.background.has(kind)) return;
    this.background.add(kind);
    this.exclusive(task)
      .catch((error: unknown) => {
        if (this.state === 'open') {
          process.emitWarning(`vecvault: background ${kind} of index "${this.ctx.name}" failed: ${(error as Error).message}`, {
            code: kind === 'snapshot' ? 'VECVAULT_SNAPSHOT_FAILED' : 'VECVAULT_COMPACT_FAILED',
          });
        }
      })
      .finally(() => this.background.delete(kind));
  }

  /** Runs inside `exclusive`: no write can interleave. */
  private async compactNow(): Promise<void> {
    const dimension = this.manifest.dimension;
    if (!this.engine || dimension === null) return;
    const fresh = this.newEngine(dimension);
    try {
      const ids = [...this.live.keys()];
      for (let start = 0; start < ids.length; start += COMPACT_BATCH) {
        const batch = ids.slice(start, start + COMPACT_BATCH);
        const bodies = await this.readRecords(batch);
        const keys = new BigUint64Array(batch.length);
        const vectors = new Float32Array(batch.length * dimension);
        batch.forEach((id, i) => {
          const body = bodies.get(id)!;
          keys[i] = BigInt(body.key);
          vectors.set(vectorOf(body.vector), i * dimension);
        });
        await fresh.add(keys, vectors);
      }
    } catch (error) {
      await fresh.close();
      throw error;
    }
    const old = this.engine;
    this.engine = fresh;
    this.deadSlots = 0;
    await old.close();
    this.changedSinceSnapshot = Math.max(1, this.changedSinceSnapshot);
    await this.writeSnapshot();
    await this.ctx.store.compactRange(indexRange(this.ctx.indexId));
  }

  /** Queues a snapshot once enough has changed since the last one. */
  private maybeSnapshotLater(): void {
    const threshold = Math.max(SNAPSHOT_MIN_CHANGES, this.live.size / 4);
    if (this.changedSinceSnapshot < threshold) return;
    clearTimeout(this.snapshotTimer);
    this.snapshotTimer = undefined;
    if (this.changedSinceSnapshot >= Math.max(SNAPSHOT_MAX_BACKLOG, this.live.size / 2)) {
      this.inBackground('snapshot', () => this.writeSnapshot());
      return;
    }
    this.snapshotTimer = setTimeout(() => {
      this.snapshotTimer = undefined;
      if (this.state === 'open' && this.changedSinceSnapshot > 0) this.inBackground('snapshot', () => this.writeSnapshot());
    }, SNAPSHOT_IDLE_MS);
    this.snapshotTimer.unref(); // never keeps the host process alive
  }

  /**
   * Serializes the graph and the live-record table, seals them in chunks and
   * commits them with the manifest, dropping the previous snapshot and the
   * change log it covers in the same batch. Runs inside `exclusive`.
   */
  private async writeSnapshot(): Promise<void> {
    if (!this.engine) return; // nothing to snapshot before the first vector
    const next = this.nextManifest();
    const ids: string[] = [];
    const keys: number[] = [];
    const seqs: number[] = [];
    const metadata: unknown[] = [];
    const filterIndex = this.filterIndex();
    for (const [id, entry] of this.live) {
      if (ids.length > 0 && ids.length % (16 * SLICE) === 0) await yieldToEventLoop(); // no write can interleave (exclusive)
      ids.push(id);
      keys.push(entry.key);
      seqs.push(entry.seq);
      metadata.push(filterIndex.get(entry.key) ?? null);
    }
    const table: SnapshotTable = { counter: next.counter, count: this.live.size, digest: next.digest, ids, keys, seqs, metadata };
    const generation = (next.snapshot?.generation ?? 0) + 1;
    const write = (section: 'graph' | 'table', bytes: Uint8Array) => writeSection(this.ctx.store, this.ctx.keys.graph, this.ctx.indexId, generation, section, bytes);
    await clearGeneration(this.ctx.store, this.ctx.indexId, generation);
    const graphChunks = await write('graph', await this.engine!.serialize());
    const tableChunks = await write('table', await encodeTable(table));
    const ops = next.snapshot ? dropSnapshotOps(this.ctx.indexId, next.snapshot) : [];
    const upTo = { gte: indexKey(this.ctx.indexId, CHANGELOG), lt: indexKey(this.ctx.indexId, CHANGELOG, u64(next.counter + 1)) };
    for await (const key of this.ctx.store.keys(upTo)) ops.push({ type: 'del', key });
    next.snapshot = { generation, graphChunks, tableChunks, counter: next.counter };
    await this.commit(next, ops);
    this.changedSinceSnapshot = 0;
  }

  /**
   * Loads the newest snapshot, then replays the change log written after it.
   * The snapshot's digest, updated by the replay, must equal the manifest's.
   */
  private async restoreSnapshot(): Promise<void> {
    const m = this.manifest;
    const ref = m.snapshot!;
    if (!Number.isInteger(ref.graphChunks) || !Number.isInteger(ref.tableChunks)) throw new IntegrityError(`The snapshot of index "${this.ctx.name}" has an unknown format.`);
    const read = (section: 'graph' | 'table', chunks: number) => readSection(this.ctx.store, this.ctx.keys.graph, this.ctx.indexId, ref.generation, section, chunks);
    const tableRead = read('table', ref.tableChunks);
    tableRead.catch(() => undefined); // awaited below, after the graph
    // The engine loads the graph on the pool while this thread decodes the table.
    const loading = this.ctx.engines.deserialize(await read('graph', ref.graphChunks), this.engineOptions(m.dimension!));
    let digest: Uint8Array;
    try {
      const table = decodeTable(Buffer.concat(await tableRead));
      if (table.counter !== ref.counter || table.ids.length !== table.count) throw new IntegrityError(`The snapshot of index "${this.ctx.name}" does not match its manifest.`);
      const { ids, keys, seqs } = table;
      this.idOfKey = KeyTable.from(keys, ids);
      this.unlisted = ids.length > 0 ? { ids, keys, seqs, next: 0 } : null;
      this.unindexed = table.metadataFrames.length > 0 ? { keys, frames: table.metadataFrames, next: 0, offset: 0 } : null;
      digest = table.digest;
      this.engine = await loading;
    } catch (error) {
      loading.then((engine) => engine.close(), () => undefined);
      throw error;
    }
    const removedKeys: number[] = [];
    const added = new Map<string, { key: number; vector: Float32Array }>();
    // Commits after the snapshot, up to the manifest's: none after a clean close (then no iterator is opened).
    const since = { gte: indexKey(this.ctx.indexId, CHANGELOG, u64(ref.counter + 1)), lt: indexKey(this.ctx.indexId, CHANGELOG, u64(m.counter + 1)) };
    const changes = m.counter > ref.counter ? this.ctx.store.entries(since) : [];
    for await (const [key, value] of changes) {
      const seq = Number(Buffer.from(keySuffix(key)).readBigUInt64BE(0));
      const change = openChange(this.ctx.keys.records, this.ctx.indexId, seq, value);
      const forget = (id: string, hkey?: Uint8Array) => {
        const old = this.live.get(id);
        if (!old) return;
        xorInto(digest, this.liveTag(hkey ?? this.hashId(id), old.seq));
        this.live.delete(id);
        this.idOfKey.delete(old.key);
        this.filterIndex().delete(old.key);
        if (!added.delete(id)) removedKeys.push(old.key);
      };
      for (const id of change.deleted) forget(id);
      const hkeys = hashIds(this.ctx.keys.ids, change.upserted);
      const values = await this.ctx.store.getMany(hkeys.map((hkey) => indexKey(this.ctx.indexId, RECORD, hkey)));
      const present = change.upserted.flatMap((_, i) => (values[i] === undefined ? [] : [i])); // absent: deleted by a later commit
      const records = openRecords(this.ctx.keys.records, this.ctx.indexId, present.map((i) => hkeys[i]!), present.map((i) => values[i]!));
      present.forEach((i, j) => {
        const id = change.upserted[i]!;
        const hkey = hkeys[i]!;
        const record = records[j]!;
        if (record.seq !== seq) return; // overwritten by a later commit
        if (record.body.vector.byteLength !== 4 * m.dimension!) throw new IntegrityError(`A record of index "${this.ctx.name}" does not match its dimension.`);
        forget(id, hkey);
        xorInto(digest, this.liveTag(hkey, seq));
        this.live.set(id, { key: record.body.key, seq });
        this.idOfKey.set(record.body.key, id);
        this.filterIndex().set(record.body.key, record.body.metadata);
        added.set(id, { key: record.body.key, vector: vectorOf(record.body.vector) });
        this.changedSinceSnapshot++;
      });
      this.changedSinceSnapshot += change.deleted.length;
    }
    if (this.idOfKey.size !== m.count || !constantTimeEqual(digest, m.digest)) {
      throw new IntegrityError(`The snapshot and change log of index "${this.ctx.name}" do not add up to its manifest.`);
    }
    if (removedKeys.length > 0) await this.engine.remove(BigUint64Array.from(removedKeys, BigInt));
    if (added.size > 0) {
      const dim = m.dimension!;
      const keys = new BigUint64Array(added.size);
      const vectors = new Float32Array(added.size * dim);
      [...added.values()].forEach((a, i) => {
        keys[i] = BigInt(a.key);
        vectors.set(a.vector, i * dim);
      });
      await this.engine.add(keys, vectors);
    }
  }

  /**
   * Commits, then brings memory in line. If memory cannot follow, further
   * calls are refused rather than serving a gap.
   */
  private async commitThenApply(next: Manifest, ops: BatchOp[], change: ChangeEntry, apply: () => Promise<void> | void): Promise<void> {
    this.writeEpoch++;
    this.writing = true;
    try {
      await this.commit(next, ops, change);
      await apply();
    } catch (cause) {
      if (this.manifest !== next) throw cause; // the commit itself failed: nothing changed
      this.broken = cause as Error;
      this.ctx.onRelease(this); // loadIndex will open a fresh handle
      throw new NativeError(`Index "${this.ctx.name}" saved the write but could not update its in-memory graph. Load the index again.`, { cause });
    } finally {
      this.writing = false;
      this.writeEpoch++;
    }
  }

  /** After the commit: the new vectors (already in the graph) become visible and the replaced ones go. */
  private async publishUpsert(items: NormalizedItem[], keys: BigUint64Array, replaced: number[], seq: number): Promise<void> {
    const filterIndex = this.filterIndex();
    // In slices, so a large upsert does not stall the event loop; each id
    // switches from its old key to its new one in one step.
    for (let i = 0; i < items.length; i++) {
      if (i > 0 && i % (4 * SLICE) === 0) await yieldToEventLoop();
      const item = items[i]!;
      const old = this.live.get(item.id);
      if (old) {
        this.idOfKey.delete(old.key);
        filterIndex.delete(old.key);
      }
      const key = Number(keys[i]);
      this.live.set(item.id, { key, seq });
      this.idOfKey.set(key, item.id);
      filterIndex.set(key, item.metadata);
    }
    if (replaced.length > 0) {
      await this.engine!.remove(BigUint64Array.from(replaced, BigInt));
      this.deadSlots += replaced.length;
    }
  }

  /** Undoes an uncommitted upsert's graph insert; if even that fails, the handle refuses further calls. */
  private async withdraw(engine: AnnEngine, created: boolean, adding: Promise<void>, keys: BigUint64Array): Promise<void> {
    try {
      await adding.then(
        () => engine.remove(keys),
        () => engine.remove(keys), // a partial insert leaves a prefix: remove ignores absent keys
      );
      if (created && this.engine === engine) {
        this.engine = null; // the dimension is not fixed until a commit fixes it
        await engine.close();
      }
    } catch (cause) {
      this.broken = cause as Error;
      this.ctx.onRelease(this);
    }
  }

  private newEngine(dimension: number): AnnEngine {
    return this.ctx.engines.create(this.engineOptions(dimension));
  }

  private engineOptions(dimension: number): EngineOptions {
    const m = this.manifest;
    return { dimension, metric: ENGINE_METRIC[m.metric as Metric], precision: ENGINE_PRECISION[m.precision as StoragePrecision], ...m.indexConfig };
  }

  /** Reads every record, authenticates it, checks the set against the manifest digest, and fills the graph. */
  private async rebuild(): Promise<void> {
    const m = this.manifest;
    const digest = new Uint8Array(32);
    const keys: bigint[] = [];
    const vectors: Float32Array[] = [];
    let hkeys: Uint8Array[] = [];
    let values: Uint8Array[] = [];
    const openBatch = () => {
      const records = openRecords(this.ctx.keys.records, this.ctx.indexId, hkeys, values);
      const expected = hashIds(this.ctx.keys.ids, records.map((r) => r.body.id));
      records.forEach(({ seq, body }, i) => {
        if (seq > m.counter || body.vector.byteLength !== 4 * (m.dimension ?? 0) || !constantTimeEqual(expected[i]!, hkeys[i]!)) {
          throw new IntegrityError(`A record of index "${this.ctx.name}" does not belong to its manifest. Restore the store from a backup.`);
        }
        this.live.set(body.id, { key: body.key, seq });
        this.idOfKey.set(body.key, body.id);
        this.filterIndex().set(body.key, body.metadata);
        keys.push(BigInt(body.key));
        vectors.push(vectorOf(body.vector));
      });
      xorInto(digest, liveTags(this.ctx.keys.manifest, hkeys, records.map((r) => r.seq)));
      hkeys = [];
      values = [];
    };
    for await (const [key, value] of this.ctx.store.entries(kindRange(this.ctx.indexId, RECORD))) {
      hkeys.push(keySuffix(key));
      values.push(value);
      if (hkeys.length === SLICE) openBatch();
    }
    openBatch();
    if (this.live.size !== m.count || !constantTimeEqual(digest, m.digest)) {
      throw new IntegrityError(`Records of index "${this.ctx.name}" are missing, extra or from an older commit. Restore the store from a backup.`);
    }
    if (m.dimension === null) return;
    this.engine = this.newEngine(m.dimension);
    const flat = new Float32Array(vectors.length * m.dimension);
    vectors.forEach((v, i) => flat.set(v, i * m.dimension!));
    await this.engine.add(BigUint64Array.from(keys), flat);
  }

  /**
   * Decrypts the records of `ids` that are live. Each must exist, authenticate,
   * and carry the commit sequence memory expects: a record that vanished or was
   * replayed from an older commit is an IntegrityError, never stale data.
   */
  private async readRecords(ids: string[], retried = false): Promise<Map<string, RecordBody>> {
    const out = new Map<string, RecordBody>();
    const hkeys = hashIds(this.ctx.keys.ids, ids);
    const epoch = this.writeEpoch;
    const values = await this.ctx.store.getMany(hkeys.map((h) => indexKey(this.ctx.indexId, RECORD, h)));
    this.assertUsable(); // closed or deleted while the read ran: memory is gone, say so rather than blame the disk
    // Disk and memory may disagree only while a write is between its commit and its memory update.
    const racing = this.writing || this.writeEpoch !== epoch;
    let raced = false;
    const present = ids.flatMap((_, i) => (values[i] === undefined ? [] : [i]));
    const opened = openRecords(this.ctx.keys.records, this.ctx.indexId, present.map((i) => hkeys[i]!), present.map((i) => values[i]!));
    const records = new Map(present.map((i, j) => [i, opened[j]!]));
    ids.forEach((id, i) => {
      const entry = this.live.get(id);
      const value = values[i];
      if (value === undefined && entry === undefined) return;
      const body = records.get(i);
      if (entry !== undefined && body !== undefined && body.seq === entry.seq && body.body.id === id && body.body.key === entry.key) {
        out.set(id, body.body);
        return;
      }
      if (racing) {
        raced = true;
        return;
      }
      throw new IntegrityError(
        body === undefined || entry === undefined
          ? `A record of index "${this.ctx.name}" was removed or restored behind vecvault's back. Restore the store from a backup.`
          : `A record of index "${this.ctx.name}" was replaced by an older copy. Restore the store from a backup.`,
      );
    });
    if (raced && !retried) {
      await this.writeTail; // let the concurrent write finish, then read again
      return this.readRecords(ids, true);
    }
    return out;
  }

  /** The same filter's match set comes back cached until the next write: so does its BigUint64Array. */
  private readonly allowedCache = new WeakMap<ReadonlySet<number>, BigUint64Array>();

  private allowedKeysOf(allowed: ReadonlySet<number>): BigUint64Array {
    let keys = this.allowedCache.get(allowed);
    if (!keys) {
      keys = BigUint64Array.from(allowed, BigInt).sort(); // sorted once here, not by the engine per query
      this.allowedCache.set(allowed, keys);
    }
    return keys;
  }

  private filterIndex(): MetadataIndex {
    while (this.unindexed) this.indexNextMetadataFrame();
    return this.metadata;
  }

  /** Unpacks one frame of snapshot metadata into the filter index. */
  private indexNextMetadataFrame(): void {
    const pending = this.unindexed!;
    const frame = unpackMetadataFrame(pending.frames[pending.next++]!);
    for (let i = 0; i < frame.length; i++) this.metadata.set(pending.keys[pending.offset + i]!, frame[i] ?? undefined);
    pending.offset += frame.length;
    if (pending.next === pending.frames.length) this.unindexed = null;
  }

  private get live(): Map<string, LiveEntry> {
    while (this.unlisted) this.listNextSlice();
    return this.liveById;
  }

  /** Moves one slice of restored records into `liveById`. */
  private listNextSlice(): void {
    const pending = this.unlisted!;
    const end = Math.min(pending.ids.length, pending.next + 16 * SLICE);
    for (let i = pending.next; i < end; i++) this.liveById.set(pending.ids[i]!, { key: pending.keys[i]!, seq: pending.seqs[i]! });
    pending.next = end;
    if (end === pending.ids.length) this.unlisted = null;
  }

  /** After an open from a snapshot: lists the records and indexes the metadata a slice at a time, between the host's own work. */
  private async finishRestoreInBackground(): Promise<void> {
    while ((this.unlisted || this.unindexed) && this.state === 'open') {
      await yieldToEventLoop();
      if (this.state !== 'open') return;
      if (this.unlisted) this.listNextSlice();
      else if (this.unindexed) this.indexNextMetadataFrame();
    }
  }

  private hashId(id: string): Buffer {
    return hashIds(this.ctx.keys.ids, [id])[0]!;
  }

  private liveTag(hkey: Uint8Array, seq: number): Buffer {
    return liveTags(this.ctx.keys.manifest, [hkey], seq);
  }

  private toDistance(raw: number): number {
    return this.manifest.metric === 'euclidean' ? Math.sqrt(Math.max(0, raw)) : raw;
  }
}

/** What a query answers when nothing can match: no hits, one empty row per query of a batch. */
function emptyResponse(batch: boolean, count: number): QueryResponse {
  return { results: batch ? Array.from({ length: count }, () => []) : [] };
}

/** Engine keys are never reused: the n-th key ever assigned in an index. */
const MAX_KEYS = 2 ** 33;
const KEY_SPREAD = 0xb5297; // odd, so n ↦ n·KEY_SPREAD mod 2^48 is a bijection

/**
 * Spreads sequential counters over 48 bits. usearch's key table uses linear
 * probing on the raw key; consecutive keys fill one contiguous run, and every
 * lookup (remove, exact filtered search) then scans it: 200× slower measured.
 * n < 2^33 keeps n·KEY_SPREAD below 2^53, so the product is exact in a double.
 */
function engineKey(counter: number): number {
  if (counter >= MAX_KEYS) throw new NativeError('This index has assigned 2^33 keys over its life; copy its records into a new index.');
  return (counter * KEY_SPREAD) % 2 ** 48;
}

/** XORs one or more consecutive tags (each `target.length` bytes) into `target`. */
function xorInto(target: Uint8Array, tags: Uint8Array): void {
  const width = target.length;
  for (let i = 0; i < tags.length; i++) target[i % width]! ^= tags[i]!;
}

/** Row `row` of a flat float32 array as a view of its raw little-endian bytes (all supported platforms are little-endian); packed at once, never kept. */
function rowBytes(vectors: Float32Array, row: number, dimension: number): Uint8Array {
  return new Uint8Array(vectors.buffer, vectors.byteOffset + row * dimension * 4, dimension * 4);
}

function vectorOf(bytes: Uint8Array): Float32Array {
  const copy = new Uint8Array(bytes);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

function copyFields(item: QueryResultItem | GetResultItem, body: RecordBody, include: ReadonlySet<string>): void {
  if (include.has('vector')) item.vector = Array.from(vectorOf(body.vector));
  if (include.has('metadata') && body.metadata !== undefined) item.metadata = body.metadata as Metadata;
  if (include.has('contents') && body.contents !== undefined) {
    item.contents = typeof body.contents === 'string' ? body.contents : new Uint8Array(body.contents);
  }
}
