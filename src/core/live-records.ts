/**
 * The live records of an open index, in memory only: id → (engine key,
 * commit), engine key → id for search hits, and the decrypted metadata for
 * filters. An open from a snapshot fills the id map and the metadata lazily
 * (a background task, or whoever needs them first), so the open does not wait.
 */
import { MetadataIndex } from '../filter/index.js';
import type { DecodedTable } from '../storage/snapshot.js';
import { unpackMetadataFrame } from '../storage/snapshot.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import { KeyTable } from './key-table.js';

/** Where a live record sits: its engine key and the commit that wrote it. */
export interface LiveEntry {
  key: number;
  seq: number;
}

export class LiveRecords {
  /** Use `byId`, which first finishes listing a restored snapshot. */
  private readonly listed = new Map<string, LiveEntry>();
  /**
   * Records of a restored snapshot not in `listed` yet: queries only need
   * `idOf`, so the open does not wait for this map.
   */
  private unlisted: { ids: string[]; keys: Float64Array; seqs: Float64Array; next: number } | null = null;
  private keyTable = new KeyTable();
  /** Use `filterIndex()`, which first indexes restored metadata. */
  private readonly metadata = new MetadataIndex();
  /** Metadata restored from a snapshot, still packed in frames. */
  private unindexed: { keys: Float64Array; frames: Uint8Array[]; next: number; offset: number } | null = null;

  /** How many records are live (no listing needed). */
  get size(): number {
    return this.keyTable.size;
  }

  /** The id behind an engine key, if it is live. */
  idOf(key: number): string | undefined {
    return this.keyTable.get(key);
  }

  /** Live records by id. */
  get byId(): ReadonlyMap<string, LiveEntry> {
    while (this.unlisted) this.listNextSlice();
    return this.listed;
  }

  get(id: string): LiveEntry | undefined {
    return this.byId.get(id);
  }

  /** The metadata filter index, complete. */
  filterIndex(): MetadataIndex {
    while (this.unindexed) this.indexNextMetadataFrame();
    return this.metadata;
  }

  /** Makes `id` live at `key`, replacing its earlier entry in every table. */
  set(id: string, key: number, seq: number, metadata: unknown): void {
    const filterIndex = this.filterIndex();
    const old = this.byId.get(id);
    if (old) {
      this.keyTable.delete(old.key);
      filterIndex.delete(old.key);
    }
    this.listed.set(id, { key, seq });
    this.keyTable.set(key, id);
    filterIndex.set(key, metadata);
  }

  /** Takes `id` out of every table; returns the entry it had. */
  remove(id: string): LiveEntry | undefined {
    const old = this.byId.get(id);
    if (!old) return undefined;
    this.listed.delete(id);
    this.keyTable.delete(old.key);
    this.filterIndex().delete(old.key);
    return old;
  }

  /** Takes over a snapshot's table: search hits resolve at once; the id map and metadata follow lazily. */
  async restore(table: DecodedTable): Promise<void> {
    const { ids, keys, seqs } = table;
    this.keyTable = await KeyTable.fromSliced(keys, ids, yieldToEventLoop); // 1M keys in one go would hold the event loop
    this.unlisted = ids.length > 0 ? { ids, keys, seqs, next: 0 } : null;
    this.unindexed = table.metadataFrames.length > 0 ? { keys, frames: table.metadataFrames, next: 0, offset: 0 } : null;
  }

  /** Lists the records and indexes the metadata a slice at a time, between the host's own work, while `wanted()`. */
  async finishRestoreInBackground(wanted: () => boolean): Promise<void> {
    while ((this.unlisted || this.unindexed) && wanted()) {
      await yieldToEventLoop();
      if (!wanted()) return;
      if (this.unlisted) this.listNextSlice();
      else if (this.unindexed) this.indexNextMetadataFrame();
    }
  }

  memoryUsage(): number {
    return this.metadata.memoryUsage();
  }

  clear(): void {
    this.unlisted = null;
    this.listed.clear();
    this.keyTable.clear();
    this.metadata.clear();
    this.unindexed = null;
  }

  /** Moves one slice of restored records into `listed`. */
  private listNextSlice(): void {
    const pending = this.unlisted!;
    const end = Math.min(pending.ids.length, pending.next + 16 * SLICE);
    for (let i = pending.next; i < end; i++) this.listed.set(pending.ids[i]!, { key: pending.keys[i]!, seq: pending.seqs[i]! });
    pending.next = end;
    if (end === pending.ids.length) this.unlisted = null;
  }

  /** Unpacks one frame of snapshot metadata into the filter index. */
  private indexNextMetadataFrame(): void {
    const pending = this.unindexed!;
    const frame = unpackMetadataFrame(pending.frames[pending.next++]!);
    for (let i = 0; i < frame.length; i++) this.metadata.set(pending.keys[pending.offset + i]!, frame[i] ?? undefined);
    pending.offset += frame.length;
    if (pending.next === pending.frames.length) this.unindexed = null;
  }
}
