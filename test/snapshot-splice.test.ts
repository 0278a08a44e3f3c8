/**
 * Security review, finding 1: snapshot chunks saved from a failed snapshot
 * write must not authenticate in place of the committed write that later
 * reuses its generation number.
 *
 * The attack, through the public API and raw LevelDB access only: a snapshot
 * (generation 2) fails at its commit (disk full during close(): its chunks
 * are on disk, the manifest still names generation 1); someone with write
 * access to the store directory keeps those chunk values; the next snapshot
 * commits generation 2 with more records; the kept graph chunks are planted
 * back under the same keys.
 *
 * Closed by a random write id per snapshot write, bound into every chunk's
 * AAD and named by the manifest's SnapshotRef, and, behind it, by a check on
 * open that the engine holds exactly the table's live keys (which also covers
 * snapshots written before write ids, read with their old AAD).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { EncryptedIndex } from '../src/index.js';
import { nativeEngine } from '../src/engine/native.js';
import { deriveIndexKeys, openEnvelope } from '../src/keys/envelope.js';
import { IndexStore } from '../src/storage/index-store.js';
import { KvStore } from '../src/storage/kv-store.js';
import { indexKey, MANIFEST } from '../src/storage/layout.js';
import { sealManifest, type SnapshotRef } from '../src/storage/manifest.js';
import { makeUnsigned } from './support/unsigned.js';
import { clearGeneration, writeSection } from '../src/storage/snapshot.js';
import { Store } from '../src/storage/store.js';
import { openFresh, reopen } from './support/fixtures.js';
import { rawStore } from './support/helpers.js';
import { randomVectors } from './support/vectors.js';

const DIM = 8;
const SNAPSHOT_KIND = 0x53; // 'S'
const GRAPH_SECTION = 0x47; // 'G'

/** Snapshot chunks of `generation` in the raw store: key ('I' ‖ index id ‖ 'S' ‖ generation ‖ section ‖ chunk) → value. */
async function rawChunks(path: string, generation: number): Promise<{ key: Uint8Array; value: Uint8Array; section: number }[]> {
  const db = await rawStore(path);
  const out: { key: Uint8Array; value: Uint8Array; section: number }[] = [];
  try {
    for await (const [key, value] of db.iterator()) {
      if (key[0] === 0x49 && key[17] === SNAPSHOT_KIND && Number(Buffer.from(key).readBigUInt64BE(18)) === generation)
        out.push({ key, value, section: key[26]! });
    }
  } finally {
    await db.close();
  }
  return out;
}

async function putRaw(path: string, entries: { key: Uint8Array; value: Uint8Array }[]): Promise<void> {
  const db = await rawStore(path);
  try {
    await db.batch(entries.map(({ key, value }) => ({ type: 'put' as const, key, value })));
  } finally {
    await db.close();
  }
}

/**
 * How many of `ids` a query with their own vector finds among its 10 nearest
 * (a graph search). HNSW can leave a rare node unreachable whatever the ef
 * (about 1 in 3,000 in most builds of these 3,000 vectors, but a parallel
 * build on a loaded machine once left 3 of the 100), so a healthy graph finds
 * at least 95 of 100; a graph without the records finds none. `inEngine` is
 * the exact presence check.
 */
async function foundByOwnVector(index: EncryptedIndex, ids: string[], vectors: number[][]): Promise<number> {
  const { results } = await index.query({ queryVectors: vectors, topK: 10 });
  return (results as { id: string }[][]).filter((hits, i) => hits.some((hit) => hit.id === ids[i])).length;
}

/**
 * How many of the records of `batch` (ids, vectors) the engine holds: a query
 * with their own vector filtered to their batch (few matches: an exact scan of
 * the matching keys in the engine) finds exactly those it holds.
 */
async function inEngine(index: EncryptedIndex, set: { ids: string[]; vectors: number[][]; metadata: { batch: string }[] }, n = 100): Promise<number> {
  const { results } = await index.query({ queryVectors: set.vectors.slice(0, n), topK: 1, filters: { batch: set.metadata[0]!.batch } });
  return (results as { id: string }[][]).filter((hits, i) => hits[0]?.id === set.ids[i]).length;
}

/** Process warning codes emitted while `fn` runs (and just after). */
async function warningsDuring<T>(fn: () => Promise<T>): Promise<{ value: T; warnings: string[] }> {
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? '');
  process.on('warning', onWarning);
  try {
    const value = await fn();
    await new Promise((r) => setTimeout(r, 10)); // warnings are delivered on a later tick
    return { value, warnings };
  } finally {
    process.off('warning', onWarning);
  }
}

/** Records `${batch}0`, `${batch}1`, … with random vectors and metadata { batch }. */
const records = (batch: string, n: number, seed: number) => ({
  ids: Array.from({ length: n }, (_, i) => `${batch}${i}`),
  vectors: randomVectors(n, DIM, seed),
  metadata: Array.from({ length: n }, () => ({ batch })),
});
const early = records('a', 2000, 1);
const middle = records('b', 900, 2);
const late = records('c', 100, 3);

/**
 * The store of a closed index, bound to it with its key (the module functions the Client uses).
 * Snapshots without write ids come from releases before signed commits, so the index is first
 * turned into the unsigned index such a release made (support/unsigned.ts).
 */
async function indexStoreOf(path: string, key: Uint8Array, name = 'test'): Promise<{ store: Store; index: IndexStore }> {
  await makeUnsigned(path, name, key);
  const store = await Store.open(path);
  const entry = (await store.catalogEntry(name))!;
  const dek = openEnvelope(key, name, entry);
  return { store, index: store.forIndex(name, entry.indexId, deriveIndexKeys(dek, entry.indexId)) };
}

/** The committed manifest's snapshot reference of a closed index. */
async function committedRef(path: string, key: Uint8Array): Promise<SnapshotRef> {
  const { store, index } = await indexStoreOf(path, key);
  try {
    return (await index.readManifest()).snapshot!;
  } finally {
    await store.close();
  }
}

/**
 * Rewrites a closed index's committed snapshot the way the previous release
 * wrote it: chunks sealed with the AAD without a write id, and a SnapshotRef
 * without `writeId`. The graph section is `graph` when given (what an old
 * store holds after the splice), else the committed one.
 */
async function asPreviousRelease(path: string, key: Uint8Array, graph?: Uint8Array): Promise<void> {
  const { store, index } = await indexStoreOf(path, key);
  const manifest = await index.readManifest();
  const ref = manifest.snapshot!;
  const committedGraph = Buffer.concat(await index.readSnapshot(ref, 'graph'));
  const table = Buffer.concat(await index.readSnapshot(ref, 'table'));
  await store.close();
  const kv = await KvStore.open(join(path, 'store'));
  try {
    const old = { generation: ref.generation };
    await clearGeneration(kv, index.indexId, ref.generation);
    const graphChunks = await writeSection(kv, index.keys.graph, index.indexId, old, 'graph', graph ?? committedGraph);
    const tableChunks = await writeSection(kv, index.keys.graph, index.indexId, old, 'table', table);
    const snapshot: SnapshotRef = { generation: ref.generation, graphChunks, tableChunks, counter: ref.counter };
    await kv.batch([
      { type: 'put', key: indexKey(index.indexId, MANIFEST), value: sealManifest(index.keys.manifest, index.indexId, { ...manifest, snapshot }) },
    ]);
  } finally {
    await kv.close();
  }
}

/**
 * 2,000 records and a committed snapshot (generation 1); 900 more; close()
 * fails at the snapshot's commit (generation 2, 2,900 records: its chunks stay
 * on disk, uncommitted), and the attacker keeps that write's chunk values.
 * Reopen (snapshot 1 + change log), `afterFailed` (by default 100 more
 * records), close(): generation 2 is committed again.
 */
async function failedThenCommitted(afterFailed: (index: EncryptedIndex) => Promise<unknown> = (index) => index.upsert(late)) {
  const fresh = await openFresh({ dimension: DIM });
  const { path, key } = fresh;
  let { client, index } = fresh;
  await index.upsert(early);
  await index.snapshot();
  await index.upsert(middle);
  let failedRef: SnapshotRef | null = null;
  const commit = vi.spyOn(IndexStore.prototype, 'commitSnapshot').mockImplementationOnce(async (next) => {
    failedRef = next.snapshot;
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  });
  await client.close(); // the snapshot fails; close() still releases the store
  expect(commit).toHaveBeenCalledTimes(1);
  commit.mockRestore();
  const failed = await rawChunks(path, 2);
  expect(failed.length).toBeGreaterThanOrEqual(2); // graph and table chunks of the failed write
  // The failed write's graph in plaintext (its reference was never committed), for the old-format splice below.
  const { store, index: indexStore } = await indexStoreOf(path, key);
  const failedGraph = Buffer.concat(await indexStore.readSnapshot(failedRef!, 'graph'));
  await store.close();

  ({ client, index } = await reopen(path, key));
  expect(index.stats()).toMatchObject({ openedFrom: 'snapshot', snapshotGeneration: 1, count: 2900 });
  await afterFailed(index);
  await client.close();
  const committed = await rawChunks(path, 2);
  return { path, key, failed, committed, failedRef: failedRef! as SnapshotRef, failedGraph };
}

/** Reopens with warnings recorded. */
async function reopenWatched(path: string, key: Uint8Array) {
  const { value, warnings } = await warningsDuring(() => reopen(path, key));
  return { ...value, warnings };
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

afterEach(() => vi.restoreAllMocks());

describe('snapshot chunks from a failed write of the same generation', () => {
  // Before the fix (commit 9b39a92 has this test as it.fails) the index opened
  // from the snapshot silently: count 3000 and all 3,000 ids listed, get()
  // returned the late records, yet exact-vector queries found 0/100 of them
  // (the planted graph holds only the failed write's 2,900 vectors).
  it('planted after the next snapshot of that generation committed: rebuild with a warning, every record found', async () => {
    const { path, key, failed, committed } = await failedThenCommitted();
    const failedGraph = failed.filter((c) => c.section === GRAPH_SECTION);
    // Same keys, different values: the failed write's graph chunks are planted over the committed ones.
    expect(failedGraph.map((c) => hex(c.key))).toEqual(committed.filter((c) => c.section === GRAPH_SECTION).map((c) => hex(c.key)));
    await putRaw(path, failedGraph);

    const { client, index, warnings } = await reopenWatched(path, key);
    expect(warnings).toContain('VECVAULT_SNAPSHOT_REBUILD');
    expect(index.stats()).toMatchObject({ openedFrom: 'rebuild', count: 3000 });
    expect((await index.listIds()).count).toBe(3000);
    expect((await index.get({ ids: late.ids, include: ['vector'] })).filter((r) => r.vector !== undefined)).toHaveLength(100);
    expect(await inEngine(index, late)).toBe(100);
    expect(await foundByOwnVector(index, late.ids, late.vectors)).toBeGreaterThanOrEqual(95);
    expect(await inEngine(index, middle, 900)).toBe(900);
    // The rebuilt graph is snapshotted on close; the next open uses it.
    await client.close();
    const again = await reopenWatched(path, key);
    expect(again.warnings).not.toContain('VECVAULT_SNAPSHOT_REBUILD');
    expect(again.index.stats()).toMatchObject({ openedFrom: 'snapshot', snapshotGeneration: 3, count: 3000 });
    expect(await inEngine(again.index, late)).toBe(100);
  });

  it('both sections of the failed write planted: rebuild with a warning, every record found', async () => {
    const { path, key, failed, committed } = await failedThenCommitted();
    expect(failed.map((c) => hex(c.key))).toEqual(committed.map((c) => hex(c.key)));
    await putRaw(path, failed);
    const { index, warnings } = await reopenWatched(path, key);
    expect(warnings).toContain('VECVAULT_SNAPSHOT_REBUILD');
    expect(index.stats()).toMatchObject({ openedFrom: 'rebuild', count: 3000 });
    expect(await inEngine(index, late)).toBe(100);
    expect(await foundByOwnVector(index, late.ids, late.vectors)).toBeGreaterThanOrEqual(95);
  });

  it('control: the committed chunks put back as they were open from the snapshot, no warning', async () => {
    const { path, key, committed } = await failedThenCommitted();
    await putRaw(path, committed);
    const { index, warnings } = await reopenWatched(path, key);
    expect(warnings).not.toContain('VECVAULT_SNAPSHOT_REBUILD');
    expect(index.stats()).toMatchObject({ openedFrom: 'snapshot', snapshotGeneration: 2, count: 3000 });
    expect(await inEngine(index, late)).toBe(100);
    expect(await foundByOwnVector(index, late.ids, late.vectors)).toBeGreaterThanOrEqual(95);
  });

  it('every committed snapshot names a 16-byte write id, and the failed write had another one', async () => {
    const { path, key, failedRef } = await failedThenCommitted();
    const ref = await committedRef(path, key);
    expect(ref.generation).toBe(2);
    expect(failedRef.generation).toBe(2);
    expect(ref.writeId).toBeInstanceOf(Uint8Array);
    expect(ref.writeId!.byteLength).toBe(16);
    expect(failedRef.writeId!.byteLength).toBe(16);
    expect(hex(ref.writeId!)).not.toBe(hex(failedRef.writeId!));
  });
});

describe('snapshots written before write ids (no writeId in the SnapshotRef)', () => {
  it('still open from the snapshot, read with the old AAD; the next snapshot gets a write id', async () => {
    const { path, key } = await failedThenCommitted();
    await asPreviousRelease(path, key);
    expect((await committedRef(path, key)).writeId).toBeUndefined();
    const { client, index, warnings } = await reopenWatched(path, key);
    expect(warnings).not.toContain('VECVAULT_SNAPSHOT_REBUILD');
    expect(index.stats()).toMatchObject({ openedFrom: 'snapshot', snapshotGeneration: 2, count: 3000 });
    expect(await inEngine(index, late)).toBe(100);
    expect(await foundByOwnVector(index, late.ids, late.vectors)).toBeGreaterThanOrEqual(95);
    await index.upsert({ ids: ['new'], vectors: [[1, 2, 3, 4, 5, 6, 7, 8]] });
    await client.close();
    const ref = await committedRef(path, key);
    expect(ref.generation).toBe(3);
    expect(ref.writeId!.byteLength).toBe(16);
    const again = await reopenWatched(path, key);
    expect(again.index.stats()).toMatchObject({ openedFrom: 'snapshot', snapshotGeneration: 3, count: 3001 });
  });

  // The old AAD cannot tell the two writes apart: here the engine-key check is what catches the splice.
  it('the same splice (records added after the failed write) is caught by the engine-key check: rebuild with a warning, every record found', async () => {
    const { path, key, failedGraph } = await failedThenCommitted();
    await asPreviousRelease(path, key, failedGraph);
    // The planted graph authenticates under the old-format reference: only its keys give it away.
    const { store, index: indexStore } = await indexStoreOf(path, key);
    const ref = (await indexStore.readManifest()).snapshot!;
    expect(ref.writeId).toBeUndefined();
    expect(Buffer.compare(Buffer.concat(await indexStore.readSnapshot(ref, 'graph')), failedGraph)).toBe(0);
    await store.close();

    const { index, warnings } = await reopenWatched(path, key);
    expect(warnings).toContain('VECVAULT_SNAPSHOT_REBUILD');
    expect(index.stats()).toMatchObject({ openedFrom: 'rebuild', count: 3000 });
    expect(await inEngine(index, late)).toBe(100);
    expect(await foundByOwnVector(index, late.ids, late.vectors)).toBeGreaterThanOrEqual(95);
  });

  /**
   * The open's key check, three ways: the engine's digest of the loaded keys (what runs), counting the keys in the
   * loaded graph (an engine that takes no digest), and neither (the negative control). The splice here keeps the sizes
   * equal (100 records deleted and 100 added after the failed write: 2,900 in the planted graph and in the table), so
   * only the keys give it away.
   */
  async function reopenSplicedWith(check: 'digest' | 'count' | 'none') {
    const { path, key, failedGraph } = await failedThenCommitted(async (index) => {
      await index.delete({ ids: middle.ids.slice(0, 100) });
      await index.upsert(late);
    });
    await asPreviousRelease(path, key, failedGraph);
    const deserializeFrom = nativeEngine.deserializeFrom;
    nativeEngine.deserializeFrom = async (chunks, options, stream) => {
      const engine = await deserializeFrom.call(nativeEngine, chunks, options, check === 'digest' ? stream : { ...stream, keyDigest: undefined });
      if (check === 'none') engine.countPresent = async (keys) => keys.length;
      return engine;
    };
    try {
      return await reopenWatched(path, key);
    } finally {
      nativeEngine.deserializeFrom = deserializeFrom;
    }
  }

  it("a splice of equal size is caught by the loaded keys' digest, and by counting the keys without it; negative control: with neither, it opens from the snapshot without the late records", async () => {
    for (const check of ['digest', 'count'] as const) {
      const { index, warnings } = await reopenSplicedWith(check);
      expect(warnings).toContain('VECVAULT_SNAPSHOT_REBUILD');
      expect(index.stats()).toMatchObject({ openedFrom: 'rebuild', count: 2900 });
      expect(await inEngine(index, late)).toBe(100);
    }
    const { index, warnings } = await reopenSplicedWith('none');
    expect(warnings).not.toContain('VECVAULT_SNAPSHOT_REBUILD');
    expect(index.stats()).toMatchObject({ openedFrom: 'snapshot', count: 2900 });
    expect(await inEngine(index, late)).toBe(0);
  });

  it('the same splice with records deleted after the failed write (the graph holds every live key and more): rebuild with a warning', async () => {
    const doomed = middle.ids.slice(0, 100);
    const { path, key, failedGraph } = await failedThenCommitted((index) => index.delete({ ids: doomed }));
    await asPreviousRelease(path, key, failedGraph);
    const { index, warnings } = await reopenWatched(path, key);
    expect(warnings).toContain('VECVAULT_SNAPSHOT_REBUILD');
    expect(index.stats()).toMatchObject({ openedFrom: 'rebuild', count: 2800 });
    const kept = { ids: middle.ids.slice(100), vectors: middle.vectors.slice(100), metadata: middle.metadata.slice(100) };
    expect(await inEngine(index, kept, 800)).toBe(800);
    expect(await foundByOwnVector(index, doomed, middle.vectors.slice(0, 100))).toBe(0);
  });
});
