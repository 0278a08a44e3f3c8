/**
 * One index's view of the store, bound once to its id, subkeys and commit
 * head: the index core asks for records, commits, the change log and
 * snapshots by meaning, never by LevelDB key. Everything that knows the key
 * layout or which key seals what stays below this seam (a second backend
 * implements the same class shape over its own tables).
 */
import { u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';
import type { CatalogEntry, IndexKeys } from '../keys/envelope.js';
import { warn } from '../warnings.js';
import type { HeadFile } from './heads.js';
import type { BatchOp, KvStore } from './kv-store.js';
import { catalogKey, CHANGELOG, indexKey, indexRange, keySuffix, kindRange, MANIFEST, RECORD, SNAPSHOT } from './layout.js';
import { openManifest, sealManifest, type Manifest, type SnapshotRef } from './manifest.js';
import { hashIds, liveTags, openChange, openRecords, pack, sealChange, sealRecords, type ChangeEntry, type RecordBody } from './sealed.js';
import {
  clearGeneration,
  CHUNK_BYTES,
  dropSnapshotOps,
  newSnapshotWrite,
  readSection,
  readSectionStream,
  writeSection,
  writeSectionStream,
  type SectionSink,
  type SnapshotSection,
} from './snapshot.js';

/** A record as read back: the commit that wrote it and its decrypted body. */
export interface OpenedRecord {
  seq: number;
  body: RecordBody;
}

/** The writes of one commit, gathered before it (records put or removed). */
export class CommitBatch {
  /** @internal */
  readonly ops: BatchOp[] = [];

  constructor(private readonly store: IndexStore) {}

  /** Seals `bodies` under their id hashes, all written by commit `seq`. */
  putRecords(hkeys: Uint8Array[], seq: number, bodies: RecordBody[]): void {
    const values = sealRecords(this.store.keys.records, this.store.indexId, hkeys, seq, bodies);
    hkeys.forEach((hkey, i) => this.ops.push({ type: 'put', key: indexKey(this.store.indexId, RECORD, hkey), value: values[i]! }));
  }

  removeRecords(hkeys: Uint8Array[]): void {
    for (const hkey of hkeys) this.ops.push({ type: 'del', key: indexKey(this.store.indexId, RECORD, hkey) });
  }
}

export class IndexStore {
  constructor(
    private readonly kv: KvStore,
    readonly indexName: string,
    readonly indexId: Uint8Array,
    /** @internal */
    readonly keys: IndexKeys,
    private readonly head: HeadFile,
  ) {}

  // ---- ids and the live-record digest ----

  /** The storage key of each id: HMAC(ids key, id), so ids never reach the disk. */
  hashIds(ids: string[]): Buffer[] {
    return hashIds(this.keys.ids, ids);
  }

  /** Each record's term in the manifest digest (one `seq` for all, or one per record). */
  liveTags(hkeys: Uint8Array[], seqs: number | number[]): Buffer {
    return liveTags(this.keys.digest, hkeys, seqs);
  }

  // ---- manifest and commits ----

  /** The first commit of a new index: its head, then the manifest and the catalog entry in one batch. */
  async create(manifest: Manifest, catalogEntry: CatalogEntry): Promise<void> {
    await this.head.create(manifest.counter);
    await this.kv.batch([
      { type: 'put', key: catalogKey(this.indexName), value: pack(catalogEntry) },
      { type: 'put', key: this.manifestKey(), value: sealManifest(this.keys.manifest, this.indexId, manifest) },
    ]);
  }

  /**
   * The authenticated manifest, checked against the commit head: a store
   * older than what was acknowledged lost writes (or its files were rolled back).
   */
  async readManifest({ checkHead = true }: { checkHead?: boolean } = {}): Promise<Manifest> {
    const raw = await this.kv.get(this.manifestKey());
    if (raw === undefined) throw new IntegrityError(`The manifest of index "${this.indexName}" is missing. Restore the store from a backup.`);
    const manifest = openManifest(this.keys.manifest, this.indexId, raw, this.indexName);
    if (!checkHead) return manifest; // recovery reads what it can from a damaged store
    const acknowledged = this.head.read(this.indexName);
    if (manifest.counter < acknowledged) {
      throw new IntegrityError(
        `Index "${this.indexName}" is missing committed writes (store at commit ${manifest.counter}, ${acknowledged} were acknowledged): LevelDB dropped data or its files were rolled back. Restore the store from a backup.`,
      );
    }
    return manifest;
  }

  newBatch(): CommitBatch {
    return new CommitBatch(this);
  }

  /**
   * One atomic, durable batch: the gathered writes, a change-log entry (when
   * given) and the sealed manifest `next`; then the commit head moves forward.
   * `durable` runs as soon as the batch is on disk, before the head's fsyncs.
   */
  async commit(next: Manifest, batch: CommitBatch, { change, durable }: { change?: ChangeEntry; durable?: () => void } = {}): Promise<void> {
    const ops = batch.ops;
    if (change) ops.push({ type: 'put', key: this.changeKey(next.counter), value: sealChange(this.keys.records, this.indexId, next.counter, change) });
    ops.push({ type: 'put', key: this.manifestKey(), value: sealManifest(this.keys.manifest, this.indexId, next) });
    await this.kv.batch(ops);
    durable?.();
    try {
      await this.head.update(next.counter);
    } catch (error) {
      // The write is durable; a head left behind only weakens rollback detection until the next commit.
      warn('VECVAULT_HEAD_WRITE', `could not update the commit head of index "${this.indexName}": ${(error as Error).message}`);
    }
  }

  // ---- records ----

  /** Raw (sealed) records by id hash; `undefined` where none is stored. */
  getRecords(hkeys: Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return this.kv.getMany(hkeys.map((hkey) => indexKey(this.indexId, RECORD, hkey)));
  }

  /** Authenticates and decodes sealed records; any failure is an IntegrityError. */
  openRecords(hkeys: Uint8Array[], values: Uint8Array[]): OpenedRecord[] {
    return openRecords(this.keys.records, this.indexId, hkeys, values);
  }

  /** Every stored record, still sealed, in batches of up to `size`. */
  async *recordBatches(size: number): AsyncGenerator<{ hkeys: Uint8Array[]; values: Uint8Array[] }> {
    let hkeys: Uint8Array[] = [];
    let values: Uint8Array[] = [];
    for await (const [key, value] of this.kv.entries(kindRange(this.indexId, RECORD))) {
      hkeys.push(keySuffix(key));
      values.push(value);
      if (hkeys.length === size) {
        yield { hkeys, values };
        hkeys = [];
        values = [];
      }
    }
    yield { hkeys, values };
  }

  // ---- read-only views for verify and recover ----

  /** The raw catalog entry of this index's name (not encrypted); undefined when gone. */
  readCatalogEntry(): Promise<Uint8Array | undefined> {
    return this.kv.get(catalogKey(this.indexName));
  }

  /** The newest counter the commit head acknowledges (authenticated; IntegrityError when missing or altered). */
  readHead(): number {
    return this.head.read(this.indexName);
  }

  /** Every change-log entry still stored, sealed, in commit order, with the commit sequence its key names. */
  async *changeLogEntries(): AsyncGenerator<{ seq: number; value: Uint8Array }> {
    for await (const [key, value] of this.kv.entries(kindRange(this.indexId, CHANGELOG))) {
      const suffix = keySuffix(key);
      yield { seq: suffix.byteLength === 8 ? Number(Buffer.from(suffix).readBigUInt64BE(0)) : -1, value };
    }
  }

  /** Authenticates and decodes one change-log entry of commit `seq`; any failure is an IntegrityError. */
  openChange(seq: number, value: Uint8Array): ChangeEntry {
    return openChange(this.keys.records, this.indexId, seq, value);
  }

  // ---- change log ----

  /** Change-log entries of commits `after` < seq ≤ `upTo`, in order (none opened when the range is empty). */
  async *changes(after: number, upTo: number): AsyncGenerator<{ seq: number; change: ChangeEntry }> {
    if (upTo <= after) return;
    const range = { gte: this.changeKey(after + 1), lt: this.changeKey(upTo + 1) };
    for await (const [key, value] of this.kv.entries(range)) {
      const seq = Number(Buffer.from(keySuffix(key)).readBigUInt64BE(0));
      yield { seq, change: openChange(this.keys.records, this.indexId, seq, value) };
    }
  }

  // ---- snapshots ----

  /**
   * Seals and writes both sections of snapshot `generation` ahead of its
   * commit, after clearing whatever an interrupted earlier write left there,
   * under a fresh random write id. Unreachable until `commitSnapshot` names
   * the generation and write id (the returned reference, plus its counter).
   * The graph is streamed: `graph(chunkBytes, sink)` hands its bytes to the
   * sink chunk by chunk (AnnEngine.serializeTo), each sealed and written as
   * it comes, so no whole copy of the graph is ever made.
   */
  async writeSnapshot(
    generation: number,
    graph: (chunkBytes: number, sink: SectionSink) => Promise<unknown>,
    table: () => Promise<Uint8Array>,
  ): Promise<Omit<SnapshotRef, 'counter'>> {
    const write = newSnapshotWrite(generation);
    await clearGeneration(this.kv, this.indexId, generation);
    const graphChunks = await writeSectionStream(this.kv, this.keys.graph, this.indexId, write, 'graph', graph);
    const tableChunks = await writeSection(this.kv, this.keys.graph, this.indexId, write, 'table', await table());
    return { ...write, graphChunks, tableChunks };
  }

  /**
   * Commits `next` (whose `snapshot` names the new generation) and, in the
   * same batch, drops the `previous` snapshot and the change log it covers.
   */
  async commitSnapshot(next: Manifest, previous: SnapshotRef | null, durable: () => void): Promise<void> {
    const batch = this.newBatch();
    if (previous) batch.ops.push(...dropSnapshotOps(this.indexId, previous));
    const upTo = { gte: indexKey(this.indexId, CHANGELOG), lt: this.changeKey(next.counter + 1) };
    for await (const key of this.kv.keys(upTo)) batch.ops.push({ type: 'del', key });
    await this.commit(next, batch, { durable });
  }

  /** The authenticated chunks of one section of snapshot `ref` (its generation and write id), in order. */
  readSnapshot(ref: SnapshotRef, section: SnapshotSection): Promise<Uint8Array[]> {
    const chunks = section === 'graph' ? ref.graphChunks : ref.tableChunks;
    return readSection(this.kv, this.keys.graph, this.indexId, ref, section, chunks);
  }

  /**
   * The authenticated chunks of one section of snapshot `ref`, streamed (a
   * group or two read and decrypted ahead, never the whole section); each
   * chunk owns its ArrayBuffer. `bound` is an upper bound on the section's
   * plaintext length.
   */
  snapshotStream(ref: SnapshotRef, section: SnapshotSection): { chunks: AsyncIterable<Uint8Array>; bound: number } {
    const chunks = section === 'graph' ? ref.graphChunks : ref.tableChunks;
    return { chunks: readSectionStream(this.kv, this.keys.graph, this.indexId, ref, section, chunks), bound: chunks * CHUNK_BYTES };
  }

  // ---- maintenance and removal ----

  /** Returns memory left from large transient work (snapshot chunks written or read) to the OS (KvStore.releaseMemory). */
  releaseMemory(): void {
    this.kv.releaseMemory();
  }

  /** Asks LevelDB to rewrite the snapshot chunks now (after a close: the next open then reads tables, not the log). */
  compactSnapshots(): Promise<void> {
    return this.kv.compactRange(kindRange(this.indexId, SNAPSHOT));
  }

  /** Asks LevelDB to drop deleted and overwritten values of this index from disk now. */
  compactAll(): Promise<void> {
    return this.kv.compactRange(indexRange(this.indexId));
  }

  /**
   * Deletes the index and erases it from LevelDB's files: marks the head
   * `deleting` (a crash from here on is finished at the next open), removes
   * every key and the catalog entry in one atomic batch, refuses later puts
   * into the index's range (a handle that outlived it), rewrites the files
   * that held the deleted values (`KvStore.shred`), then removes the head.
   * Resolves only once the wrapped data key and every value of the index are
   * gone from LevelDB's files. A StorageError before the batch changed
   * nothing; after it the index is gone and the next open finishes erasing it.
   */
  async destroy(removed?: () => void): Promise<void> {
    await this.head.markDeleting();
    const range = indexRange(this.indexId);
    const catalog = catalogKey(this.indexName);
    const ops: BatchOp[] = [{ type: 'del', key: catalog }];
    for await (const key of this.kv.keys(range)) ops.push({ type: 'del', key });
    await this.kv.batch(ops);
    removed?.(); // the index is gone for readers now, whatever the erasure below does
    this.kv.fence(range);
    // Keys come in order: the first and last index keys bracket every value that was deleted.
    const brackets = [catalog, ...(ops.length > 1 ? [ops[1]!.key, ops[ops.length - 1]!.key] : [])];
    await this.kv.shred([range, { gte: catalog, lt: catalog }], brackets, range.gte);
    this.head.remove();
  }

  private manifestKey(): Buffer {
    return indexKey(this.indexId, MANIFEST);
  }

  private changeKey(seq: number): Buffer {
    return indexKey(this.indexId, CHANGELOG, u64(seq));
  }
}
