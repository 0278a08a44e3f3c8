/**
 * One index's view of the store, bound once to its id, subkeys and commit
 * head: the index core asks for records, commits, the change log and
 * snapshots by meaning, never by LevelDB key. Everything that knows the key
 * layout or which key seals what stays below this seam (a second backend
 * implements the same class shape over its own tables).
 */
import { open, seal } from '../crypto/aead.js';
import { constantTimeEqual, frame, u64 } from '../crypto/kdf.js';
import { IntegrityError, PermissionError } from '../errors.js';
import type { CatalogEntry, IndexKeys } from '../keys/envelope.js';
import { grantDataKeyToUsers, sealSigningSeed, type UsersRegrant, type UserWrites } from '../keys/users.js';
import { warn } from '../warnings.js';
import { erase, pendingErasure, type Erasure } from './erasure.js';
import type { HeadFile } from './heads.js';
import type { BatchOp, KvBackend, StagedBatch } from './kv-store.js';
import {
  catalogKey,
  CHANGELOG,
  indexKey,
  indexKeys,
  indexRange,
  keySuffix,
  kindRange,
  MANIFEST,
  RECORD,
  ROTATION,
  SNAPSHOT,
  USER,
  USER_DIR,
  USERS_ADMIN,
} from './layout.js';
import { openManifest, sealManifest, type Manifest, type SnapshotRef } from './manifest.js';
import {
  checkRecordTags,
  hashIds,
  liveTags,
  openChange,
  openRecords,
  sealChange,
  sealRecords,
  sealRecordsAsync,
  type ChangeEntry,
  type RecordBody,
} from './sealed.js';
import { pack, unpack } from '../util/msgpack.js';
import {
  chunkMacKey,
  clearGeneration,
  CHUNK_BYTES,
  dropSnapshotOps,
  isChunkMacs,
  newSnapshotWrite,
  readSection,
  readSectionStream,
  sectionHash,
  writeSection,
  writeSectionStream,
  type ChunkChecks,
  type SectionSink,
  type SnapshotSection,
} from './snapshot.js';

/**
 * A snapshot of a signed index whose chunks authenticate under the graph key but are not the ones
 * the signed manifest names: re-sealed by a key holder who cannot sign. Never answered by a rebuild.
 */
export class ForgedSnapshotError extends IntegrityError {}

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

/** An erasure recorded in a batch (erasure.ts): its marker key and what it erases. */
export interface PendingErasure {
  key: Uint8Array;
  erasure: Erasure;
}

/** The writes of one commit, gathered before it (records put or removed). */
export class CommitBatch {
  /** @internal */
  readonly ops: BatchOp[] = [];

  constructor(
    private readonly store: IndexStore,
    /** @internal When given, record operations go into it as they are sealed instead of into `ops` (IndexStore.newBatch). */
    readonly staged?: StagedBatch,
  ) {}

  /**
   * Seals `bodies` under their id hashes, all written by commit `seq`, a slice at a time with `between()` awaited in
   * between (sealRecordsAsync; a signed index's writer tags in one call).
   */
  async putRecords(hkeys: Uint8Array[], seq: number, bodies: RecordBody[], between: () => Promise<void>): Promise<void> {
    const values = await sealRecordsAsync(this.store.keys.records, this.store.indexId, hkeys, seq, bodies, this.store.writerTagKey(), between);
    const keys = indexKeys(this.store.indexId, RECORD, hkeys);
    this.add(keys.map((key, i): BatchOp => ({ type: 'put', key, value: values[i]! })));
  }

  removeRecords(hkeys: Uint8Array[]): void {
    this.add(indexKeys(this.store.indexId, RECORD, hkeys).map((key): BatchOp => ({ type: 'del', key })));
  }

  /** Drops a staged batch that will not be committed (a no-op once committed, or when not staged). */
  discard(): void {
    this.staged?.discard();
  }

  private add(ops: BatchOp[]): void {
    if (this.staged) this.staged.add(ops);
    else for (const op of ops) this.ops.push(op);
  }
}

/** The commit head's operations (HeadFile on disk; a shared backend keeps one per process in memory). */
export type CommitHead = Pick<HeadFile, 'create' | 'read' | 'update' | 'markDeleting' | 'remove'> & {
  sibling(indexId: Uint8Array, headKey: Uint8Array): CommitHead;
};

/**
 * Commits written by other processes (a shared backend only): the newest
 * counter in the store, and a wake-up when another process commits.
 */
export interface RemoteCommits {
  counter(): Promise<number>;
  /** Calls `wake` (with the counter, when known) after a remote commit; returns the unsubscribe. */
  subscribe(wake: (counter?: number) => void): () => void;
  /** Holds off other processes' commits to this index until the returned release is called (a writer that keeps losing). */
  takeTurn(): Promise<() => Promise<void>>;
}

export class IndexStore {
  /** Set by a backend shared between processes: the index core then follows commits made elsewhere. */
  remote: RemoteCommits | null = null;

  constructor(
    protected readonly kv: KvBackend,
    readonly indexName: string,
    readonly indexId: Uint8Array,
    /** @internal */
    readonly keys: IndexKeys,
    protected readonly head: CommitHead,
    /**
     * The Ed25519 public key this opener trusts for the index's commits (the root: the one of the
     * seed in its admin entry, which only the DEK opens; a user: the one sealed in its own entry);
     * null for an unsigned index (created before signed commits).
     */
    signKey: Uint8Array | null = null,
    /** The DEK generation the keys belong to (user grants are per generation). */
    readonly dekGeneration = 1,
    /** What user material is bound to (keys/envelope.ts `usersIdOf`): kept by a data-key rotation, unlike the index id. */
    readonly usersId: Uint8Array = indexId,
  ) {
    this.#signKey = signKey;
  }

  #signKey: Uint8Array | null;

  /** The public key commits are checked against (changes when a writer's revocation renews the signing key). */
  get signKey(): Uint8Array | null {
    return this.#signKey;
  }

  // ---- signing (per-user keys) ----

  /** Commits here are signed and records carry writer tags. */
  get signed(): boolean {
    return this.#signKey !== null;
  }

  /** Whether this opener can commit: any unsigned index, or a signed one with the signing and record-auth keys. */
  get canCommit(): boolean {
    return !this.signed || (this.keys.signSeed !== undefined && this.keys.recordAuth !== undefined);
  }

  /** @internal The record-auth key when this index is signed (undefined: records are written untagged). */
  writerTagKey(): Uint8Array | undefined {
    if (!this.signed) return undefined;
    if (!this.keys.recordAuth) throw new PermissionError(`Index "${this.indexName}" was opened with a read-only key: it cannot write.`);
    return this.keys.recordAuth;
  }

  /**
   * Gives a state opened by a weaker key holder the keys a root or writer handle brought (the
   * same process shares one state per index). The trusted public keys must agree.
   */
  async adoptKeys(keys: IndexKeys, signKey: Uint8Array | null): Promise<void> {
    if (this.#signKey === null && signKey === null) return;
    if (this.#signKey === null || signKey === null || !constantTimeEqual(signKey, this.#signKey)) {
      throw new IntegrityError(`Index "${this.indexName}" is open under another signing key than this key trusts. Restore the store from a backup.`);
    }
    if (this.keys.recordAuth === undefined && keys.recordAuth !== undefined) {
      // A reader opened this state and could not check writer tags of the records it loaded (a rebuild or a
      // replay): check every record's tag now, as the root's or a writer's own open would have.
      for await (const { hkeys, values } of this.recordBatches(4096)) checkRecordTags(keys.recordAuth, this.indexId, hkeys, values);
    }
    for (const field of ['recordAuth', 'signSeed', 'admin'] as const) {
      if (this.keys[field] === undefined && keys[field] !== undefined) this.keys[field] = Buffer.from(keys[field]);
    }
  }

  private signingSeed(): Uint8Array | undefined {
    if (!this.signed) return undefined;
    if (!this.keys.signSeed) throw new PermissionError(`Index "${this.indexName}" was opened with a read-only key: it cannot write.`);
    return this.keys.signSeed;
  }

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
    const ops: BatchOp[] = [
      { type: 'put', key: catalogKey(this.indexName), value: pack(catalogEntry) },
      { type: 'put', key: this.manifestKey(), value: sealManifest(this.keys.manifest, this.indexId, manifest, this.signingSeed()) },
    ];
    if (this.signed) {
      if (!this.keys.admin || !this.keys.signSeed) throw new IntegrityError('A signed index is created with its root keys.');
      ops.push({ type: 'put', key: indexKey(this.indexId, USERS_ADMIN), value: sealSigningSeed(this.keys.admin, this.indexId, this.keys.signSeed) });
    }
    await this.kv.batch(ops, { guard: { key: this.manifestKey(), counter: manifest.counter } });
  }

  /**
   * The authenticated manifest, checked against the commit head: a store
   * older than what was acknowledged lost writes (or its files were rolled back).
   */
  async readManifest({ checkHead = true }: { checkHead?: boolean } = {}): Promise<Manifest> {
    const raw = await this.kv.get(this.manifestKey());
    if (raw === undefined) throw new IntegrityError(`The manifest of index "${this.indexName}" is missing. Restore the store from a backup.`);
    const manifest = openManifest(this.keys.manifest, this.indexId, raw, this.indexName, this.#signKey ?? undefined);
    if (!checkHead) return manifest; // recovery reads what it can from a damaged store
    const acknowledged = this.head.read(this.indexName);
    if (manifest.counter < acknowledged) {
      throw new IntegrityError(
        `Index "${this.indexName}" is missing committed writes (store at commit ${manifest.counter}, ${acknowledged} were acknowledged): LevelDB dropped data or its files were rolled back. Restore the store from a backup.`,
      );
    }
    return manifest;
  }

  /**
   * `staged`: the record operations go to the store as they are sealed (KvBackend.stage, when it has a batch free),
   * so a large upsert does not keep every sealed record alive in JS until its commit; the caller must then
   * `discard()` the batch if it does not commit it.
   */
  newBatch({ staged = false }: { staged?: boolean } = {}): CommitBatch {
    return new CommitBatch(this, staged ? this.kv.stage?.() : undefined);
  }

  /**
   * One atomic, durable batch: the gathered writes, a change-log entry (when
   * given) and the sealed manifest `next`; then the commit head moves forward.
   * `durable` runs as soon as the batch is on disk, before the head's fsyncs.
   */
  async commit(
    next: Manifest,
    batch: CommitBatch,
    { change, durable, newSigningKey }: { change?: ChangeEntry; durable?: () => void; newSigningKey?: { seed: Buffer; publicKey: Buffer } } = {},
  ): Promise<void> {
    this.signingSeed(); // a read-only opener writes nothing
    // A renewed signing key (a writer's revocation) signs the commit that installs it.
    const seed = newSigningKey?.seed ?? this.signingSeed();
    const ops = batch.ops;
    if (change) ops.push({ type: 'put', key: this.changeKey(next.counter), value: sealChange(this.keys.records, this.indexId, next.counter, change) });
    ops.push({ type: 'put', key: this.manifestKey(), value: sealManifest(this.keys.manifest, this.indexId, next, seed) });
    if (batch.staged) await batch.staged.write(ops);
    else await this.kv.batch(ops, { guard: { key: this.manifestKey(), counter: next.counter } });
    ops.length = 0; // the sealed values are written: garbage now, not held while memory is brought in line
    if (newSigningKey) {
      this.keys.signSeed?.fill(0);
      this.keys.signSeed = newSigningKey.seed;
      this.#signKey = newSigningKey.publicKey;
    }
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
    return this.kv.getMany(indexKeys(this.indexId, RECORD, hkeys));
  }

  /**
   * Authenticates and decodes sealed records; any failure is an IntegrityError. In a signed index,
   * an opener holding the record-auth key (root, writers) also checks every record's writer tag;
   * readers cannot (docs/key-sources.md, what a read-only key can do).
   */
  openRecords(hkeys: Uint8Array[], values: Uint8Array[]): OpenedRecord[] {
    if (this.signed && this.keys.recordAuth) checkRecordTags(this.keys.recordAuth, this.indexId, hkeys, values);
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
   * The graph is streamed: `graph(chunkBytes, sink)` hands its bytes to the
   * sink chunk by chunk (AnnEngine.serializeTo), each sealed and written as
   * it comes, so no whole copy of the graph is ever made.
   */
  async writeSnapshot(
    generation: number,
    graph: (chunkBytes: number, sink: SectionSink) => Promise<unknown>,
    /** The table's encoded parts (`encodeTableParts`), written as if joined. */
    table: () => Promise<readonly Uint8Array[]>,
  ): Promise<Omit<SnapshotRef, 'counter'>> {
    const seed = this.signingSeed(); // a read-only opener writes nothing
    // Signed: the SHA-256s for any opener, the GMACs for openers who can sign (sectionChecks).
    const mac = seed && chunkMacKey(seed, this.indexId);
    const write = newSnapshotWrite(generation);
    try {
      await clearGeneration(this.kv, this.indexId, generation);
      const checks = () => mac && { digests: [] as Uint8Array[], macs: [] as Uint8Array[], macKey: mac.key };
      const [graphChecks, tableChecks] = [checks(), checks()];
      const graphChunks = await writeSectionStream(this.kv, this.keys.graph, this.indexId, write, 'graph', graph, graphChecks);
      const tableChunks = await writeSection(this.kv, this.keys.graph, this.indexId, write, 'table', await table(), tableChecks);
      const ref: Omit<SnapshotRef, 'counter'> = { ...write, graphChunks, tableChunks };
      if (mac && graphChecks && tableChecks) {
        ref.graphHash = sectionHash(graphChecks.digests);
        ref.tableHash = sectionHash(tableChecks.digests);
        ref.chunkMacs = { keyId: mac.id, graph: sectionHash(graphChecks.macs), table: sectionHash(tableChecks.macs) };
      }
      return ref;
    } finally {
      mac?.key.fill(0); // the native tasks held copies of their own
    }
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
  async readSnapshot(ref: SnapshotRef, section: SnapshotSection): Promise<Uint8Array[]> {
    const chunks = section === 'graph' ? ref.graphChunks : ref.tableChunks;
    // Signed: the chunks must be the ones the signed manifest names, not merely authentic under the graph key.
    const verify = this.sectionChecks(ref, section);
    const opened = await readSection(this.kv, this.keys.graph, this.indexId, ref, section, chunks, verify?.checks);
    verify?.allRead();
    return opened;
  }

  /**
   * The authenticated chunks of one section of snapshot `ref`, streamed (a
   * group or two read and decrypted ahead, never the whole section); each
   * chunk owns its ArrayBuffer. `bound` is an upper bound on the section's
   * plaintext length.
   */
  snapshotStream(ref: SnapshotRef, section: SnapshotSection): { chunks: AsyncIterable<Uint8Array>; bound: number } {
    const chunks = section === 'graph' ? ref.graphChunks : ref.tableChunks;
    // Signed: the chunks must be the ones the signed manifest names, checked before the last of them is handed out.
    const verify = this.sectionChecks(ref, section);
    return { chunks: readSectionStream(this.kv, this.keys.graph, this.indexId, ref, section, chunks, verify), bound: chunks * CHUNK_BYTES };
  }

  /**
   * How this opener checks a section of a signed snapshot against its signed manifest: by the chunks' GMACs
   * when it can sign with the key that wrote them (the root, a writer: a third of the CPU), else by their
   * SHA-256s (a reader; a snapshot written before the GMACs, or before the signing key was renewed).
   * Undefined for an unsigned index: its chunks authenticate under the graph key alone.
   */
  private sectionChecks(ref: SnapshotRef, section: SnapshotSection): { checks: ChunkChecks; allRead: () => void } | undefined {
    if (!this.signed) return undefined;
    const mac = this.keys.signSeed && chunkMacKey(this.keys.signSeed, this.indexId);
    const macs = ref.chunkMacs;
    if (mac && isChunkMacs(macs) && constantTimeEqual(macs.keyId, mac.id)) {
      const checks = { macs: [], macKey: mac.key };
      const allRead = () => {
        mac.key.fill(0); // every chunk's task has run (each held a copy of its own)
        this.checkSection(section, checks.macs, macs[section]);
      };
      return { checks, allRead };
    }
    mac?.key.fill(0);
    const checks = { digests: [] };
    return { checks, allRead: () => this.checkSection(section, checks.digests, section === 'graph' ? ref.graphHash : ref.tableHash) };
  }

  private checkSection(section: SnapshotSection, checks: Uint8Array[], expected: unknown): void {
    if (!(expected instanceof Uint8Array) || !constantTimeEqual(sectionHash(checks), expected)) {
      throw new ForgedSnapshotError(
        `The ${section} snapshot of index "${this.indexName}" is not the one its signed manifest names: it was re-sealed by a key holder who cannot sign (a read-only key), or tampered with. Restore the store from a backup.`,
      );
    }
  }

  // ---- maintenance and removal ----

  /** Returns memory left from large transient work (snapshot chunks written or read) to the OS (KvStore.releaseMemory). */
  releaseMemory(options?: { gated?: boolean }): Promise<void> {
    return this.kv.releaseMemory(options);
  }

  /**
   * Drops this process's resident pages of LevelDB's mapped table files, on the pool, if enough came in since the last
   * release (util/memory.ts): for long reads of records, whose pages would otherwise stay counted until the read ends.
   */
  releaseMappedPages(): void {
    this.kv.releaseMappedPages();
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

  // ---- per-user keys (keys/users.ts) ----

  /** A directory entry by its key; undefined when there is none. */
  readDirectoryEntry(dirKey: Uint8Array): Promise<Uint8Array | undefined> {
    return this.kv.get(indexKey(this.indexId, USER_DIR, dirKey));
  }

  /** Every directory entry (sealed under the admin key), with its key. */
  async directory(): Promise<{ dirKey: Uint8Array; value: Uint8Array }[]> {
    const out: { dirKey: Uint8Array; value: Uint8Array }[] = [];
    for await (const [key, value] of this.kv.entries(kindRange(this.indexId, USER_DIR))) out.push({ dirKey: keySuffix(key), value });
    return out;
  }

  /** Every user entry, with its slot. */
  async userEntries(): Promise<{ slot: Uint8Array; value: Uint8Array }[]> {
    const out: { slot: Uint8Array; value: Uint8Array }[] = [];
    for await (const [key, value] of this.kv.entries(kindRange(this.indexId, USER))) out.push({ slot: keySuffix(key), value });
    return out;
  }

  /** Writes a new user's entry and directory entry in one synced batch. */
  async putUser(writes: UserWrites): Promise<void> {
    await this.kv.batch([
      { type: 'put', key: indexKey(this.indexId, USER, writes.slot), value: writes.entry },
      { type: 'put', key: indexKey(this.indexId, USER_DIR, writes.dirKey), value: writes.directory },
    ]);
  }

  /**
   * Deletes a user's entry and directory entry in one synced batch (with a pending erasure of
   * them, erasure.ts), then erases them from LevelDB's files (`eraseUser`).
   */
  async removeUser(dirKey: Uint8Array, slot: Uint8Array): Promise<void> {
    const batch = this.newBatch();
    const pending = this.removeUserOps(batch, dirKey, slot);
    await this.kv.batch(batch.ops);
    await this.eraseUser(pending);
  }

  /** Adds the deletes of a user's entry and directory entry to `batch`, and their pending erasure (finished by `eraseUser`, or the next open). */
  removeUserOps(batch: CommitBatch, dirKey: Uint8Array, slot: Uint8Array): PendingErasure {
    const keys = [indexKey(this.indexId, USER, slot), indexKey(this.indexId, USER_DIR, dirKey)];
    for (const key of keys) batch.ops.push({ type: 'del', key });
    const erasure: Erasure = { ranges: keys.map((key) => ({ gte: key, lt: Buffer.concat([key, Buffer.of(0)]) })), brackets: keys, rewrite: [] };
    const { key, op } = pendingErasure(erasure);
    batch.ops.push(op);
    return { key, erasure };
  }

  /**
   * Erases a deleted user's entry and directory entry from LevelDB's files, as `destroy` does for
   * an index (`KvStore.shred`): resolves once the user's wraps are gone from disk.
   */
  async eraseUser(pending: PendingErasure): Promise<void> {
    await erase(this.kv, pending.key, pending.erasure);
  }

  /** Adds a users' re-grant (keys/users.ts `regrantUsers`) to `batch`: deletes first, then puts and the sealed signing seed. */
  addRegrant(batch: CommitBatch, grant: UsersRegrant): void {
    const kind = (k: 'D' | 'U') => (k === 'D' ? USER_DIR : USER);
    for (const d of grant.dels) batch.ops.push({ type: 'del', key: indexKey(this.indexId, kind(d.kind), d.suffix) });
    for (const u of grant.puts) batch.ops.push({ type: 'put', key: indexKey(this.indexId, kind(u.kind), u.suffix), value: u.value });
    batch.ops.push({ type: 'put', key: indexKey(this.indexId, USERS_ADMIN), value: grant.signingSeed });
  }

  // ---- key rotation (core/rotation.ts) ----

  /**
   * rotateKey: the catalog entry (the same DEK under a new key source) replaced in one synced
   * batch, with a pending erasure of its older values (erasure.ts): a crash before
   * `eraseOldCatalogEntries` is finished by the next open.
   */
  async replaceCatalogEntry(entry: CatalogEntry): Promise<PendingErasure> {
    const key = catalogKey(this.indexName);
    const erasure: Erasure = { ranges: [{ gte: key, lt: key }], brackets: [], rewrite: [key] };
    const pending = pendingErasure(erasure);
    await this.kv.batch([{ type: 'put', key, value: pack(entry) }, pending.op]);
    return { key: pending.key, erasure };
  }

  /**
   * Erases the catalog entry's earlier values (the wraps under a key source
   * rotated away from) from LevelDB's files, as `destroy` erases an index:
   * the current value is written again as the bracket. Then the pending erasure goes.
   */
  async eraseOldCatalogEntries(pending: PendingErasure): Promise<void> {
    await erase(this.kv, pending.key, pending.erasure);
  }

  /** The store of the index a data-key rotation copies this one into: same name, store and heads directory. */
  sibling(indexId: Uint8Array, keys: IndexKeys): IndexStore {
    return new IndexStore(this.kv, this.indexName, indexId, keys, this.head.sibling(indexId, keys.head), this.signKey, this.dekGeneration + 1, this.usersId);
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
        target.writerTagKey(), // a signed index's records carry the new generation's writer tags
      );
      keys.forEach((hkey, j) => ops.push({ type: 'put', key: indexKey(target.indexId, RECORD, hkey), value: values[j]! }));
    }
    ops.push(this.rotationOp(p));
    await this.kv.batch(ops);
  }

  /**
   * The switch of a data-key rotation: marks this index's head `deleting`,
   * then one atomic batch deletes every key of this index (records, change
   * log, snapshot, manifest, the rotation record, user entries), writes
   * `entry` (the target's catalog entry), `target`'s manifest `next` and, for
   * a signed index, the signing seed and every user's grant of the target's
   * generation under the target id (`grantDataKeyToUsers`); `durable` runs
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
    if (target.signed) {
      // The root finds the (unchanged) signing seed under the new generation's admin key, and every user a grant of the
      // new generation under the new index id (same slot: user material is bound to the users id, which is kept).
      if (!this.keys.admin || !target.keys.admin || !target.keys.signSeed) throw new IntegrityError('A signed index switches generation with its root keys.');
      const grant = grantDataKeyToUsers({
        indexId: target.indexId,
        usersId: target.usersId,
        oldAdmin: this.keys.admin,
        newKeys: target.keys,
        newGeneration: target.dekGeneration,
        directory: await this.directory(),
        entries: await this.userEntries(),
      });
      const kind = (k: 'D' | 'U') => (k === 'D' ? USER_DIR : USER);
      // Only puts: the old entries (and any the directory does not name) go with this index's range below.
      for (const u of grant.puts) batch.ops.push({ type: 'put', key: indexKey(target.indexId, kind(u.kind), u.suffix), value: u.value });
      batch.ops.push({ type: 'put', key: indexKey(target.indexId, USERS_ADMIN), value: grant.signingSeed });
    }
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

  protected manifestKey(): Buffer {
    return indexKey(this.indexId, MANIFEST);
  }

  private changeKey(seq: number): Buffer {
    return indexKey(this.indexId, CHANGELOG, u64(seq));
  }
}
