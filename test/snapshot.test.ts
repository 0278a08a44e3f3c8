/** Snapshot chunks: any drop, reorder, truncation, section swap or splice (from another generation or another write of the same one) is caught (with a control); the table round-trips. */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { open, seal } from '../src/crypto/aead.js';
import { IndexStore } from '../src/storage/index-store.js';
import { KvStore, type BatchOp } from '../src/storage/kv-store.js';
import { frame, u64 } from '../src/crypto/kdf.js';
import { indexKey, kindRange, SNAPSHOT } from '../src/storage/layout.js';
import {
  CHUNK_BYTES,
  clearGeneration,
  decodeTable,
  encodeTable,
  hasValidWriteId,
  newSnapshotWrite,
  readSection,
  readSectionStream,
  unpackMetadataFrame,
  writeSection,
  writeSectionStream,
  type SnapshotTable,
} from '../src/storage/snapshot.js';
import { openFresh, reopen } from './support/fixtures.js';
import { tempStore } from './support/helpers.js';

const key = randomBytes(32);
const indexId = randomBytes(16);
const gen5 = newSnapshotWrite(5);
const gen6 = newSnapshotWrite(6);
const graph = randomBytes(CHUNK_BYTES * 3 + 1234);

let store: KvStore;
let chunks: number;
let puts: Extract<BatchOp, { type: 'put' }>[];

/** Every snapshot chunk in the store, in key order (generation, section, chunk). */
async function storedChunks(): Promise<{ key: Uint8Array; value: Uint8Array }[]> {
  const out: { key: Uint8Array; value: Uint8Array }[] = [];
  for await (const [k, v] of store.entries(kindRange(indexId, SNAPSHOT))) out.push({ key: k, value: v });
  return out;
}

beforeEach(async () => {
  store = await KvStore.open(join(tempStore(), 'store'));
  chunks = await writeSection(store, key, indexId, gen5, 'graph', graph);
  puts = (await storedChunks()).map((c) => ({ type: 'put' as const, ...c }));
});

afterEach(() => store.close());

const read = (claimed = chunks) => readSection(store, key, indexId, gen5, 'graph', claimed);

/** Hands `bytes` to a sink in CHUNK_BYTES pieces through 8 reused buffers, as the engine's serializeTo does (a buffer is refilled once its chunk's promise resolved). */
function producerOf(bytes: Uint8Array) {
  return async (chunkBytes: number, sink: (chunk: Uint8Array, index: number, last: boolean) => Promise<void>) => {
    const buffers = Array.from({ length: 8 }, () => ({ bytes: new Uint8Array(chunkBytes), free: Promise.resolve() }));
    const pending: Promise<void>[] = [];
    for (let at = 0, i = 0; at < bytes.length; at += chunkBytes, i++) {
      const slot = buffers[i % 8]!;
      await slot.free;
      const piece = bytes.subarray(at, at + chunkBytes);
      slot.bytes.set(piece);
      slot.free = sink(slot.bytes.subarray(0, piece.length), i, at + chunkBytes >= bytes.length);
      pending.push(slot.free);
    }
    await Promise.all(pending);
  };
}

describe('streamed snapshot sections', () => {
  it('writeSectionStream writes the same chunks as writeSection; readSectionStream yields them, each owning its buffer', async () => {
    const written = await writeSectionStream(store, key, indexId, gen6, 'graph', producerOf(graph));
    expect(written).toBe(chunks);
    const streamed: Uint8Array[] = [];
    for await (const chunk of readSectionStream(store, key, indexId, gen6, 'graph', written)) streamed.push(chunk);
    expect(Buffer.compare(Buffer.concat(streamed), graph)).toBe(0);
    expect(new Set(streamed.map((c) => c.buffer)).size).toBe(streamed.length);
    expect(Buffer.compare(Buffer.concat(await readSection(store, key, indexId, gen6, 'graph', written)), graph)).toBe(0);
  });

  it('writeSection of parts writes the chunks of their joined bytes, across parts and reused buffers', async () => {
    // Uneven parts, empty ones among them, a part spanning several chunks: 10 chunks, so each of the writer's
    // reused buffers is refilled (a buffer refilled before its chunk was sealed would corrupt an earlier chunk).
    const joined = randomBytes(CHUNK_BYTES * 9 + 777);
    const cuts = [0, 0, 5, 5, 100_000, CHUNK_BYTES, CHUNK_BYTES * 4 + 3, CHUNK_BYTES * 4 + 3, CHUNK_BYTES * 7, joined.length];
    const parts = cuts.slice(1).map((end, i) => joined.subarray(cuts[i], end));
    expect(parts.filter((p) => p.length === 0).length).toBe(3);
    const written = await writeSection(store, key, indexId, gen6, 'table', parts);
    expect(written).toBe(10);
    const read = await readSection(store, key, indexId, gen6, 'table', written);
    expect(read.map((c) => c.length)).toEqual([...Array(9).fill(CHUNK_BYTES), 777]);
    expect(Buffer.compare(Buffer.concat(read), joined)).toBe(0);
    // Every part empty: one empty last chunk, as for an empty payload.
    const gen7 = newSnapshotWrite(7);
    expect(await writeSection(store, key, indexId, gen7, 'table', [new Uint8Array(0), new Uint8Array(0)])).toBe(1);
    expect((await readSection(store, key, indexId, gen7, 'table', 1)).map((c) => c.length)).toEqual([0]);
  });

  it("reads a stream's chunks one group per event-loop turn, in order (never a whole refill in one turn)", async () => {
    // Event-loop iterations counted by an immediate that schedules itself: reads in one iteration see one value.
    let turn = 0;
    let counting = true;
    const tick = () => {
      turn++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    const reads: { turn: number; key: string }[] = [];
    const counted = Object.create(store) as KvStore;
    counted.readNow = (k) => (reads.push({ turn, key: Buffer.from(k).toString('hex') }), store.readNow(k));
    const streamed: Uint8Array[] = [];
    for await (const chunk of readSectionStream(counted, key, indexId, gen5, 'graph', chunks)) streamed.push(chunk);
    counting = false;
    expect(Buffer.compare(Buffer.concat(streamed), graph)).toBe(0);
    expect(chunks).toBe(4); // groups of 1, 2 and 1 chunks, all asked for at once by the first refill
    expect(reads.map((r) => r.key)).toEqual(reads.map((r) => r.key).sort());
    const perTurn = new Map<number, number>();
    for (const { turn: t } of reads) perTurn.set(t, (perTurn.get(t) ?? 0) + 1);
    expect([...perTurn.values()]).toEqual([1, 2, 1]);
  });

  it("a read that fails mid-stream fails the stream and still hands the turn on (the next group's read runs)", async () => {
    const reads: number[] = [];
    const failing = Object.create(store) as KvStore;
    failing.readNow = (k) => {
      const chunk = Buffer.from(k).readUInt32BE(k.byteLength - 4);
      reads.push(chunk);
      if (chunk === 1) throw new Error('disk gone');
      return store.readNow(k);
    };
    const consume = async () => {
      for await (const chunk of readSectionStream(failing, key, indexId, gen5, 'graph', chunks)) void chunk;
    };
    await expect(consume()).rejects.toThrow('disk gone');
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(reads).toEqual([0, 1, 3]); // group [1, 2] failed at 1; group [3] still read in its turn
  });

  it('reads each chunk once on the calling thread where the store can (KvStore.readNow), else through getMany: the same bytes either way', async () => {
    const calls = { readNow: 0, getMany: 0 };
    const counted = Object.create(store) as KvStore;
    counted.readNow = (k) => (calls.readNow++, store.readNow(k));
    counted.getMany = (keys, options) => (calls.getMany++, store.getMany(keys, options));
    const viaReadNow: Uint8Array[] = [];
    for await (const chunk of readSectionStream(counted, key, indexId, gen5, 'graph', chunks)) viaReadNow.push(chunk);
    expect(calls).toEqual({ readNow: chunks, getMany: 0 });
    // A backend without it (PostgreSQL): the pool read, as before.
    const remoteLike = Object.create(counted) as KvStore & { readNow?: unknown };
    Object.defineProperty(remoteLike, 'readNow', { value: undefined });
    const viaGetMany: Uint8Array[] = [];
    for await (const chunk of readSectionStream(remoteLike, key, indexId, gen5, 'graph', chunks)) viaGetMany.push(chunk);
    expect(calls.getMany).toBeGreaterThan(0);
    expect(calls.readNow).toBe(chunks);
    // readSection too: through the stream where readNow exists, one pool read per group where it does not.
    expect(Buffer.compare(Buffer.concat(await readSection(counted, key, indexId, gen5, 'graph', chunks)), graph)).toBe(0);
    expect(calls.readNow).toBe(2 * chunks);
    const getManys = calls.getMany;
    expect(Buffer.compare(Buffer.concat(await readSection(remoteLike, key, indexId, gen5, 'graph', chunks)), graph)).toBe(0);
    expect(calls).toEqual({ readNow: 2 * chunks, getMany: getManys + 1 });
    for (const streamed of [viaReadNow, viaGetMany]) {
      expect(Buffer.compare(Buffer.concat(streamed), graph)).toBe(0);
      // Each chunk is a view of a buffer of its own: the engine detaches a chunk's buffer once it has read it.
      expect(new Set(streamed.map((c) => c.buffer)).size).toBe(streamed.length);
    }
    // readNow's value owns its memory outright (what the stream relies on to decrypt it in place, then detach it).
    const value = store.readNow(puts[0]!.key)!;
    expect(value.byteOffset).toBe(0);
    expect(value.buffer.byteLength).toBe(value.byteLength);
    expect(store.readNow(Buffer.from('absent'))).toBeUndefined();
  });

  it('reads the chunks in order, at most the groups in flight (1 + 3 × 2 chunks) per event-loop turn', async () => {
    const many = randomBytes(CHUNK_BYTES * 12 + 5);
    const written = await writeSection(store, key, indexId, gen6, 'graph', many);
    let turn = 0;
    let stop = false;
    const tick = () => {
      turn++;
      if (!stop) setImmediate(tick);
    };
    setImmediate(tick);
    const reads: { chunk: number; turn: number }[] = [];
    const counted = Object.create(store) as KvStore;
    counted.readNow = (k) => (reads.push({ chunk: Buffer.from(k).readUInt32BE(k.byteLength - 4), turn }), store.readNow(k));
    const streamed: Uint8Array[] = [];
    try {
      for await (const chunk of readSectionStream(counted, key, indexId, gen6, 'graph', written)) streamed.push(chunk);
    } finally {
      stop = true;
    }
    expect(Buffer.compare(Buffer.concat(streamed), many)).toBe(0);
    // In chunk order: read side by side, the groups in flight took turns (0, 2, 4, 6, 1, 3, …) and the first group's
    // decryption waited for every other group's first read.
    expect(reads.map((r) => r.chunk)).toEqual(Array.from({ length: written }, (_, i) => i));
    const perTurn = new Map<number, number>();
    for (const r of reads) perTurn.set(r.turn, (perTurn.get(r.turn) ?? 0) + 1);
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(7); // STREAM_DEPTH groups in flight: 1 + 3 × STREAM_GROUP
  });

  it('a missing chunk fails the stream after the chunks before it, none after: only authenticated bytes are yielded', async () => {
    await store.batch([{ type: 'del', key: puts[2]!.key }]);
    const yielded: Uint8Array[] = [];
    const reading = (async () => {
      for await (const chunk of readSectionStream(store, key, indexId, gen5, 'graph', chunks)) yielded.push(chunk);
    })();
    await expect(reading).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY', message: expect.stringContaining('chunk 2') });
    expect(yielded.length).toBeLessThanOrEqual(2);
    yielded.forEach((chunk, i) => expect(Buffer.compare(chunk, graph.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES))).toBe(0));
  });

  it('a tampered chunk fails the stream with IntegrityError; a failing write rejects instead of hanging', async () => {
    const stored = await storedChunks();
    const tampered = Buffer.from(stored[2]!.value);
    tampered[40]! ^= 1; // flipped, not set: the ciphertext is random, so setting a byte left it unchanged 1 time in 256
    await store.batch([{ type: 'put', key: stored[2]!.key, value: tampered }]);
    const reading = (async () => {
      for await (const chunk of readSectionStream(store, key, indexId, gen5, 'graph', chunks)) void chunk;
    })();
    await expect(reading).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    const other = await KvStore.open(join(tempStore(), 'store'));
    await other.close(); // every write now fails
    await expect(writeSectionStream(other, key, indexId, gen6, 'graph', producerOf(graph))).rejects.toBeDefined();
  });
});

describe('encrypted snapshot chunks', () => {
  it('round-trip the graph bytes exactly', async () => {
    expect(chunks).toBe(4);
    expect(puts).toHaveLength(4);
    expect(Buffer.compare(Buffer.concat(await read()), graph)).toBe(0);
  });

  it('dropping the last chunk (claiming fewer) → IntegrityError', async () => {
    await expect(read(chunks - 1)).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
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
    await writeSection(store, key, indexId, gen6, 'graph', graph);
    const other = (await storedChunks()).find((c) => Buffer.compare(Buffer.from(c.key), Buffer.from(puts[3]!.key)) > 0)!;
    await store.batch([{ type: 'put', key: puts[0]!.key, value: other.value }]);
    await expect(read()).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
  });

  it('a chunk moved from the table section into the graph section → IntegrityError', async () => {
    await writeSection(store, key, indexId, gen5, 'table', graph.subarray(0, 100));
    const table = (await storedChunks()).find((c) => !puts.some((p) => Buffer.compare(Buffer.from(p.key), Buffer.from(c.key)) === 0))!;
    await store.batch([{ type: 'put', key: puts[3]!.key, value: table.value }]);
    await expect(read()).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
  });

  it('control: the chunks moved above are valid where they were sealed, so only their position binding rejects them', async () => {
    await writeSection(store, key, indexId, gen6, 'graph', graph);
    expect(Buffer.compare(Buffer.concat(await readSection(store, key, indexId, gen6, 'graph', 4)), graph)).toBe(0);
    await writeSection(store, key, indexId, gen5, 'table', graph.subarray(0, 100));
    expect(Buffer.compare(Buffer.concat(await readSection(store, key, indexId, gen5, 'table', 1)), graph.subarray(0, 100))).toBe(0);
    // And a truncated read (claiming fewer chunks) only fails because chunk 2 is not flagged last.
    await expect(read(chunks - 1)).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    expect(await read()).toHaveLength(chunks);
  });

  it('clearGeneration removes what an uncommitted write left under one generation, and nothing else', async () => {
    await writeSection(store, key, indexId, gen6, 'graph', graph.subarray(0, 3 * CHUNK_BYTES));
    expect(await storedChunks()).toHaveLength(7);
    await clearGeneration(store, indexId, 6);
    expect((await storedChunks()).map((c) => Buffer.from(c.key).toString('hex'))).toEqual(puts.map((p) => Buffer.from(p.key).toString('hex')));
    expect(Buffer.compare(Buffer.concat(await read()), graph)).toBe(0);
  });

  it('a chunk from another write of the same generation (one whose commit failed) → IntegrityError', async () => {
    const other = newSnapshotWrite(5); // same generation, same keys, another write id
    await writeSection(store, key, indexId, other, 'graph', graph);
    const otherChunks = await storedChunks();
    expect(otherChunks.map((c) => Buffer.from(c.key).toString('hex'))).toEqual(puts.map((p) => Buffer.from(p.key).toString('hex')));
    // Control: the other write's chunks are valid for that write.
    expect(Buffer.compare(Buffer.concat(await readSection(store, key, indexId, other, 'graph', chunks)), graph)).toBe(0);
    // One of its chunks among the first write's, then all of them: both rejected under the first write's id.
    await store.batch(puts.map((p, i) => (i === 2 ? { ...p, value: otherChunks[2]!.value } : p)));
    await expect(read()).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    await store.batch(otherChunks.map((c) => ({ type: 'put', ...c })));
    await expect(read()).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    await store.batch(puts);
    expect(Buffer.compare(Buffer.concat(await read()), graph)).toBe(0);
  });

  it('the chunk AAD is pinned: frame(snapshot, index id, generation, write id, section, chunk, flag), and without a write id the format before it', async () => {
    const body = randomBytes(100);
    const at = (generation: number) => indexKey(indexId, SNAPSHOT, u64(generation), Buffer.of(0x47), Buffer.of(0, 0, 0, 0));
    const legacy = { generation: 7 };
    await store.batch([
      { type: 'put', key: at(7), value: seal(key, body, frame('snapshot', indexId, u64(7), 'graph', Buffer.of(0, 0, 0, 0), 'last')) },
      { type: 'put', key: at(8), value: seal(key, body, frame('snapshot', indexId, u64(8), gen5.writeId, 'graph', Buffer.of(0, 0, 0, 0), 'last')) },
    ]);
    expect(Buffer.compare(Buffer.concat(await readSection(store, key, indexId, legacy, 'graph', 1)), body)).toBe(0);
    expect(Buffer.compare(Buffer.concat(await readSection(store, key, indexId, { generation: 8, writeId: gen5.writeId }, 'graph', 1)), body)).toBe(0);
    // A write id must match, and a reference without one never accepts a chunk sealed with one (or the reverse).
    await expect(readSection(store, key, indexId, { generation: 7, writeId: gen5.writeId }, 'graph', 1)).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    await expect(readSection(store, key, indexId, { generation: 8 }, 'graph', 1)).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    await expect(readSection(store, key, indexId, { generation: 8, writeId: gen6.writeId }, 'graph', 1)).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    // writeSection without a write id seals exactly the old format (how tests build a store of the previous release).
    await writeSection(store, key, indexId, { generation: 9 }, 'graph', body);
    const [old] = await readSection(store, key, indexId, { generation: 9 }, 'graph', 1);
    expect(Buffer.compare(Buffer.from(old!), body)).toBe(0);
    const raw = (await storedChunks()).find((c) => Buffer.compare(Buffer.from(c.key), at(9)) === 0)!;
    expect(Buffer.compare(open(key, raw.value, frame('snapshot', indexId, u64(9), 'graph', Buffer.of(0, 0, 0, 0), 'last'), 'x'), body)).toBe(0);
  });

  it('write ids are 16 random bytes, new for every write; a reference checks as valid with one or none, not with another length', () => {
    const a = newSnapshotWrite(3);
    const b = newSnapshotWrite(3);
    expect(a.writeId.byteLength).toBe(16);
    expect(Buffer.compare(Buffer.from(a.writeId), Buffer.from(b.writeId))).not.toBe(0);
    expect([hasValidWriteId(a), hasValidWriteId({ generation: 3 })]).toEqual([true, true]);
    expect(hasValidWriteId({ generation: 3, writeId: new Uint8Array(15) })).toBe(false);
    expect(hasValidWriteId({ generation: 3, writeId: 'x' as unknown as Uint8Array })).toBe(false);
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

describe('snapshot table encoding', () => {
  it('round-trips ids (any Unicode, empty metadata), keys, seqs and metadata across frames', async () => {
    const n = 10_000; // more than one metadata frame
    const ids = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? `ü-${i}-😀` : i % 3 === 1 ? `\u0000${i}` : `id${i}`));
    const keys = Array.from({ length: n }, (_, i) => (i * 0xb5297) % 2 ** 48);
    const seqs = Array.from({ length: n }, (_, i) => i + 2 ** 40);
    const metadata = Array.from({ length: n }, (_, i) => (i % 2 ? { bucket: i, tags: ['a', 'b'], nested: { x: i / 3 } } : null));
    const table: SnapshotTable = { counter: 9, count: n, digest: new Uint8Array(32).fill(3), ids, keys, seqs, metadata };
    const decoded = decodeTable(await encodeTable(table));
    expect(decoded.ids).toEqual(ids);
    expect(Array.from(decoded.keys)).toEqual(keys);
    expect(Array.from(decoded.seqs)).toEqual(seqs);
    expect(decoded.digest).toEqual(new Uint8Array(32).fill(3));
    expect([decoded.counter, decoded.count]).toEqual([9, n]);
    expect(decoded.metadataFrames.length).toBeGreaterThan(1);
    expect(decoded.metadataFrames.flatMap((f) => unpackMetadataFrame(f))).toEqual(metadata);
  });

  it('metadata looked up by row encodes byte for byte as the same metadata in an array, asked once per row in order', async () => {
    const n = 2 * 4_096 + 1; // two whole frames and one row
    const metadata = Array.from({ length: n }, (_, i) => (i % 5 ? { bucket: i % 7, note: `n${i}` } : null));
    const base = {
      counter: 3,
      count: n,
      digest: new Uint8Array(32).fill(1),
      ids: Array.from({ length: n }, (_, i) => `id${i}`),
      keys: Array.from({ length: n }, (_, i) => i),
      seqs: Array.from({ length: n }, (_, i) => i + 1),
    };
    const asked: number[] = [];
    const lookup = (row: number) => {
      asked.push(row);
      return metadata[row];
    };
    const fromArray = await encodeTable({ ...base, metadata });
    const fromLookup = await encodeTable({ ...base, metadata: lookup });
    expect(fromLookup.equals(fromArray)).toBe(true);
    expect(asked).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(decodeTable(fromLookup).metadataFrames.map((f) => unpackMetadataFrame(f).length)).toEqual([4_096, 4_096, 1]);
  });

  it('a table with trailing or missing bytes → IntegrityError', async () => {
    const bytes = await encodeTable({ counter: 1, count: 1, digest: new Uint8Array(32), ids: ['a'], keys: [1], seqs: [1], metadata: [null] });
    expect(() => decodeTable(Buffer.concat([bytes, Buffer.of(0)]))).toThrow(expect.objectContaining({ code: 'VECVAULT_INTEGRITY' }));
    expect(() => decodeTable(bytes.subarray(0, bytes.byteLength - 3))).toThrow(expect.objectContaining({ code: 'VECVAULT_INTEGRITY' }));
  });
});

describe('snapshot metadata through the index', () => {
  it('records without metadata still match negative filters after a reload from the snapshot', async () => {
    const fresh = await openFresh({ indexName: 'x', dimension: 2 });
    let { client, index } = fresh;
    await index.upsert([
      { id: 'nometa', vector: [1, 2] },
      { id: 'meta', vector: [2, 1], metadata: { f: 1 } },
    ]);
    const check = async () => {
      expect((await index.listIds({ filters: { f: { $exists: false } } })).ids).toEqual(['nometa']);
      expect((await index.listIds({ filters: { f: { $ne: 1 } } })).ids).toEqual(['nometa']);
    };
    await check();
    await client.close();
    ({ client, index } = await reopen(fresh.path, fresh.key, 'x'));
    expect(index.stats().openedFrom).toBe('snapshot');
    await check();
  });
});

describe('a snapshot that fails at close', () => {
  it('warns VECVAULT_SNAPSHOT_FAILED, still closes, and the next open replays every write', async () => {
    const { path, key, client, index } = await openFresh({ dimension: 4 });
    await index.upsert({
      ids: ['a', 'b'],
      vectors: [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
      ],
    });
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? '');
    process.on('warning', onWarning);
    const commit = vi
      .spyOn(IndexStore.prototype, 'commitSnapshot')
      .mockRejectedValueOnce(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }));
    try {
      await client.close();
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    } finally {
      commit.mockRestore();
      process.off('warning', onWarning);
    }
    expect(warnings).toContain('VECVAULT_SNAPSHOT_FAILED');
    const again = await reopen(path, key);
    expect(again.index.stats()).toMatchObject({ count: 2, snapshotGeneration: 0, changesSinceSnapshot: 2 });
    expect((await again.index.listIds()).ids.sort()).toEqual(['a', 'b']);
  });
});
