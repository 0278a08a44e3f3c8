/**
 * Encrypted graph snapshots. The payload (a table of live records plus the
 * engine's serialized graph) is cut into 1 MiB chunks, each sealed with
 * AES-256-GCM under the graph key; the AAD binds index id, generation, chunk
 * number and a last-chunk flag, so chunks cannot be dropped, reordered,
 * truncated or spliced in from another snapshot or index.
 */
import { open, seal } from '../crypto/aead.js';
import { frame, u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import type { BatchOp, KvStore } from './kv-store.js';
import { indexKey, SNAPSHOT } from './layout.js';
import { pack, unpack, type SnapshotRef } from './sealed.js';

export const CHUNK_BYTES = 1 << 20;

/** Which records the graph holds, so opening needs no record decryption. */
export interface SnapshotTable {
  /** Manifest counter the snapshot reflects. */
  counter: number;
  count: number;
  /** The manifest digest at that counter (see Manifest.digest). */
  digest: Uint8Array;
  ids: string[];
  keys: number[];
  seqs: number[];
  /** Decrypted metadata per record, for the in-memory filter index. */
  metadata: unknown[];
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function chunkKey(indexId: Uint8Array, generation: number, chunk: number): Buffer {
  return indexKey(indexId, SNAPSHOT, u64(generation), u32(chunk));
}

function chunkAad(indexId: Uint8Array, generation: number, chunk: number, last: boolean): Buffer {
  return frame('snapshot', indexId, u64(generation), u32(chunk), last ? 'last' : 'more');
}

/** payload = u32 table length || msgpack(table) || graph bytes. */
export function encodeSnapshot(table: SnapshotTable, graph: Uint8Array): Buffer[] {
  const head = pack(table);
  return [u32(head.byteLength), head, Buffer.from(graph.buffer, graph.byteOffset, graph.byteLength)];
}

export function decodeSnapshot(payload: Buffer): { table: SnapshotTable; graph: Buffer } {
  const length = payload.readUInt32BE(0);
  const table = unpack(payload.subarray(4, 4 + length)) as SnapshotTable;
  table.digest = new Uint8Array(table.digest);
  return { table, graph: payload.subarray(4 + length) };
}

/**
 * Seals `parts` (concatenated) into chunk puts. Yields to the event loop
 * between chunks: a large graph must not freeze the host while it is encrypted.
 */
export async function sealSnapshot(key: Uint8Array, indexId: Uint8Array, generation: number, parts: Buffer[]): Promise<{ ops: BatchOp[]; chunks: number }> {
  const payload = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  const chunks = Math.max(1, Math.ceil(payload.byteLength / CHUNK_BYTES));
  const ops: BatchOp[] = [];
  for (let i = 0; i < chunks; i++) {
    const body = payload.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES);
    ops.push({ type: 'put', key: chunkKey(indexId, generation, i), value: seal(key, body, chunkAad(indexId, generation, i, i === chunks - 1)) });
    if (i % 8 === 7) await yieldToEventLoop();
  }
  return { ops, chunks };
}

/** Deletes of every chunk of an older snapshot. */
export function dropSnapshotOps(indexId: Uint8Array, ref: SnapshotRef): BatchOp[] {
  return Array.from({ length: ref.chunks }, (_, i) => ({ type: 'del' as const, key: chunkKey(indexId, ref.generation, i) }));
}

/** Reads and authenticates every chunk of `ref`, in order; any gap or forgery is an IntegrityError. */
export async function readSnapshot(store: KvStore, key: Uint8Array, indexId: Uint8Array, ref: SnapshotRef): Promise<Buffer> {
  const values = await store.getMany(Array.from({ length: ref.chunks }, (_, i) => chunkKey(indexId, ref.generation, i)));
  const bodies: Buffer[] = [];
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value === undefined) throw new IntegrityError(`Snapshot chunk ${i} of ${ref.chunks} is missing.`);
    bodies.push(open(key, value, chunkAad(indexId, ref.generation, i, i === ref.chunks - 1), `Snapshot chunk ${i}`));
    if (i % 8 === 7) await yieldToEventLoop();
  }
  return Buffer.concat(bodies);
}
