/**
 * One index's view of the store, bound once to its id, subkeys and commit
 * head: the index core asks for records, commits, the change log and
 * snapshots by meaning, never by LevelDB key. Everything that knows the key
 * layout or which key seals what stays below this seam (a second backend
 * implements the same class shape over its own tables).
 */
import { open, seal } from '../crypto/aead.js';
import { frame, u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';
import type { CatalogEntry, IndexKeys } from '../keys/envelope.js';
import { warn } from '../warnings.js';
import type { HeadFile } from './heads.js';
import type { BatchOp, KvStore } from './kv-store.js';
import { catalogKey, CHANGELOG, indexKey, indexRange, keySuffix, kindRange, MANIFEST, RECORD, ROTATION, SNAPSHOT } from './layout.js';
import { openManifest, sealManifest, type Manifest, type SnapshotRef } from './manifest.js';
import { hashIds, liveTags, openChange, openRecords, pack, sealChange, sealRecords, unpack, type ChangeEntry, type RecordBody } from './sealed.js';
import { clearGeneration, dropSnapshotOps, newSnapshotWrite, readSection, writeSection, type SnapshotSection } from './snapshot.js';

/** A record as read back: the commit that wrote it and its decrypted body. */
export interface OpenedRecord {
  seq: number;
  body: RecordBody;
}

/**
 * A data-key rotation in progress (`rotateDataKey`), stored under the index
 * being rotated ('P'), sealed under its records key: the index the records
 * are copied into, its new DEK, the commit counter the copy started from
 * (a later write makes the copy stale: it starts over), how many records
 * were copied and the last source record key copied.
 */
export interface PendingRotation {
  targetId: Uint8Array;
  dek: Buffer;
  counter: number;
  copied: number;
  cursor: Uint8Array | null;
}

const ROTATION_VERSION = 1;

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

  /** Every stored record, still sealed, in batches of up to `size` (in key order; only keys after `after` when given). */
  async *recordBatches(size: number, after?: Uint8Array): AsyncGenerator<{ hkeys: Uint8Array[]; values: Uint8Array[] }> {
    let hkeys: Uint8Array[] = [];
    let values: Uint8Array[] = [];
    const range = kindRange(this.indexId, RECORD);
    // Just after `after`: the key followed by a zero byte is the least key greater than it.
    if (after) range.gte = Buffer.concat([indexKey(this.indexId, RECORD, after), Buffer.of(0)]);
    for await (const [key, value] of this.kv.entries(range)) {
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
   */
  async writeSnapshot(generation: number, graph: () => Promise<Uint8Array>, table: () => Promise<Uint8Array>): Promise<Omit<SnapshotRef, 'counter'>> {
    const write = newSnapshotWrite(generation);
    await clearGeneration(this.kv, this.indexId, generation);
    const graphChunks = await writeSection(this.kv, this.keys.graph, this.indexId, write, 'graph', await graph());
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

  // ---- maintenance and removal ----

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
    // A data-key rotation in progress has copied records under its target index id: they go too.
    const staging = await this.rotationTarget();
    const ranges = [range, ...(staging ? [indexRange(staging)] : [])];
    const ops: BatchOp[] = [{ type: 'del', key: catalog }];
    const brackets: Uint8Array[] = [catalog];
    for (const r of ranges) {
      const from = ops.length;
      for await (const key of this.kv.keys(r)) ops.push({ type: 'del', key });
      // Keys come in order: the first and last keys of each range bracket every value that was deleted.
      if (ops.length > from) brackets.push(ops[from]!.key, ops[ops.length - 1]!.key);
    }
    await this.kv.batch(ops);
    removed?.(); // the index is gone for readers now, whatever the erasure below does
    for (const r of ranges) this.kv.fence(r);
    await this.kv.shred([...ranges, { gte: catalog, lt: catalog }], brackets, range.gte);
    if (staging) this.head.sibling(staging, this.keys.head).remove();
    this.head.remove();
  }

  // ---- key rotation (core/rotation.ts) ----

  /** rotateKey: the catalog entry (the same DEK under a new key source) replaced in one synced batch. */
  async replaceCatalogEntry(entry: CatalogEntry): Promise<void> {
    await this.kv.batch([{ type: 'put', key: catalogKey(this.indexName), value: pack(entry) }]);
  }

  /**
   * Erases the catalog entry's earlier values (the wraps under a key source
   * rotated away from) from LevelDB's files, as `destroy` erases an index:
   * `entry`, the current value, is written again as the bracket.
   */
  async eraseOldCatalogEntries(entry: CatalogEntry): Promise<void> {
    const key = catalogKey(this.indexName);
    await this.kv.shred([{ gte: key, lt: key }], [], indexRange(this.indexId).gte, [{ type: 'put', key, value: pack(entry) }]);
  }

  /** The store of the index a data-key rotation copies this one into: same name, store and heads directory. */
  sibling(indexId: Uint8Array, keys: IndexKeys): IndexStore {
    return new IndexStore(this.kv, this.indexName, indexId, keys, this.head.sibling(indexId, keys.head));
  }

  /** The target index id of a rotation in progress (stored in the clear), without opening it. */
  private async rotationTarget(): Promise<Uint8Array | undefined> {
    const raw = await this.kv.get(this.rotationKey());
    return raw !== undefined && raw.byteLength > 17 && raw[0] === ROTATION_VERSION ? new Uint8Array(raw.subarray(1, 17)) : undefined;
  }

  /** The rotation in progress, authenticated; undefined when none is. */
  async readRotation(): Promise<PendingRotation | undefined> {
    const raw = await this.kv.get(this.rotationKey());
    if (raw === undefined) return undefined;
    const bad = () => new IntegrityError(`The data-key rotation record of index "${this.indexName}" failed authentication. Restore the store from a backup.`);
    if (raw.byteLength <= 17 || raw[0] !== ROTATION_VERSION) throw bad();
    const targetId = new Uint8Array(raw.subarray(1, 17));
    let plain: Buffer;
    try {
      plain = open(this.keys.records, Buffer.from(raw).subarray(17), frame('rotation', this.indexId, targetId), 'rotation record');
    } catch {
      throw bad();
    }
    try {
      // msgpack's byte strings are views into `plain`: copy them out before it is wiped.
      const body = unpack(plain) as { dek?: unknown; counter?: unknown; copied?: unknown; cursor?: unknown };
      const { dek, counter, copied, cursor } = body;
      if (!(dek instanceof Uint8Array) || dek.byteLength !== 32 || !Number.isSafeInteger(counter) || !Number.isSafeInteger(copied)) throw bad();
      if (cursor !== null && !(cursor instanceof Uint8Array)) throw bad();
      return { targetId, dek: Buffer.from(dek), counter: counter as number, copied: copied as number, cursor: cursor ? new Uint8Array(cursor) : null };
    } catch (error) {
      throw error instanceof IntegrityError ? error : bad();
    } finally {
      plain.fill(0);
    }
  }

  private rotationOp(p: PendingRotation): BatchOp {
    const plain = pack({ dek: p.dek, counter: p.counter, copied: p.copied, cursor: p.cursor });
    try {
      const sealed = seal(this.keys.records, plain, frame('rotation', this.indexId, p.targetId));
      return { type: 'put', key: this.rotationKey(), value: Buffer.concat([Buffer.of(ROTATION_VERSION), p.targetId, sealed]) };
    } finally {
      plain.fill(0);
    }
  }

  /** Records (or restarts) a rotation into `target`: nothing copied yet; any earlier copy under the target's id is cleared. */
  async startRotation(p: PendingRotation, target: IndexStore): Promise<void> {
    const ops: BatchOp[] = [];
    for await (const key of this.kv.keys(indexRange(target.indexId))) ops.push({ type: 'del', key });
    ops.push(this.rotationOp(p));
    await this.kv.batch(ops);
  }

  /** The staging head of a rotation's target (`creating` until the switch), counter `counter`. */
  createHead(counter: number): Promise<void> {
    return this.head.create(counter);
  }

  /**
   * Writes copies of records into `target` (sealed under its keys and id,
   * each with the commit sequence that wrote it) and the rotation's new
   * progress `p`, in one batch.
   */
  async stageRecords(target: IndexStore, hkeys: Uint8Array[], seqs: number[], bodies: RecordBody[], p: PendingRotation): Promise<void> {
    const bySeq = new Map<number, number[]>();
    seqs.forEach((seq, i) => {
      const group = bySeq.get(seq);
      if (group) group.push(i);
      else bySeq.set(seq, [i]);
    });
    const ops: BatchOp[] = [];
    for (const [seq, at] of bySeq) {
      const keys = at.map((i) => hkeys[i]!);
      const values = sealRecords(
        target.keys.records,
        target.indexId,
        keys,
        seq,
        at.map((i) => bodies[i]!),
      );
      keys.forEach((hkey, j) => ops.push({ type: 'put', key: indexKey(target.indexId, RECORD, hkey), value: values[j]! }));
    }
    ops.push(this.rotationOp(p));
    await this.kv.batch(ops);
  }

  /**
   * The switch of a data-key rotation: marks this index's head `deleting`,
   * then one atomic batch deletes every key of this index (records, change
   * log, snapshot, manifest, the rotation record), writes `entry` (the
   * target's catalog entry) and `target`'s manifest `next`; `durable` runs
   * once it is on disk. Then LevelDB's files are rewritten so no value of
   * this index nor the old catalog entry remains (`KvStore.shred`), and this
   * head goes. A crash before the batch leaves this index as it was
   * (its head's `deleting` mark is overwritten by its next commit); after it,
   * the next open's `Store.recover` removes the head and erases the range.
   */
  async switchTo(target: IndexStore, next: Manifest, entry: CatalogEntry, durable: () => void): Promise<void> {
    await this.head.markDeleting();
    const range = indexRange(this.indexId);
    const catalog = catalogKey(this.indexName);
    const batch = target.newBatch();
    batch.ops.push({ type: 'put', key: catalog, value: pack(entry) });
    const from = batch.ops.length;
    for await (const key of this.kv.keys(range)) batch.ops.push({ type: 'del', key });
    const brackets: Uint8Array[] = batch.ops.length > from ? [batch.ops[from]!.key, batch.ops[batch.ops.length - 1]!.key] : [];
    await target.commit(next, batch, { durable });
    this.kv.fence(range);
    await this.kv.shred([range, { gte: catalog, lt: catalog }], brackets, range.gte, [{ type: 'put', key: catalog, value: pack(entry) }]);
    this.head.remove(); // last: until then a crash leaves the `deleting` head, and the next open erases the range again
  }

  private rotationKey(): Buffer {
    return indexKey(this.indexId, ROTATION);
  }

  private manifestKey(): Buffer {
    return indexKey(this.indexId, MANIFEST);
  }

  private changeKey(seq: number): Buffer {
    return indexKey(this.indexId, CHANGELOG, u64(seq));
  }
}
