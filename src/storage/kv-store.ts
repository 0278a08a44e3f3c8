/**
 * The key-value store under vecvault: classic-level (LevelDB) with binary
 * keys and values. It only ever sees ciphertext, HMACs and index names.
 * Every logical operation is one atomic, fsync'd batch.
 */
import { ClassicLevel } from 'classic-level';
import { mkdirSync, realpathSync } from 'node:fs';
import { ClosedError, IntegrityError, StorageError, StoreLockedError } from '../errors.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import { releaseMappedPages, releaseMemory } from '../util/memory.js';
import { ioError, levelFailure } from './io-errors.js';
import { inSlices, ReusableBatch } from './level-batch.js';

export type Bytes = Uint8Array;
/**
 * A batch of at most SLICE operations and this many bytes is handed over in
 * one call (a few ms of copying). classic-level frees that copy as soon as
 * it is written; a chained batch keeps its copy until the GC finalizes the
 * JS object (classic-level's `_close` is a no-op), and V8 does not see that
 * memory: a snapshot's 4 MiB chunk groups, written as chained batches, held
 * ~80 MiB at close at 100k × 96 (docs/performance.md, "Memory").
 */
const ONE_CALL_BYTES = 8 << 20;
/**
 * LevelDB reads its table files through mmap (util/memory.ts), and its
 * compactions (in the background after large writes, and `compactRange`)
 * read whole tables back, each page staying in this process's RSS while the
 * table is open. Measured at 200k × 96 built 10,000 per call, then closed:
 * ~33 MiB of such pages at the build's peak and ~106 MiB during close's
 * compaction of the snapshot range (all of it read back), which VmHWM
 * counts. So they are dropped after every write of at least
 * RELEASE_AFTER_BYTES, and every RELEASE_EVERY_MS while `compactRange` runs,
 * each time only if 8 MiB or more of file pages came in since the last drop
 * (util/memory.ts, RELEASE_MIN_GROWTH: at 1M a build's file pages stayed
 * flat while the drops cost 10 % of its time and sat beside its worst stalls).
 */
const RELEASE_AFTER_BYTES = 1 << 20;
const RELEASE_EVERY_MS = 20;
/**
 * How long after such a write the compactions it set off (LevelDB's
 * background thread: they outlive the write) have their pages dropped, every
 * RELEASE_WINDOW_EVERY_MS (one release reads /proc/self/maps: ~0.3–0.7 ms).
 * Measured at 200k × 96 built 10,000 per call: ~20 MiB of mapped table pages
 * at the build's peak with one release per write.
 */
const RELEASE_WINDOW_MS = 2000;
const RELEASE_WINDOW_EVERY_MS = 50;
export type BatchOp = { type: 'put'; key: Bytes; value: Bytes } | { type: 'del'; key: Bytes };

export interface RangeOptions {
  gte: Bytes;
  lt: Bytes;
}

/**
 * LevelDB's own memory, bounded and stated (docs/performance.md, "Memory"):
 * an 8 MiB block cache (snapshot chunks and bulk scans bypass it,
 * `fillCache: false`), a 4 MiB write buffer (memtable; at most two exist, one
 * being flushed), and at most 500 open table files, whose index blocks and
 * handles are LevelDB's table cache. These equal classic-level's defaults
 * except the file count (1,000), named here so a change is deliberate.
 */
export const LEVELDB_MEMORY = { cacheSize: 8 << 20, writeBufferSize: 4 << 20, maxOpenFiles: 500 } as const;

/**
 * A commit's compare-and-set: the batch applies only if the manifest under
 * `key` is still at commit `counter - 1` (or, for `counter` 0, absent). One
 * process holds a LevelDB store, so KvStore has nothing to compare; a shared
 * backend (PostgreSQL) refuses a stale batch with ConflictError.
 */
export interface CommitGuard {
  key: Bytes;
  counter: number;
}

/**
 * How KvStore.getMany reads on the calling thread: in turns of at most `turnMs`, with the event loop free in between
 * (a read from the page cache takes ~7 µs here, so a turn holds ~250 of them); a read slower than `slowMs` (a table
 * file opened, or the disk) ends its turn, and after `slowForPool` of them in one call the rest go to the pool.
 */
const SYNC_READS = { turnMs: 2, slowMs: 1, slowForPool: 3 } as const;

/** What the store and the per-index store need of a key-value backend (KvStore; PgKv in storage/postgres/). */
export interface KvBackend {
  get(key: Bytes): Promise<Bytes | undefined>;
  getMany(keys: Bytes[], options?: { fillCache?: boolean }): Promise<(Bytes | undefined)[]>;
  /**
   * Local stores: one value read now, on the calling thread, bypassing LevelDB's block cache; it owns its
   * ArrayBuffer. Absent where reads are remote. See KvStore.readNow.
   */
  readNow?(key: Bytes): Bytes | undefined;
  batch(ops: BatchOp[], options?: { sync?: boolean; guard?: CommitGuard }): Promise<void>;
  entries(range: RangeOptions): AsyncGenerator<[Bytes, Bytes]>;
  keys(range: RangeOptions): AsyncGenerator<Bytes>;
  firstKey(range: RangeOptions): Promise<Bytes | undefined>;
  compactRange(range: RangeOptions): Promise<void>;
  fence(range: RangeOptions): void;
  shred(ranges: RangeOptions[], brackets: Bytes[], probe: Bytes, rewrites?: BatchOp[]): Promise<void>;
  /**
   * Returns freed memory to the OS after large transient work (LevelDB's mapped tables, glibc's heap); a no-op where it means
   * nothing. Both run on the libuv pool, and the promise settles once they ran (await it to have the memory back before
   * the next step, without holding the event loop; or leave it). `gated`: as between a bulk load's calls (util/memory.ts).
   */
  releaseMemory(options?: { gated?: boolean }): Promise<void>;
  /** Drops LevelDB's mapped table pages from this process's resident set (they stay in the page cache). */
  releaseMappedPages(): void;
  /**
   * An atomic, durable batch whose operations are handed over as they are produced (KvStore: copied into LevelDB's
   * batch at once, so the caller need not keep them); undefined where the backend has none free (then use `batch`).
   */
  stage?(): StagedBatch | undefined;
  close(): Promise<void>;
}

/** See KvBackend.stage. Every staged batch must end in `write` or `discard`. */
export interface StagedBatch {
  /** Copies `ops` into the batch now (synchronously: a slice at a time). */
  add(ops: BatchOp[]): void;
  /** Adds `last` and writes the whole batch, atomically and durably, with `batch`'s failure handling; it is finished either way. */
  write(last: BatchOp[]): Promise<void>;
  /** Drops the batch unwritten (idempotent; a no-op after `write`). */
  discard(): void;
}

export class KvStore implements KvBackend {
  /**
   * The first failed write. After it LevelDB's log may end in a torn or
   * doubtful record (a failed fsync even fails every later write inside
   * LevelDB), so nothing more is written until the store is opened again.
   */
  private failed: StorageError | null = null;
  /** Key ranges of deleted indexes: a put into one (a handle that outlived its index) is refused. */
  private readonly fences: RangeOptions[] = [];
  /** Dropping mapped table pages every RELEASE_WINDOW_EVERY_MS until `releasingUntil` (after a large write). */
  private releasing: NodeJS.Timeout | undefined;
  private releasingUntil = 0;
  /** One native write batch for the large writes, freed without waiting for the GC (level-batch.ts); null: chained batches. */
  private readonly reusable: ReusableBatch | null;
  /** How getMany reads on the calling thread (SYNC_READS; tests set Infinity as the control). */
  syncReads: { turnMs: number; slowMs: number; slowForPool: number } = { ...SYNC_READS };

  private constructor(
    private readonly db: ClassicLevel<Bytes, Bytes>,
    /** The directory's real path, as /proc/self/maps names LevelDB's mapped files. */
    private readonly realLocation: string,
  ) {
    this.reusable = ReusableBatch.of(db);
  }

  /** Whether large writes use the reused native batch (tests: classic-level's binding still offers it). */
  get reusesWriteBatch(): boolean {
    return this.reusable !== null;
  }

  /**
   * Returns memory left over from large transient work (a snapshot written,
   * a snapshot read at open, a compaction) to the OS: the heap pages glibc
   * kept (malloc_trim) and this process's resident pages of LevelDB's mapped
   * table files (they stay in the page cache; see util/memory.ts).
   */
  releaseMemory({ gated = false }: { gated?: boolean } = {}): Promise<void> {
    return releaseMemory(this.realLocation, { background: true, gated });
  }

  /** Only the mapped table pages (cheap: one read of /proc/self/maps), for use between the groups of a long stream. */
  releaseMappedPages(): void {
    releaseMappedPages(this.realLocation);
  }

  /**
   * Opens (creating, mode 0700) the LevelDB directory: a held LOCK becomes
   * StoreLockedError, a file-system failure StorageError, damage IntegrityError.
   */
  static async open(location: string): Promise<KvStore> {
    try {
      mkdirSync(location, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw ioError(`create the store directory ${location}`, cause);
    }
    // No compression: values are ciphertext, which does not compress.
    const db = new ClassicLevel<Bytes, Bytes>(location, { keyEncoding: 'view', valueEncoding: 'view' });
    try {
      await db.open({ compression: false, ...LEVELDB_MEMORY });
    } catch (error) {
      const failure = levelFailure(error, `open the store at ${location}`);
      if (failure === 'locked') {
        throw new StoreLockedError(
          `The store at ${location} is open in another process (or in this one under another spelling of its path, e.g. through a symlink). Close it there first; one process at a time may hold a store.`,
          { cause: error },
        );
      }
      if (failure) throw failure;
      throw new IntegrityError(`Could not open the store at ${location}: ${(error as Error).message}`, { cause: error });
    }
    let real = location;
    try {
      real = realpathSync(location);
    } catch {
      // only used to find LevelDB's mappings; the open itself succeeded
    }
    return new KvStore(db, real);
  }

  /**
   * LevelDB's repair of a damaged database directory (keeps every table and
   * log record it can read). Only `recoverIndex` calls it, on a copy.
   */
  static async repair(location: string): Promise<void> {
    try {
      await ClassicLevel.repair(location);
    } catch (error) {
      throw (
        levelFailure(error, `repair the copy at ${location}`) ??
        new IntegrityError(`Could not repair the copy at ${location}: ${(error as Error).message}`, { cause: error })
      );
    }
  }

  /** classic-level's error as vecvault reports it (StorageError / IntegrityError), or as it came. */
  private mapped(error: unknown, what: string): unknown {
    const failure = levelFailure(error, what);
    return failure === undefined || failure === 'locked' ? error : failure;
  }

  async get(key: Bytes): Promise<Bytes | undefined> {
    try {
      return await this.db.get(key);
    } catch (error) {
      throw this.mapped(error, 'read from the store');
    }
  }

  /**
   * `fillCache: false` for bulk reads (snapshot chunks) that would only evict hot blocks: on the pool.
   * Otherwise the keys are read on the calling thread (LevelDB's getSync), in short turns with the event loop free
   * in between (SYNC_READS): a pool round trip costs more than the reads themselves (measured: `get` of 10 ids went
   * from ~10k to ~20–30k records/s on a loaded 2-core machine; a warm 200k store's record keys, 1,000 at random:
   * ~7 µs a key here against 10–24 µs through getMany in calls of 100, which copies each value twice). A slow read
   * (a table file opened, the disk) ends its turn, and a call that keeps meeting them (a cold store) reads the rest
   * on the pool, so the event loop waits for at most a turn's worth of reads. Reads in different turns may straddle
   * a commit; callers compare what they read with memory and read again after a racing write (record-reader.ts),
   * as with the pool's reads.
   */
  async getMany(keys: Bytes[], options: { fillCache?: boolean } = {}): Promise<(Bytes | undefined)[]> {
    try {
      if (options.fillCache === false) return await this.db.getMany(keys, options);
      const { turnMs, slowMs, slowForPool } = this.syncReads;
      const values: (Bytes | undefined)[] = new Array<Bytes | undefined>(keys.length);
      let turn = performance.now();
      let slow = 0;
      for (let i = 0; i < keys.length; i++) {
        let start = performance.now();
        if (start - turn >= turnMs) {
          await yieldToEventLoop();
          turn = start = performance.now();
        }
        values[i] = this.db.getSync(keys[i]!);
        if (performance.now() - start > slowMs) {
          if (++slow >= slowForPool && i + 1 < keys.length) {
            const rest = await this.db.getMany(keys.slice(i + 1), options);
            rest.forEach((value, j) => (values[i + 1 + j] = value));
            break;
          }
          turn = -Infinity; // this turn is over
        }
      }
      return values;
    } catch (error) {
      throw this.mapped(error, 'read from the store');
    }
  }

  /**
   * A large value (a snapshot chunk) read on the calling thread: LevelDB's table is mapped, so the value is copied
   * once, from the page cache into a Buffer of its own. getMany copies it twice (into a string on the pool, then
   * into a Buffer on the main thread), each into fresh pages whose faults cost more than the copying: ~40 ms of
   * CPU per 100 MiB read (bench/open.ts at 200k). ~0.3–0.5 ms per MiB from the page cache; the caller reads one
   * value per event-loop turn.
   */
  readNow(key: Bytes): Bytes | undefined {
    try {
      return this.db.getSync(key, { fillCache: false });
    } catch (error) {
      throw this.mapped(error, 'read from the store');
    }
  }

  /**
   * Atomic and durable: acknowledged writes survive a crash or power loss.
   * `sync: false` only for writes that may be lost without harm.
   * Large batches are copied into LevelDB's batch in slices (by count and by
   * bytes; into the store's reused native batch, level-batch.ts, or else a
   * chained batch), because LevelDB copies every operation in one synchronous step:
   * ~150 ms for 25k records, ~190 ms for a 60 MiB snapshot, either of which
   * would stall the host's event loop.
   * A file-system failure rejects with StorageError and stops all further
   * writes through this handle (see `failed`); the batch is then either
   * wholly in the store after the next open or not at all.
   */
  async batch(ops: BatchOp[], { sync = true }: { sync?: boolean; guard?: CommitGuard } = {}): Promise<void> {
    if (ops.length === 0) return;
    this.checkWritable(ops);
    try {
      await this.write(ops, sync);
    } catch (error) {
      throw this.writeFailure(error);
    }
  }

  /** A batch in the store's reused native batch (level-batch.ts), or undefined while another write holds it. */
  stage(): StagedBatch | undefined {
    if (!this.reusable || this.reusable.inUse) return undefined;
    const staged = this.reusable.begin();
    let bytes = 0;
    return {
      add: (ops) => {
        try {
          this.checkWritable(ops);
          bytes = staged.add(ops);
        } catch (error) {
          staged.end();
          throw error;
        }
      },
      write: async (last) => {
        try {
          this.checkWritable(last);
          bytes = staged.add(last);
          await staged.write(true);
        } catch (error) {
          throw this.writeFailure(error);
        } finally {
          staged.end();
        }
        if (bytes >= RELEASE_AFTER_BYTES) this.releaseWhileCompacting();
      },
      discard: () => staged.end(),
    };
  }

  /** A failed write as reported; a file-system failure also stops every later write (see `failed`). */
  private writeFailure(error: unknown): unknown {
    const failure = this.mapped(error, 'write to the store');
    if (failure instanceof StorageError) this.failed ??= failure;
    return failure;
  }

  private checkWritable(ops: BatchOp[]): void {
    if (this.failed) {
      throw new StorageError(
        `An earlier write to the store failed (${(this.failed.cause as { code?: string } | undefined)?.code ?? 'EIO'}): close the Client and open the store again before writing more. Acknowledged writes are safe.`,
        { cause: this.failed.cause },
      );
    }
    if (this.fences.length === 0) return;
    for (const op of ops) {
      if (op.type === 'put' && this.fences.some((r) => Buffer.compare(op.key, r.gte) >= 0 && Buffer.compare(op.key, r.lt) < 0)) {
        throw new ClosedError('This index was deleted. Create it again, or load another index.');
      }
    }
  }

  private async write(ops: BatchOp[], sync: boolean): Promise<void> {
    let bytes = 0;
    for (const op of ops) bytes += op.key.byteLength + (op.type === 'put' ? op.value.byteLength : 0);
    if (ops.length <= SLICE && bytes <= ONE_CALL_BYTES) {
      await this.db.batch(ops, { sync });
    } else {
      await this.writeChained(ops, sync);
    }
    if (bytes >= RELEASE_AFTER_BYTES) this.releaseWhileCompacting();
  }

  /** Drops the mapped pages the compactions a large write set off read, now and for RELEASE_WINDOW_MS. */
  private releaseWhileCompacting(): void {
    this.releaseMappedPages();
    this.releasingUntil = performance.now() + RELEASE_WINDOW_MS;
    if (this.releasing) return;
    this.releasing = setInterval(() => {
      this.releaseMappedPages();
      if (performance.now() >= this.releasingUntil) this.stopReleasing();
    }, RELEASE_WINDOW_EVERY_MS);
    this.releasing.unref(); // never keeps the host process alive
  }

  private stopReleasing(): void {
    clearInterval(this.releasing);
    this.releasing = undefined;
  }

  private async writeChained(ops: BatchOp[], sync: boolean): Promise<void> {
    if (this.reusable && !this.reusable.inUse) return this.reusable.write(ops, sync);
    const batch = this.db.batch();
    try {
      await inSlices(ops, (slice) => {
        for (const op of slice) {
          if (op.type === 'put') batch.put(op.key, op.value);
          else batch.del(op.key);
        }
      });
    } catch (error) {
      await batch.close();
      throw error;
    }
    await batch.write({ sync });
  }

  async *entries(range: RangeOptions): AsyncGenerator<[Bytes, Bytes]> {
    try {
      for await (const entry of this.db.iterator({ ...range })) yield entry;
    } catch (error) {
      throw this.mapped(error, 'read from the store');
    }
  }

  async *keys(range: RangeOptions): AsyncGenerator<Bytes> {
    try {
      for await (const key of this.db.keys({ ...range })) yield key;
    } catch (error) {
      throw this.mapped(error, 'read from the store');
    }
  }

  /** The first key in `range`, or undefined when it is empty. */
  async firstKey(range: RangeOptions): Promise<Bytes | undefined> {
    try {
      return (await this.db.keys({ ...range, limit: 1 }).all())[0];
    } catch (error) {
      throw this.mapped(error, 'read from the store');
    }
  }

  /**
   * Asks LevelDB to compact a range now, so deleted and overwritten values
   * leave the disk (see `shred` for when that is not enough). LevelDB reports
   * no error from a compaction: a failed one fails the next write instead.
   */
  async compactRange(range: RangeOptions): Promise<void> {
    // It reads every table in the range back: drop those mapped pages as it goes (RELEASE_EVERY_MS).
    const releasing = setInterval(() => this.releaseMappedPages(), RELEASE_EVERY_MS);
    try {
      await this.db.compactRange(range.gte, range.lt);
    } catch (error) {
      throw this.mapped(error, 'compact the store');
    } finally {
      clearInterval(releasing);
    }
  }

  /** Refuses, from now on, any put into `range` (the keys of a deleted index). */
  fence(range: RangeOptions): void {
    this.fences.push(range);
  }

  /**
   * Removes from LevelDB's files the old values of keys already deleted (by
   * a synced batch) in `ranges`; `brackets` are the least and greatest deleted
   * key of each range. One compaction is not enough: it first flushes the
   * memtable, and when the values and their tombstones land in the same new
   * table above every other file of the range (a small or recently written
   * index), LevelDB's CompactRange never rewrites that table, so the values
   * stay in it. Deleting the bracket keys again after that flush puts fresh
   * tombstones spanning the range *above* every table that holds it, and the
   * second compaction then merges each such table down and drops the values.
   * The flushes also retire the .log files that held them. `probe` (a key
   * that holds no value) is deleted last, synced: LevelDB reports a failed
   * compaction only on the next write. `rewrites` are puts of keys that
   * stay (a catalog entry replaced by rotation): written again with their
   * current value, they bracket like a tombstone, and the second compaction
   * drops their overwritten values.
   */
  async shred(ranges: RangeOptions[], brackets: Bytes[], probe: Bytes, rewrites: BatchOp[] = []): Promise<void> {
    for (const range of ranges) await this.compactRange(range);
    await this.batch([...brackets.map((key): BatchOp => ({ type: 'del', key })), ...rewrites], { sync: true });
    for (const range of ranges) await this.compactRange(range);
    await this.batch([{ type: 'del', key: probe }], { sync: true });
  }

  async close(): Promise<void> {
    this.stopReleasing();
    this.reusable?.release();
    try {
      await this.db.close();
    } catch (error) {
      throw this.mapped(error, 'close the store');
    }
  }
}
