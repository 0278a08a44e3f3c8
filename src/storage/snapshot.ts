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
import { openInPlaceAsync, sealAsync } from '../crypto/bulk.js';
import { frame, u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import type { BatchOp, KvBackend as KvStore } from './kv-store.js';
import { indexKey, SNAPSHOT } from './layout.js';
import type { SnapshotRef } from './manifest.js';
import { decodeIdList, encodeIdList, pack, unpack } from './sealed.js';

export const CHUNK_BYTES = 1 << 20;
/** Chunks per LevelDB read and decrypt task: several run on the pool at once. */
const READ_GROUP = 8;
/** Chunks per seal task and LevelDB batch when writing. */
const WRITE_GROUP = 4;
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
  ids: string[];
  keys: ArrayLike<number>;
  seqs: ArrayLike<number>;
  /** Decrypted metadata per record (null when none), for the in-memory filter index. */
  metadata: unknown[];
}

/** A decoded table: metadata stays packed (in frames) until the filter index needs it. */
export interface DecodedTable extends Omit<SnapshotTable, 'metadata'> {
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

function bytesOf(array: Float64Array): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

/**
 * Table layout: u32 head length || msgpack head || f64 keys[n] || f64 seqs[n]
 * || id list (see encodeIdList) || metadata frames (their lengths are in the
 * head). Fixed-width columns decode in one copy each, the ids in one UTF-8 decode.
 * Yields between metadata frames: packing 100k objects takes tens of ms.
 */
export async function encodeTable(table: SnapshotTable): Promise<Buffer> {
  const n = table.ids.length;
  const ids = encodeIdList(table.ids);
  const frames: Buffer[] = [];
  for (let start = 0; start < n; start += METADATA_FRAME) {
    if (start > 0) await yieldToEventLoop();
    frames.push(pack(table.metadata.slice(start, start + METADATA_FRAME)));
  }
  const head = pack({ counter: table.counter, count: table.count, digest: table.digest, n, idBytes: ids.byteLength, frames: frames.map((f) => f.byteLength) });
  return Buffer.concat([u32(head.byteLength), head, bytesOf(Float64Array.from(table.keys)), bytesOf(Float64Array.from(table.seqs)), ids, ...frames]);
}

export function decodeTable(bytes: Buffer): DecodedTable {
  try {
    const headLength = bytes.readUInt32BE(0);
    const head = unpack(bytes.subarray(4, 4 + headLength)) as {
      counter: number;
      count: number;
      digest: Uint8Array;
      n: number;
      idBytes: number;
      frames: number[];
    };
    const { n } = head;
    let at = 4 + headLength;
    // Copies: the column offsets are not 8-byte aligned inside the buffer.
    const column = (out: Float64Array): Float64Array => {
      new Uint8Array(out.buffer).set(bytes.subarray(at, (at += out.byteLength)));
      return out;
    };
    const keys = column(new Float64Array(n));
    const seqs = column(new Float64Array(n));
    const ids = decodeIdList(bytes.subarray(at, (at += head.idBytes)), n);
    const metadataFrames = head.frames.map((length) => bytes.subarray(at, (at += length)));
    if (at !== bytes.byteLength) throw new Error('trailing bytes');
    return { counter: head.counter, count: head.count, digest: new Uint8Array(head.digest), ids, keys, seqs, metadataFrames };
  } catch (cause) {
    // Authenticated bytes that do not parse: written by a different format, never by us.
    throw new IntegrityError('The snapshot table of the index is malformed.', { cause });
  }
}

/** Metadata of one frame, in record order. */
export function unpackMetadataFrame(frameBytes: Uint8Array): unknown[] {
  return unpack(frameBytes) as unknown[];
}

/**
 * Seals one section on the libuv pool and writes its chunks ahead of the
 * commit, a few per LevelDB batch: one batch holding a whole graph made
 * LevelDB grow (and copy) its write buffer on the main thread, stalling the
 * event loop for 30–70 ms at a time. The chunks stay unreachable until the
 * commit's manifest names their generation and write id. Each batch is synced: LevelDB may
 * switch log files between them and the commit, and only a sync'd log is
 * safe from a power loss.
 */
export async function writeSection(
  store: KvStore,
  key: Uint8Array,
  indexId: Uint8Array,
  write: SnapshotWrite,
  section: SnapshotSection,
  payload: Uint8Array,
  /** Filled with the SHA-256 of each sealed chunk, in order (signed indexes: `sectionHash`). */
  digests?: Buffer[],
): Promise<number> {
  const chunks = Math.max(1, Math.ceil(payload.byteLength / CHUNK_BYTES));
  for (let start = 0; start < chunks; start += WRITE_GROUP) {
    const numbers = Array.from({ length: Math.min(WRITE_GROUP, chunks - start) }, (_, i) => start + i);
    const bodies = numbers.map((i) => payload.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES));
    const sealed = await sealAsync(
      key,
      bodies,
      numbers.map((i) => chunkAad(indexId, write, section, i, i === chunks - 1)),
    );
    if (digests) numbers.forEach((i, j) => (digests[i] = createHash('sha256').update(sealed[j]!).digest()));
    await store.batch(numbers.map((i, j) => ({ type: 'put', key: chunkKey(indexId, write.generation, section, i), value: sealed[j]! })));
  }
  return chunks;
}

/** A section's hash in a signed manifest: SHA-256 over its chunks' SHA-256s, in order. */
export function sectionHash(digests: Buffer[]): Buffer {
  const hash = createHash('sha256');
  for (const digest of digests) hash.update(digest);
  return hash.digest();
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
 * any gap, forgery or chunk of another write is an IntegrityError. Groups of chunks are read and decrypted on the
 * libuv pool, several at once: the main thread only collects them.
 */
export async function readSection(
  store: KvStore,
  key: Uint8Array,
  indexId: Uint8Array,
  write: SnapshotWrite,
  section: SnapshotSection,
  chunks: number,
  /** Filled with the SHA-256 of each sealed chunk as read, in order (signed indexes: `sectionHash`). */
  digests?: Buffer[],
): Promise<Uint8Array[]> {
  const groups: Promise<Uint8Array[]>[] = [];
  for (let start = 0; start < chunks; start += READ_GROUP) {
    const numbers = Array.from({ length: Math.min(READ_GROUP, chunks - start) }, (_, i) => start + i);
    const group = store
      .getMany(
        numbers.map((i) => chunkKey(indexId, write.generation, section, i)),
        { fillCache: false },
      )
      .then((values) => {
        const missing = values.findIndex((value) => value === undefined);
        if (missing >= 0) throw new IntegrityError(`Snapshot ${section} chunk ${start + missing} of ${chunks} is missing.`);
        if (digests) numbers.forEach((i, j) => (digests[i] = createHash('sha256').update(values[j]!).digest()));
        const aads = numbers.map((i) => chunkAad(indexId, write, section, i, i === chunks - 1));
        return openInPlaceAsync(key, values as Uint8Array[], aads, (j) => `Snapshot ${section} chunk ${start + j}`);
      });
    group.catch(() => undefined); // awaited in order below; an early failure must not leave later ones unhandled
    groups.push(group);
  }
  return (await Promise.all(groups)).flat();
}
