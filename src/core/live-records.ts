/**
 * The live records of an open index, in memory only: id → (engine key,
 * commit), engine key → id for search hits (both in one compact LiveTable),
 * and the decrypted metadata for filters. An open from a snapshot takes the
 * snapshot's columns over as the table and indexes its ids and metadata
 * lazily (a background task, or whoever needs them first), so the open does
 * not wait.
 */
import { MetadataIndex } from '../filter/index.js';
import { IntegrityError } from '../errors.js';
import type { IdBytes } from '../storage/sealed.js';
import type { DecodedTable } from '../storage/snapshot.js';
import { unpackMetadataFrame } from '../storage/snapshot.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import { LiveTable } from './live-table.js';

/** Where a live record sits: its engine key and the commit that wrote it. */
export interface LiveEntry {
  key: number;
  seq: number;
}

export class LiveRecords {
  private table = new LiveTable();
  /** Use `filterIndex()`, which first indexes restored metadata. Records without metadata cost it nothing: the table is its key set. */
  private readonly metadata: MetadataIndex;
  /** Metadata restored from a snapshot, still packed in frames. */
  private unindexed: { keys: Float64Array; frames: Uint8Array[]; next: number; offset: number } | null = null;
  /** The records as a read-only Map view, for callers that iterate them. */
  readonly byId: ReadonlyMap<string, LiveEntry> = new LiveView(() => this.table);

  constructor() {
    const live = this;
    this.metadata = new MetadataIndex({
      allKeys: {
        get size() {
          return live.table.size;
        },
        has: (key) => live.table.rowOfKey(key) >= 0,
        keys: () => live.table.liveKeys(),
      },
    });
  }

  /** How many records are live. */
  get size(): number {
    return this.table.size;
  }

  /** The engine keys of the live records. */
  keys(): Iterable<number> {
    return this.table.liveKeys();
  }

  /** The id behind an engine key, if it is live. */
  idOf(key: number): string | undefined {
    return this.table.idOf(key);
  }

  get(id: string): LiveEntry | undefined {
    const row = this.table.rowOfId(id);
    return row < 0 ? undefined : { key: this.table.keyAt(row), seq: this.table.seqAt(row) };
  }

  /**
   * Every live record's id (in the snapshot table's stored form, straight
   * from the table's id bytes: no string or entry object each), engine key
   * and commit, in row order, `slice` rows at a time with `pause` awaited
   * between slices. Call inside the write queue.
   */
  liveColumns(slice: number, pause: () => Promise<void>): Promise<{ ids: IdBytes; keys: Float64Array; seqs: Float64Array }> {
    return this.table.liveColumns(pause, slice);
  }
  /** LiveTable.writeGuard: throws once a write changed the table after this call. */
  writeGuard(): () => void {
    return this.table.writeGuard();
  }

  /** The metadata filter index, complete. */
  filterIndex(): MetadataIndex {
    while (this.unindexed) this.indexNextMetadataFrame();
    return this.metadata;
  }

  /** Makes `id` live at `key`, replacing its earlier entry in every table. */
  set(id: string, key: number, seq: number, metadata: unknown): void {
    const filterIndex = this.filterIndex();
    const row = this.table.rowOfId(id);
    if (row >= 0) filterIndex.delete(this.table.keyAt(row)); // before the table forgets that key
    this.table.set(id, key, seq);
    filterIndex.set(key, metadata);
  }

  /** Takes `id` out of every table; returns the entry it had. */
  remove(id: string): LiveEntry | undefined {
    const row = this.table.rowOfId(id);
    if (row < 0) return undefined;
    this.filterIndex().delete(this.table.keyAt(row));
    return this.table.remove(id);
  }

  /** Whether the table's hash tables are part-way through an incremental rebuild: inserts then cost more (LiveTable.set). */
  get rebuilding(): boolean {
    return this.table.rebuilding;
  }

  /** Makes room for `extra` more records ahead of a batch of inserts, a slice at a time (call inside the write queue). */
  reserve(extra: number): Promise<void> {
    return this.table.reserve(extra, yieldToEventLoop);
  }

  /**
   * Once removed rows outnumber live ones, swaps in a copy of the live rows
   * built a slice at a time (at 1M rows a squeeze in one go held the event
   * loop for tens of milliseconds). Writers call it inside the write queue,
   * after their change is applied; readers keep using the old table until the swap.
   */
  async squeezeIfDue(): Promise<void> {
    const table = this.table;
    if (!table.squeezeDue) return;
    const fresh = await table.squeezed(yieldToEventLoop);
    if (fresh === table || this.table !== table) return;
    this.table = fresh;
    table.retire(); // an iteration still running over it fails rather than miss later writes
  }

  /** Takes over a snapshot's table (its ids as stored bytes, no string each): search hits resolve at once; the id index and metadata follow lazily. */
  async restore(table: DecodedTable<IdBytes>): Promise<void> {
    const { ids, keys, seqs } = table;
    try {
      this.table = await LiveTable.restore(ids, keys, seqs, yieldToEventLoop); // 1M keys in one go would hold the event loop
    } catch (cause) {
      // Authenticated id lengths that do not match their bytes: written by a different format, never by us.
      throw new IntegrityError('The snapshot table of the index is malformed.', { cause });
    }
    this.unindexed = table.metadataFrames.length > 0 ? { keys, frames: table.metadataFrames, next: 0, offset: 0 } : null;
  }

  /**
   * Indexes whatever a restore left unindexed (ids, metadata) a slice at a
   * time with the event loop free between slices. Callers that can wait await
   * it before a lookup: the first lookup would otherwise index it all at once
   * (~40–60 ms at 1M ids).
   */
  async ready(): Promise<void> {
    while (!this.table.idsComplete || this.unindexed) {
      if (!this.table.idsComplete) this.table.indexIdsSlice(16 * SLICE);
      else this.indexNextMetadataFrame();
      await yieldToEventLoop();
    }
  }

  /**
   * Every live id, in insertion order, `size` at a time: only the batch in hand is held as strings (all 1M ids at
   * once were ~40 MiB of V8 heap that every full GC during a compaction traced). Call inside the write queue:
   * a write between batches (a squeeze renumbering the rows, or swapping the table) makes the next batch throw.
   */
  *idBatches(size: number): Generator<string[]> {
    const table = this.table;
    let batch: string[] = [];
    for (const row of table.liveRows()) {
      batch.push(table.idAt(row));
      if (batch.length === size) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  /** Indexes the restored ids and metadata a slice at a time, between the host's own work, while `wanted()`. */
  async finishRestoreInBackground(wanted: () => boolean): Promise<void> {
    while ((!this.table.idsComplete || this.unindexed) && wanted()) {
      await yieldToEventLoop();
      if (!wanted()) return;
      if (!this.table.idsComplete) this.table.indexIdsSlice(16 * SLICE);
      else if (this.unindexed) this.indexNextMetadataFrame();
    }
  }

  memoryUsage(): number {
    return this.metadata.memoryUsage() + this.table.memoryUsage();
  }

  clear(): void {
    this.table.clear();
    this.metadata.clear();
    this.unindexed = null;
  }

  /** Unpacks one frame of snapshot metadata into the filter index (records without metadata need no entry). */
  private indexNextMetadataFrame(): void {
    const pending = this.unindexed!;
    const frame = unpackMetadataFrame(pending.frames[pending.next++]!);
    for (let i = 0; i < frame.length; i++) {
      const metadata = frame[i];
      if (metadata !== null && metadata !== undefined) this.metadata.set(pending.keys[pending.offset + i]!, metadata);
    }
    pending.offset += frame.length;
    if (pending.next === pending.frames.length) this.unindexed = null;
  }
}

/** The live records as a read-only Map (id → entry), in insertion order; entries are fresh objects. */
class LiveView implements ReadonlyMap<string, LiveEntry> {
  constructor(private readonly table: () => LiveTable) {}

  get size(): number {
    return this.table().size;
  }

  get(id: string): LiveEntry | undefined {
    const table = this.table();
    const row = table.rowOfId(id);
    return row < 0 ? undefined : { key: table.keyAt(row), seq: table.seqAt(row) };
  }

  has(id: string): boolean {
    return this.table().rowOfId(id) >= 0;
  }

  *entries(): MapIterator<[string, LiveEntry]> {
    const table = this.table();
    for (const row of table.liveRows()) yield [table.idAt(row), { key: table.keyAt(row), seq: table.seqAt(row) }];
  }

  *keys(): MapIterator<string> {
    const table = this.table();
    for (const row of table.liveRows()) yield table.idAt(row);
  }

  *values(): MapIterator<LiveEntry> {
    for (const [, entry] of this.entries()) yield entry;
  }

  [Symbol.iterator](): MapIterator<[string, LiveEntry]> {
    return this.entries();
  }

  forEach(callback: (value: LiveEntry, key: string, map: ReadonlyMap<string, LiveEntry>) => void, thisArg?: unknown): void {
    for (const [id, entry] of this.entries()) callback.call(thisArg, entry, id, this);
  }
}
