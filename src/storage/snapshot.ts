/**
 * Encrypted graph snapshots, in two sections: `graph` (the engine's serialized
 * bytes) and `table` (which records the graph holds). Each section is cut into
 * 1 MiB chunks sealed with AES-256-GCM under the graph key; the AAD binds index
 * id, generation, the write id (16 random bytes per snapshot write, also in the
 * manifest's SnapshotRef), section, chunk number and a last-chunk flag, so
 * chunks cannot be dropped, reordered, truncated, moved between sections or
 * spliced in from another snapshot or index, nor from another write of the same
 * generation (a write whose commit failed leaves chunks under a generation the
 * next write reuses). Two sections let an open hand the graph to the engine
 * (which loads it on the pool) while it decodes the table.
 */
import { createHash, randomBytes } from 'node:crypto';
import { SEAL_OVERHEAD } from '../crypto/aead.js';
import { DIGEST_BYTES, GMAC_BYTES, openInPlaceAsync, sealIntoAsync, type SealedChecks } from '../crypto/bulk.js';
import { deriveKey, frame, u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import type { BatchOp, KvBackend as KvStore } from './kv-store.js';
import { indexKey, SNAPSHOT } from './layout.js';
import type { SnapshotRef } from './manifest.js';
import type { IdBytes } from './sealed.js';
import { pack, unpack } from '../util/msgpack.js';
import { concatSliced, decodeIdList, encodeIdListSliced, splitIdList } from './sealed.js';

export const CHUNK_BYTES = 1 << 20;
/** Chunks per LevelDB read and decrypt task: several run on the pool at once. */
const READ_GROUP = 8;
/** Chunks per read and decrypt task when streaming into the engine. */
const STREAM_GROUP = 2;
/** Such tasks in flight at once while streaming: they run side by side on the pool, ahead of the engine. */
const STREAM_DEPTH = 4;
/** Chunks read between two releases of LevelDB's mapped table pages while streaming. */
const RELEASE_EVERY = 8;
/**
 * Chunks per seal task and LevelDB batch when writing. Each group in flight
 * holds its chunks, their sealed copy and LevelDB's copy of the batch: at
 * 200k × 96 a group of 4 (with the engine's 8 serialize buffers) peaked
 * ~14 MiB higher during a snapshot than 2 (and 4), at no measurable cost in
 * time; 1 saved ~4 MiB more for twice the synced batches.
 */
const WRITE_GROUP = 2;
/** Metadata entries per msgpack frame in the table: each frame packs or unpacks in well under a millisecond or two. */
const METADATA_FRAME = 4096;

export type SnapshotSection = 'graph' | 'table';
const SECTION_BYTE: Record<SnapshotSection, number> = { graph: 0x47, table: 0x54 };

/** Bytes of a snapshot write id. */
export const WRITE_ID_BYTES = 16;

/**
 * Which write a chunk belongs to: its generation (part of the chunk's key) and
 * its write id (only in the AAD). A SnapshotRef without `writeId` names a
 * snapshot written before write ids existed: its chunks are read with that
 * format's AAD. Every new write has one (`newSnapshotWrite`).
 */
export type SnapshotWrite = Pick<SnapshotRef, 'generation' | 'writeId'>;

/** A new write of snapshot `generation`, with a fresh random write id. */
export function newSnapshotWrite(generation: number): Required<SnapshotWrite> {
  return { generation, writeId: randomBytes(WRITE_ID_BYTES) };
}

/** Whether a manifest's (authenticated) reference has a usable write id, or none (the format before write ids). */
export function hasValidWriteId(ref: SnapshotWrite): boolean {
  return ref.writeId === undefined || (ref.writeId instanceof Uint8Array && ref.writeId.byteLength === WRITE_ID_BYTES);
}

/** Which records the graph holds, so opening needs no record decryption. */
export interface SnapshotTable {
  /** Manifest counter the snapshot reflects. */
  counter: number;
  count: number;
  /** The manifest digest at that counter (see Manifest.digest). */
  digest: Uint8Array;
  /** As strings, or already in their stored form (the live table's id bytes: no string per id). */
  ids: string[] | IdBytes;
  keys: ArrayLike<number>;
  seqs: ArrayLike<number>;
  /** Decrypted metadata per record (null when none), for the in-memory filter index: an array, or looked up by row as it is packed. */
  metadata: unknown[] | ((row: number) => unknown);
}

/** A decoded table: metadata stays packed (in frames) until the filter index needs it; ids as strings, or as stored (`decodeTableSliced`). */
export interface DecodedTable<Ids extends string[] | IdBytes = string[]> extends Omit<SnapshotTable, 'metadata' | 'ids'> {
  ids: Ids;
  keys: Float64Array;
  seqs: Float64Array;
  /** msgpack frames, each an array of up to METADATA_FRAME entries, in record order. */
  metadataFrames: Uint8Array[];
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function chunkKey(indexId: Uint8Array, generation: number, section: SnapshotSection, chunk: number): Buffer {
  return indexKey(indexId, SNAPSHOT, u64(generation), Buffer.of(SECTION_BYTE[section]), u32(chunk));
}

function chunkAad(indexId: Uint8Array, write: SnapshotWrite, section: SnapshotSection, chunk: number, last: boolean): Buffer {
  const flag = last ? 'last' : 'more';
  // Without a write id: the AAD of snapshots written before write ids, to read them (framing keeps the two apart).
  if (write.writeId === undefined) return frame('snapshot', indexId, u64(write.generation), section, u32(chunk), flag);
  return frame('snapshot', indexId, u64(write.generation), write.writeId, section, u32(chunk), flag);
}

function bytesOf(array: Float64Array | Uint32Array): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

/**
 * Table layout: u32 head length || msgpack head || f64 keys[n] || f64 seqs[n]
 * || id list (see encodeIdList) || metadata frames (their lengths are in the
 * head). Fixed-width columns decode in one copy each, the ids in one UTF-8 decode.
 * Yields between metadata frames: packing 100k objects takes tens of ms.
 */
export async function encodeTable(table: SnapshotTable): Promise<Buffer> {
  return concatSliced(await encodeTableParts(table), yieldToEventLoop);
}

/**
 * `encodeTable`'s bytes as the parts they are made of, not joined: a snapshot writes them chunk by chunk
 * (`writeSection`), so the whole encoding (~27 MB at 1M records) never exists beside the columns it is made of.
 */
export async function encodeTableParts(table: SnapshotTable): Promise<Uint8Array[]> {
  const stored = Array.isArray(table.ids) ? null : table.ids;
  const n = stored ? stored.lengths.length : (table.ids as string[]).length;
  // Ids in stored form are the id list's two parts already: the same bytes encodeIdList would write for their strings.
  const ids = stored ? [bytesOf(stored.lengths), stored.utf8] : await encodeIdListSliced(table.ids as string[], yieldToEventLoop);
  const idBytes = ids.reduce((sum, part) => sum + part.byteLength, 0);
  const frames: Buffer[] = [];
  for (let start = 0; start < n; start += METADATA_FRAME) {
    if (start > 0) await yieldToEventLoop();
    const end = Math.min(n, start + METADATA_FRAME);
    const { metadata } = table;
    frames.push(pack(Array.isArray(metadata) ? metadata.slice(start, end) : Array.from({ length: end - start }, (_, i) => metadata(start + i))));
  }
  const head = pack({ counter: table.counter, count: table.count, digest: table.digest, n, idBytes, frames: frames.map((f) => f.byteLength) });
  const column = (values: ArrayLike<number>) => bytesOf(values instanceof Float64Array ? values : Float64Array.from(values));
  return [u32(head.byteLength), head, column(table.keys), column(table.seqs), ...ids, ...frames];
}

export function decodeTable(bytes: Buffer): DecodedTable {
  try {
    const { head, at, keys, seqs } = tableColumns(bytes);
    return tableRest(bytes, head, at, keys, seqs, decodeIdList(bytes.subarray(at, at + head.idBytes), head.n));
  } catch (cause) {
    throw malformedTable(cause);
  }
}

/**
 * `decodeTable` for an open: the ids stay in their stored form (no string per id: the live table keeps
 * them as bytes; LiveTable.restore checks them), the columns are copied a slice at a time.
 */
export async function decodeTableSliced(bytes: Buffer): Promise<DecodedTable<IdBytes>> {
  try {
    const { head, at, keys, seqs } = await tableColumnsSliced(bytes);
    const ids = splitIdList(bytes.subarray(at, at + head.idBytes), head.n);
    return tableRest(bytes, head, at, keys, seqs, ids);
  } catch (cause) {
    throw malformedTable(cause);
  }
}

interface TableHead {
  counter: number;
  count: number;
  digest: Uint8Array;
  n: number;
  idBytes: number;
  frames: number[];
}

type TableColumns = { head: TableHead; at: number; keys: Float64Array; seqs: Float64Array };

/** The table's head, and the bytes of its two 8n-byte columns (checked to be all there). */
function tableHeadAndColumns(bytes: Buffer): { head: TableHead; keyBytes: Buffer; seqBytes: Buffer; at: number } {
  const headLength = bytes.readUInt32BE(0);
  const head = unpack(bytes.subarray(4, 4 + headLength)) as TableHead;
  const at = 4 + headLength;
  const columnBytes = 8 * head.n;
  if (bytes.byteLength < at + 2 * columnBytes) throw new Error('table is truncated');
  return { head, keyBytes: bytes.subarray(at, at + columnBytes), seqBytes: bytes.subarray(at + columnBytes, at + 2 * columnBytes), at: at + 2 * columnBytes };
}

function tableColumns(bytes: Buffer): TableColumns {
  const { head, keyBytes, seqBytes, at } = tableHeadAndColumns(bytes);
  // Copies: the column offsets are not 8-byte aligned inside the buffer.
  const column = (from: Buffer) => {
    const out = new Float64Array(head.n);
    new Uint8Array(out.buffer).set(from);
    return out;
  };
  return { head, at, keys: column(keyBytes), seqs: column(seqBytes) };
}

/** `tableColumns`, copying the columns a megabyte at a time between yields (2 × 8 MB at 1M records held the loop ~15 ms). */
async function tableColumnsSliced(bytes: Buffer): Promise<TableColumns> {
  const { head, keyBytes, seqBytes, at } = tableHeadAndColumns(bytes);
  // concatSliced's buffer is its own, 8-byte aligned ArrayBuffer.
  const column = async (from: Buffer) => {
    const copy = await concatSliced([from], yieldToEventLoop);
    return new Float64Array(copy.buffer, copy.byteOffset, head.n);
  };
  return { head, at, keys: await column(keyBytes), seqs: await column(seqBytes) };
}

/** The metadata frames after the ids, and the decoded table. */
function tableRest<Ids extends string[] | IdBytes>(
  bytes: Buffer,
  head: TableHead,
  idsAt: number,
  keys: Float64Array,
  seqs: Float64Array,
  ids: Ids,
): DecodedTable<Ids> {
  let at = idsAt + head.idBytes;
  const metadataFrames = head.frames.map((length) => bytes.subarray(at, (at += length)));
  if (at !== bytes.byteLength) throw new Error('trailing bytes');
  return { counter: head.counter, count: head.count, digest: new Uint8Array(head.digest), ids, keys, seqs, metadataFrames };
}

// Authenticated bytes that do not parse: written by a different format, never by us.
const malformedTable = (cause: unknown) => new IntegrityError('The snapshot table of the index is malformed.', { cause });

/** Metadata of one frame, in record order. */
export function unpackMetadataFrame(frameBytes: Uint8Array): unknown[] {
  return unpack(frameBytes) as unknown[];
}

/**
 * Writes `payload` (bytes, or parts written as if joined: `encodeTableParts`) as a section of chunks through
 * `writeSectionStream`: sealed on the libuv pool and written ahead of the commit WRITE_GROUP chunks per LevelDB
 * batch (one batch holding a whole graph made LevelDB grow, and copy, its write buffer on the main thread, stalling
 * the event loop 30–70 ms at a time). The bytes are copied into a few reused chunk buffers, 1 MiB at a time: no
 * joined or sealed copy of the whole section is made. The chunks stay unreachable
 * until the commit's manifest names their generation and write id. Each batch is synced: LevelDB may switch log
 * files between them and the commit, and only a sync'd log is safe from a power loss.
 */
export async function writeSection(
  store: KvStore,
  key: Uint8Array,
  indexId: Uint8Array,
  write: SnapshotWrite,
  section: SnapshotSection,
  payload: Uint8Array | readonly Uint8Array[],
  /** Filled as the chunks are sealed (signed indexes: `sectionHash`). */
  checks?: ChunkChecks,
): Promise<number> {
  const parts: readonly Uint8Array[] = Array.isArray(payload) ? payload : [payload as Uint8Array];
  return writeSectionStream(store, key, indexId, write, section, (chunkBytes, sink) => handParts(parts, chunkBytes, sink), checks);
}

/** Hands `parts`, joined, to `sink` in chunks of `chunkBytes` (at least one chunk, empty for no bytes). */
async function handParts(parts: readonly Uint8Array[], chunkBytes: number, sink: SectionSink): Promise<void> {
  const total = parts.reduce((sum, part) => sum + part.byteLength, 0);
  const count = Math.max(1, Math.ceil(total / chunkBytes));
  // writeSectionStream resolves a chunk once it is sealed (a group of WRITE_GROUP at a time). Twice that many buffers
  // let the next group be copied while the last one seals; each is refilled once the chunk it held is sealed.
  const buffers: Uint8Array[] = [];
  const handed: Promise<void>[] = [];
  let part = 0;
  let inPart = 0;
  for (let i = 0; i < count; i++) {
    const size = Math.min(chunkBytes, total - i * chunkBytes);
    const slot = i % (2 * WRITE_GROUP);
    if (i >= 2 * WRITE_GROUP) await handed[i - 2 * WRITE_GROUP];
    const buffer = (buffers[slot] ??= new Uint8Array(Math.min(chunkBytes, total)));
    for (let at = 0; at < size;) {
      const from = parts[part]!;
      const take = Math.min(size - at, from.byteLength - inPart);
      buffer.set(from.subarray(inPart, inPart + take), at);
      at += take;
      inPart += take;
      if (inPart === from.byteLength) [part, inPart] = [part + 1, 0];
    }
    const sealed = sink(buffer.subarray(0, size), i, i === count - 1);
    sealed.catch(() => undefined); // writeSectionStream reports the failure
    handed.push(sealed);
  }
  await Promise.all(handed);
}

/**
 * What a signed index checks a section's chunks against, each filled in
 * chunk order as they are sealed or read: `digests`, each sealed chunk's
 * SHA-256 (any key holder can check those: `SnapshotRef.graphHash`); `macs`,
 * each one's GMAC under `macKey` (only a key holder who can sign can check
 * those: `SnapshotRef.chunkMacs`, for a third of the SHA-256s' CPU).
 */
export interface ChunkChecks {
  digests?: Uint8Array[];
  macs?: Uint8Array[];
  macKey?: Uint8Array;
}

/**
 * The GMAC key of an index's snapshot chunks and its id (`SnapshotRef.chunkMacs`), from the signing seed:
 * a key holder who cannot sign can neither make nor check them, and a renewed signing key (a writer
 * revoked) gives another id, so the snapshots written before are checked by their SHA-256s.
 */
export function chunkMacKey(signSeed: Uint8Array, indexId: Uint8Array): { key: Buffer; id: Buffer } {
  return { key: deriveKey(signSeed, indexId, 'snapshot-chunk-mac'), id: deriveKey(signSeed, indexId, 'snapshot-chunk-mac-id') };
}

/** Shape check of `SnapshotRef.chunkMacs` as read (signed, so only a different format could fail it). */
export function isChunkMacs(value: unknown): value is NonNullable<SnapshotRef['chunkMacs']> {
  if (typeof value !== 'object' || value === null) return false;
  const macs = value as Record<string, unknown>;
  return (['keyId', 'graph', 'table'] as const).every((field) => macs[field] instanceof Uint8Array && (macs[field] as Uint8Array).byteLength === 32);
}

/** The native checks of one group of `count` chunks (the buffers its pool task fills). */
function groupChecks(checks: ChunkChecks | undefined, count: number): SealedChecks | undefined {
  if (!checks) return undefined;
  return { digests: checks.digests && Buffer.alloc(DIGEST_BYTES * count), macs: checks.macs && Buffer.alloc(GMAC_BYTES * count), macKey: checks.macKey };
}

/** Files one group's checks (`groupChecks`, filled) under the chunk numbers they belong to. */
function keepChecks(checks: ChunkChecks | undefined, group: SealedChecks | undefined, numbers: number[]): void {
  if (!checks || !group) return;
  numbers.forEach((i, j) => {
    if (checks.digests) checks.digests[i] = group.digests!.subarray(DIGEST_BYTES * j, DIGEST_BYTES * (j + 1));
    if (checks.macs) checks.macs[i] = group.macs!.subarray(GMAC_BYTES * j, GMAC_BYTES * (j + 1));
  });
}

/** A section's value in a signed manifest: SHA-256 over its chunks' checks (`ChunkChecks`: digests or GMACs), in order. */
export function sectionHash(checks: Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const check of checks) hash.update(check);
  return hash.digest();
}

/** Receives the chunks of a streamed section in order (see AnnEngine.serializeTo); `chunk` may be reused once the promise resolves. */
export type SectionSink = (chunk: Uint8Array, index: number, last: boolean) => Promise<void>;

/**
 * `writeSection` for bytes produced as a stream: `produce` hands chunks of
 * exactly CHUNK_BYTES (the last may be shorter) to the sink, which seals each
 * group of WRITE_GROUP on the libuv pool, releases their buffers (the promises
 * resolve) and writes the group as one synced batch, one group at a time. The
 * producer can fill the next group meanwhile, so at most a few groups of the
 * section exist outside it at once, never the whole section. Chunk i holds
 * the section's bytes [i × CHUNK_BYTES, (i + 1) × CHUNK_BYTES), under the keys
 * and AADs a snapshot section always had. A chunk's promise resolves only once its
 * group is complete: the producer must be able to hand over WRITE_GROUP
 * chunks without waiting (the engine cycles through 2 × WRITE_GROUP buffers).
 */
export async function writeSectionStream(
  store: KvStore,
  key: Uint8Array,
  indexId: Uint8Array,
  write: SnapshotWrite,
  section: SnapshotSection,
  produce: (chunkBytes: number, sink: SectionSink) => Promise<unknown>,
  /** Filled as the chunks are sealed (signed indexes: `sectionHash`). */
  checks?: ChunkChecks,
): Promise<number> {
  interface Pending {
    chunk: Uint8Array;
    index: number;
    last: boolean;
    resolve: () => void;
    reject: (error: unknown) => void;
  }
  let group: Pending[] = [];
  // One output buffer for every group: each is sealed only after the previous group's batch was written (LevelDB copies values).
  const out = new Uint8Array(WRITE_GROUP * (CHUNK_BYTES + SEAL_OVERHEAD));
  let chain: Promise<void> = Promise.resolve();
  let failure: unknown;
  let chunks = 0;
  let sawLast = false;
  const flush = (items: Pending[]) => {
    chain = chain
      .then(async () => {
        if (failure !== undefined) throw failure;
        const group = groupChecks(checks, items.length); // filled on the pool, beside the sealing
        const sealed = await sealIntoAsync(
          key,
          items.map((item) => item.chunk),
          items.map((item) => chunkAad(indexId, write, section, item.index, item.last)),
          out,
          group,
        );
        keepChecks(
          checks,
          group,
          items.map((item) => item.index),
        );
        for (const item of items) item.resolve(); // sealed: the producer may reuse these chunks now
        // KvStore.batch drops the table pages LevelDB's compactions read meanwhile.
        await store.batch(items.map((item, j) => ({ type: 'put', key: chunkKey(indexId, write.generation, section, item.index), value: sealed[j]! })));
      })
      .catch((error: unknown) => {
        failure ??= error;
        // No-op for those already resolved; chunks waiting for a group that will never be written fail too.
        for (const item of [...items, ...group]) item.reject(error);
        group = [];
      });
  };
  const sink: SectionSink = (chunk, index, last) =>
    new Promise<void>((resolve, reject) => {
      if (failure !== undefined) {
        for (const item of group) item.reject(failure);
        group = [];
        return reject(failure);
      }
      if (index !== chunks || sawLast || (!last && chunk.byteLength !== CHUNK_BYTES) || chunk.byteLength > CHUNK_BYTES) {
        return reject(new RangeError(`snapshot ${section} chunk ${index} out of order or of the wrong size`));
      }
      chunks++;
      sawLast = last;
      group.push({ chunk, index, last, resolve, reject });
      if (group.length === WRITE_GROUP || last) {
        flush(group);
        group = [];
      }
    });
  try {
    await produce(CHUNK_BYTES, sink);
  } finally {
    await chain;
  }
  if (failure !== undefined) throw failure;
  if (!sawLast) throw new RangeError(`snapshot ${section} stream ended without its last chunk`);
  return chunks;
}

/** Removes whatever an interrupted earlier write left under `generation` (it was never committed). */
export async function clearGeneration(store: KvStore, indexId: Uint8Array, generation: number): Promise<void> {
  const range = { gte: indexKey(indexId, SNAPSHOT, u64(generation)), lt: indexKey(indexId, SNAPSHOT, u64(generation + 1)) };
  const ops: BatchOp[] = [];
  for await (const key of store.keys(range)) ops.push({ type: 'del', key });
  await store.batch(ops, { sync: false });
}

/** Deletes of every chunk of an older snapshot. */
export function dropSnapshotOps(indexId: Uint8Array, ref: SnapshotRef): BatchOp[] {
  const drop = (section: SnapshotSection, chunks: number) =>
    Array.from({ length: chunks }, (_, i) => ({ type: 'del' as const, key: chunkKey(indexId, ref.generation, section, i) }));
  return [...drop('graph', ref.graphChunks), ...drop('table', ref.tableChunks)];
}

/**
 * Reads and authenticates every chunk of one section of `write`, in order;
 * any gap, forgery or chunk of another write is an IntegrityError. Groups of chunks are decrypted on the
 * libuv pool, several at once; a local store's chunks are read as the stream reads them (`readSectionStream`),
 * a remote store's in one pool read per group, every group at once.
 */
export async function readSection(
  store: KvStore,
  key: Uint8Array,
  indexId: Uint8Array,
  write: SnapshotWrite,
  section: SnapshotSection,
  chunks: number,
  /** Filled as the chunks are read (signed indexes: `sectionHash`). */
  checks?: ChunkChecks,
): Promise<Uint8Array[]> {
  if (store.readNow) {
    // A local store: the stream's single-copy reads, a bounded few groups at a time (all groups at once would read
    // every chunk of a large section in one event-loop turn). The caller checks `checks` once all are in.
    const opened: Uint8Array[] = [];
    const verify = checks && { checks, allRead: () => undefined };
    for await (const chunk of readSectionStream(store, key, indexId, write, section, chunks, verify)) opened.push(chunk);
    return opened;
  }
  const groups: Promise<Uint8Array[]>[] = [];
  for (let start = 0; start < chunks; start += READ_GROUP) {
    const group = readGroup(store, key, indexId, write, section, chunks, start, Math.min(READ_GROUP, chunks - start), undefined, checks);
    group.catch(() => undefined); // awaited in order below; an early failure must not leave later ones unhandled
    groups.push(group);
  }
  return (await Promise.all(groups)).flat();
}

/**
 * `readSection` as a stream: yields the authenticated chunks in order while
 * the next STREAM_DEPTH groups are read and decrypted on the pool (each its own
 * task, side by side), so only a few MiB are held at once, never the whole section. Each yielded chunk is the
 * plaintext view of a buffer that holds nothing else (its ArrayBuffer may be
 * handed over and detached by the consumer). Stopping early is safe.
 */
export async function* readSectionStream(
  store: KvStore,
  key: Uint8Array,
  indexId: Uint8Array,
  write: SnapshotWrite,
  section: SnapshotSection,
  chunks: number,
  /** Signed indexes: each sealed chunk's checks, and a check of them run once every chunk is read, before the last group is yielded. */
  verify?: { checks: ChunkChecks; allRead: () => void },
): AsyncGenerator<Uint8Array> {
  const turns: ReadTurns = { last: Promise.resolve() };
  const group = (start: number, count: number) => {
    const read = readGroup(store, key, indexId, write, section, chunks, start, count, turns, verify?.checks);
    read.catch(() => undefined); // awaited in turn below, or abandoned when the consumer stops
    return read;
  };
  // STREAM_DEPTH groups in flight, each read and decrypted by its own pool task: one at a time could not keep up with the engine.
  // The first group is one chunk: the consumer (the engine's loader) waits for nothing else. Each group reads its
  // chunks in one turn (readEachNow), the groups in the order they were asked for, so the chunks are read in order
  // and a group's pool task is queued as soon as its own reads are done: read side by side, a chunk of each group
  // per turn, the first group reached the pool only after every other group had read too, and the engine waited
  // ~20 ms for its first bytes instead of ~3 (bench/results/OPEN-PATH.md).
  const ahead: Promise<Uint8Array[]>[] = [];
  let next = 0;
  const refill = () => {
    while (ahead.length < STREAM_DEPTH && next < chunks) {
      const count = Math.min(next === 0 ? 1 : STREAM_GROUP, chunks - next);
      ahead.push(group(next, count));
      next += count;
    }
  };
  refill();
  let unreleased = 0;
  while (ahead.length > 0) {
    const opened = await ahead.shift()!;
    // LevelDB read these through mmap: without this, every chunk of the section stays resident twice until the open
    // ends. Every few MiB, not per read: each call scans /proc/self/maps and drops every mapped table page.
    if ((unreleased += opened.length) >= RELEASE_EVERY || ahead.length === 0) {
      store.releaseMappedPages();
      unreleased = 0;
    }
    refill();
    if (ahead.length === 0) verify?.allRead(); // every group is in: the consumer never sees the last bytes of a section that is not the signed one
    for (const chunk of opened) yield chunk;
  }
}

/** The last group read of a stream: the next one waits for it. */
interface ReadTurns {
  last: Promise<void>;
}

/**
 * A stream group's chunks read on this thread, the group (STREAM_GROUP chunks, a MiB or so of copying each: see
 * KvStore.readNow) in one event-loop turn of its own, not in one pool read: that one copies each twice. The groups of
 * a stream go one per turn, in the order asked for: a refill asks for several at once, and read in the same turn they
 * were up to STREAM_DEPTH × STREAM_GROUP chunks (8 MiB), which from a cold page cache held the event loop 40–53 ms at
 * 1M (bench/stalls.ts after dropping the caches).
 */
async function readEachNow(store: KvStore, keys: Uint8Array[], turns: ReadTurns): Promise<(Uint8Array | undefined)[]> {
  const previous = turns.last;
  let done!: () => void;
  turns.last = new Promise<void>((resolve) => (done = resolve));
  try {
    await previous;
    await yieldToEventLoop();
    return keys.map((key) => store.readNow!(key));
  } finally {
    done();
  }
}

/** Reads and authenticates `count` chunks from `start` in one LevelDB read (or `readEachNow`) and one pool task. */
async function readGroup(
  store: KvStore,
  key: Uint8Array,
  indexId: Uint8Array,
  write: SnapshotWrite,
  section: SnapshotSection,
  chunks: number,
  start: number,
  count: number,
  /** A stream's: its chunks are read on this thread, one group per turn, into buffers of their own. */
  turns?: ReadTurns,
  checks?: ChunkChecks,
): Promise<Uint8Array[]> {
  const owned = turns !== undefined;
  const numbers = Array.from({ length: count }, (_, i) => start + i);
  const keys = numbers.map((i) => chunkKey(indexId, write.generation, section, i));
  const values = turns && store.readNow ? await readEachNow(store, keys, turns) : await store.getMany(keys, { fillCache: false });
  const missing = values.findIndex((value) => value === undefined);
  if (missing >= 0) throw new IntegrityError(`Snapshot ${section} chunk ${start + missing} of ${chunks} is missing.`);
  // Sole owners of their memory (a store may hand out views into shared buffers): copy those that are not.
  const sealed = (values as Uint8Array[]).map((value) =>
    owned && (value.byteOffset !== 0 || value.buffer.byteLength !== value.byteLength) ? new Uint8Array(value) : value,
  );
  // Checked as sealed (before the in-place decryption, in the same pool task): a signed manifest names these (`sectionHash`).
  const group = groupChecks(checks, count);
  const aads = numbers.map((i) => chunkAad(indexId, write, section, i, i === chunks - 1));
  const opened = await openInPlaceAsync(key, sealed, aads, (j) => `Snapshot ${section} chunk ${start + j}`, group);
  keepChecks(checks, group, numbers);
  return opened;
}
