/** Snapshot chunks: any drop, reorder, truncation or splice is caught (with a control). */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { open, seal } from '../src/crypto/aead.js';
import { KvStore, type BatchOp } from '../src/storage/kv-store.js';
import { CHUNK_BYTES, decodeSnapshot, encodeSnapshot, readSnapshot, sealSnapshot, type SnapshotTable } from '../src/storage/snapshot.js';
import { tempStore } from './support/helpers.js';

const key = randomBytes(32);
const indexId = randomBytes(16);
const graph = randomBytes(CHUNK_BYTES * 3 + 1234);
const table: SnapshotTable = { counter: 9, count: 2, digest: new Uint8Array(32).fill(3), ids: ['a', 'b'], keys: [1, 2], seqs: [4, 9], metadata: [{ a: 1 }, null] };

let store: KvStore;
let chunks: number;
let puts: Extract<BatchOp, { type: 'put' }>[];

beforeEach(async () => {
  store = await KvStore.open(join(tempStore(), 'store'));
  const sealed = await sealSnapshot(key, indexId, 5, encodeSnapshot(table, graph));
  chunks = sealed.chunks;
  puts = sealed.ops as typeof puts;
  await store.batch(puts);
});

afterEach(() => store.close());

const ref = () => ({ generation: 5, chunks, counter: 9 });
const read = () => readSnapshot(store, key, indexId, ref());

describe('encrypted snapshot chunks', () => {
  it('round-trip the table and graph bytes exactly', async () => {
    expect(chunks).toBe(4);
    const decoded = decodeSnapshot(await read());
    expect(decoded.table).toEqual({ ...table, digest: new Uint8Array(32).fill(3) });
    expect(Buffer.compare(decoded.graph, graph)).toBe(0);
  });

  it('dropping the last chunk (claiming fewer) → IntegrityError', async () => {
    await expect(readSnapshot(store, key, indexId, { ...ref(), chunks: chunks - 1 })).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
  });

  it('a missing chunk → IntegrityError', async () => {
    await store.batch([{ type: 'del', key: puts[1]!.key }]);
    await expect(read()).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
  });

  it('reordering chunks → IntegrityError', async () => {
    await store.batch([
      { type: 'put', key: puts[1]!.key, value: puts[2]!.value },
      { type: 'put', key: puts[2]!.key, value: puts[1]!.value },
    ]);
    await expect(read()).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
  });

  it('a truncated chunk → IntegrityError', async () => {
    await store.batch([{ type: 'put', key: puts[2]!.key, value: puts[2]!.value.subarray(0, 1000) }]);
    await expect(read()).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
  });

  it('a chunk spliced in from another generation → IntegrityError', async () => {
    const other = await sealSnapshot(key, indexId, 6, encodeSnapshot(table, graph));
    await store.batch([{ type: 'put', key: puts[0]!.key, value: (other.ops[0] as { value: Uint8Array }).value }]);
    await expect(read()).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
  });

  it('negative control: without chunk numbers in the AAD a reorder decrypts silently to the wrong graph', () => {
    const parts = [graph.subarray(0, CHUNK_BYTES), graph.subarray(CHUNK_BYTES, 2 * CHUNK_BYTES)];
    const weakAad = Buffer.from('snapshot');
    const sealed = parts.map((p) => seal(key, p, weakAad));
    const reordered = Buffer.concat([open(key, sealed[1]!, weakAad, 'x'), open(key, sealed[0]!, weakAad, 'x')]);
    expect(reordered.byteLength).toBe(2 * CHUNK_BYTES);
    expect(Buffer.compare(reordered, graph.subarray(0, 2 * CHUNK_BYTES))).not.toBe(0);
  });
});
