/**
 * Bringing an index into memory: a new one from its first manifest, an
 * existing one from its newest snapshot plus the change log written after it,
 * or, when there is no usable snapshot, by authenticating every record and
 * rebuilding the graph. Either way the records found must add up to the
 * manifest's count and digest.
 */
import type { EngineFactory } from '../engine/types.js';
import { IntegrityError, VecvaultError } from '../errors.js';
import { randomBytes } from 'node:crypto';
import { keyDigestAsync } from '../crypto/bulk.js';
import { constantTimeEqual } from '../crypto/kdf.js';
import type { CatalogEntry } from '../keys/envelope.js';
import { ForgedSnapshotError, type IndexStore } from '../storage/index-store.js';
import type { Manifest } from '../storage/manifest.js';
import { concatSliced } from '../storage/sealed.js';
import { decodeTableSliced, hasValidWriteId } from '../storage/snapshot.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import { reduceHeapSoon } from '../util/memory.js';
import { warn } from '../warnings.js';
import { xorInto } from './digest.js';
import { repairGraph } from './graph-repair.js';
import { IndexState } from './index-state.js';
import { recordFault } from './record-reader.js';
import { rowBytes, vectorOf } from './vector-bytes.js';

/** Commits the first manifest of a new index with its catalog entry. */
export async function createIndexState(
  store: IndexStore,
  engines: EngineFactory,
  manifest: Manifest,
  catalogEntry: CatalogEntry,
  onRelease: () => void,
): Promise<IndexState> {
  await store.create(manifest, catalogEntry);
  const state = new IndexState(store, engines, manifest, onRelease);
  if (manifest.dimension !== null) state.engine = state.newEngine(manifest.dimension);
  return state;
}

/**
 * Authenticates the manifest (and checks it against the commit head), then
 * restores the newest snapshot, or rebuilds from the records when there is
 * none or it fails authentication.
 */
export async function loadIndexState(store: IndexStore, engines: EngineFactory, onRelease: () => void): Promise<IndexState> {
  // A shared (PostgreSQL) store: other processes may commit while this open reads, and a record newer than the manifest
  // read first is their commit, not tampering. Open again from the newer manifest; a fault when nothing newer than
  // the manifest read was committed (or after a few tries) is the IntegrityError it says.
  for (let attempt = 1; ; attempt++) {
    const read = { counter: -1 }; // the manifest counter this attempt opened at
    try {
      return await loadOnce(store, engines, onRelease, read);
    } catch (error) {
      if (!store.remote || !(error instanceof IntegrityError) || error instanceof ForgedSnapshotError || attempt >= 5) throw error;
      if (read.counter < 0 || (await store.remote.counter()) <= read.counter) throw error; // the manifest itself failed, or nothing newer came
    }
  }
}

async function loadOnce(store: IndexStore, engines: EngineFactory, onRelease: () => void, read: { counter: number }): Promise<IndexState> {
  const manifest = await store.readManifest();
  read.counter = manifest.counter;
  const state = new IndexState(store, engines, manifest, onRelease);
  if (manifest.snapshot && manifest.dimension !== null) {
    try {
      await restoreSnapshot(state);
      state.openedFrom = 'snapshot';
      void store.releaseMemory(); // the snapshot chunks read (and mapped by LevelDB) and the table were transient; not waited for
      reduceHeapSoon(); // and, once idle, what only a GC frees: the decrypted table (5 MB at 200k records) and the open's other buffers
      return state; // the restored ids and metadata are still being indexed in the background (restoreSnapshot started it)
    } catch (error) {
      // A signed snapshot whose chunks are not the signed ones was forged: report it, never paper over it with a rebuild.
      if (!(error instanceof VecvaultError) || error instanceof ForgedSnapshotError) {
        await state.engine?.close();
        state.engine = null;
        throw error;
      }
      // Records are authenticated on their own: rebuilding from them is slower but sound.
      warn(
        'VECVAULT_SNAPSHOT_REBUILD',
        `the graph snapshot of index "${store.indexName}" could not be used (${error.code}); rebuilding it from the encrypted records.`,
      );
      await state.engine?.close();
      state.engine = null;
      state.live.clear();
    }
  }
  await rebuild(state);
  await store.releaseMemory(); // every record was read (and mapped by LevelDB); awaited, on the pool
  reduceHeapSoon(); // and, once idle, the decrypted records the GC has yet to free
  state.openedFrom = 'rebuild';
  state.changedSinceSnapshot = state.live.size;
  return state;
}

/**
 * Loads the newest snapshot, then replays the change log written after it.
 * The snapshot's digest, updated by the replay, must equal the manifest's.
 */
async function restoreSnapshot(state: IndexState): Promise<void> {
  const { store, live } = state;
  const m = state.manifest;
  const ref = m.snapshot!;
  if (!Number.isInteger(ref.graphChunks) || !Number.isInteger(ref.tableChunks) || !hasValidWriteId(ref))
    throw new IntegrityError(`The snapshot of index "${state.name}" has an unknown format.`);
  // The engine loads the graph on the pool, pulling chunks as they are read and
  // decrypted (a few ahead, each released once used), while this thread decodes the table.
  const graph = store.snapshotStream(ref, 'graph');
  let graphStarted!: () => void;
  const firstGraphChunk = new Promise<void>((resolve) => (graphStarted = resolve));
  // The engine digests the graph's live keys as they stream past, under a key drawn for this open (checkLoadedKeys).
  const keyDigest = randomBytes(32);
  const loading = state.engines.deserializeFrom(firstOut(graph.chunks, graphStarted), state.engineOptions(m.dimension!), {
    bound: graph.bound,
    release: true,
    keyDigest,
    unitVectors: ref.unitVectors === true, // the writer's engine held only unit vectors: the unit-vector kernel
  });
  loading.then(graphStarted, graphStarted); // a stream that failed before its first chunk
  loading.catch(() => undefined); // awaited below
  // Read once the engine has the graph's first chunk: read beside it, the table's chunks took turns and pool threads
  // from the graph's first ones while the engine waited for them; the table is wanted only when the graph is loaded.
  const tableRead = firstGraphChunk.then(() => store.readSnapshot(ref, 'table'));
  tableRead.catch(() => undefined); // awaited below, after the graph
  let digest: Uint8Array;
  let tableKeys: Float64Array; // becomes the live table's key column: the replay below may change it
  let tableKeyDigest: Uint8Array | null;
  try {
    const table = await decodeTableSliced(await concatSliced(await tableRead, yieldToEventLoop)); // ~27 MB at 1M records: one copy held the loop
    if (table.counter !== ref.counter || table.ids.lengths.length !== table.count)
      throw new IntegrityError(`The snapshot of index "${state.name}" does not match its manifest.`);
    // On the pool beside the load and the live table's restore (which only reads the key column); settled before the replay.
    const tableDigest = keyDigestAsync(keyDigest, table.keys);
    tableDigest.catch(() => undefined); // awaited below
    await live.restore(table);
    // The restored ids are indexed (id → row) in slices while the engine is still loading the graph on the pool, so
    // the open's first get or write need not wait for them: at 1M ~150 ms of slices once the open had returned.
    void live.finishRestoreInBackground(() => state.isOpen);
    digest = table.digest;
    tableKeys = table.keys;
    state.engine = await loading;
    tableKeyDigest = await tableDigest;
  } catch (error) {
    loading.then(
      (engine) => engine.close(),
      () => undefined,
    );
    throw error;
  }
  const keysChecked = checkLoadedKeys(state, tableKeyDigest);
  const removedKeys: number[] = [];
  const added = new Map<string, { key: number; vector: Float32Array }>();
  // Commits after the snapshot, up to the manifest's: none after a clean close.
  for await (const { seq, change } of store.changes(ref.counter, m.counter)) {
    await live.ready(); // the replay looks ids up: index the restored ones in slices first
    const forget = (id: string, hkey?: Uint8Array) => {
      const old = live.remove(id);
      if (!old) return;
      xorInto(digest, store.liveTags([hkey ?? store.hashIds([id])[0]!], old.seq));
      if (!added.delete(id)) removedKeys.push(old.key);
    };
    for (const id of change.deleted) forget(id);
    const hkeys = store.hashIds(change.upserted);
    const values = await store.getRecords(hkeys);
    const present = change.upserted.flatMap((_, i) => (values[i] === undefined ? [] : [i])); // absent: deleted by a later commit
    const records = store.openRecords(
      present.map((i) => hkeys[i]!),
      present.map((i) => values[i]!),
    );
    present.forEach((i, j) => {
      const id = change.upserted[i]!;
      const hkey = hkeys[i]!;
      const record = records[j]!;
      if (record.seq !== seq) return; // overwritten by a later commit
      if (record.body.vector.byteLength !== 4 * m.dimension!) throw new IntegrityError(`A record of index "${state.name}" does not match its dimension.`);
      forget(id, hkey);
      xorInto(digest, store.liveTags([hkey], seq));
      live.set(id, record.body.key, seq, record.body.metadata);
      added.set(id, { key: record.body.key, vector: vectorOf(record.body.vector) });
      state.changedSinceSnapshot++;
    });
    state.changedSinceSnapshot += change.deleted.length;
  }
  if (live.size !== m.count || !constantTimeEqual(digest, m.digest)) {
    throw new IntegrityError(`The snapshot and change log of index "${state.name}" do not add up to its manifest.`);
  }
  const engine = state.engine!;
  if (removedKeys.length > 0) await engine.remove(BigUint64Array.from(removedKeys, BigInt));
  if (added.size > 0) {
    const dim = m.dimension!;
    const keys = new BigUint64Array(added.size);
    const vectors = new Float32Array(added.size * dim);
    [...added.values()].forEach((a, i) => {
      keys[i] = BigInt(a.key);
      vectors.set(a.vector, i * dim);
    });
    await engine.add(keys, vectors);
  }
  const replayed = m.counter !== ref.counter;
  if (!keysChecked || replayed) await checkEngineKeys(state, tableKeys, replayed);
  // A snapshot keeps what the graph had lost, and the replay may add to it. One its writer checked whole, with
  // nothing replayed into the graph since, is that same graph: the walk (~50 ms at 200k, 0.3 s at 1M) would find nothing.
  if (ref.reachable === true && removedKeys.length === 0 && added.size === 0) return;
  state.graphCheck = await repairGraph(engine, 'snapshot');
}

/** `chunks`, calling `first` after each is handed on (a promise's resolve: only the first call counts). */
async function* firstOut(chunks: AsyncIterable<Uint8Array>, first: () => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    yield chunk;
    first();
  }
}

/**
 * The graph just loaded must hold exactly the keys of the snapshot's table
 * (see checkEngineKeys for why): compares the digest the engine took of its
 * live keys as they streamed past with the table key column's, both under the
 * open's random key (crypto/bulk.ts keyDigestAsync), and the sizes. Both
 * digests are computed beside the load, so nothing is left to look up after
 * it (one lookup per key took ~10 ms at 200k, ~20–35 ms at 1M, serially).
 * False when the engine took no digest: the caller counts the keys instead.
 */
function checkLoadedKeys(state: IndexState, tableKeyDigest: Uint8Array | null): boolean {
  const graphKeyDigest = state.engine?.loadedKeyDigest?.();
  if (graphKeyDigest === undefined) return false;
  const matches = tableKeyDigest !== null && state.engine!.size() === state.live.size && constantTimeEqual(graphKeyDigest, tableKeyDigest);
  if (!matches) throw new IntegrityError(`The graph snapshot of index "${state.name}" does not hold the records of its table.`);
  return true;
}

/**
 * The engine loaded from the graph section must hold exactly the live keys.
 * The table (checked against the manifest above) says which records are live;
 * the graph is sealed apart from it, and a graph that authenticates but came
 * from another write (a snapshot from before write ids, spliced with the
 * chunks of a failed write of the same generation) would otherwise answer
 * queries without the records it lacks. All live keys present and the sizes
 * equal means the two key sets are equal. The lookups run on the pool (two tasks for a large index).
 */
async function checkEngineKeys(state: IndexState, tableKeys: Float64Array, replayed: boolean): Promise<void> {
  const { engine, live } = state;
  const mismatch = () => new IntegrityError(`The graph snapshot of index "${state.name}" does not hold the records of its table.`);
  if (!engine || engine.size() !== live.size) throw mismatch();
  // After a clean close nothing was replayed: the live keys are the table's key column, as restored.
  // Otherwise the replay may have changed that column in place: read the live keys instead.
  let keys = tableKeys;
  if (replayed) {
    keys = new Float64Array(live.size);
    let n = 0;
    for (const key of live.keys()) {
      if (n > 0 && n % (64 * SLICE) === 0) await yieldToEventLoop();
      if (n < keys.length) keys[n] = key;
      n++;
    }
    if (n !== live.size) throw mismatch();
  }
  // Two halves at once on the pool: a lookup per key (~35 ms at 1M on one thread) is on the open's critical path.
  const half = keys.length > 1 << 16 ? keys.length >> 1 : keys.length;
  const counts = await Promise.all([engine.countPresent(keys.subarray(0, half)), half < keys.length ? engine.countPresent(keys.subarray(half)) : 0]);
  if (counts[0] + counts[1] !== live.size) throw mismatch();
}

/** Records added to the graph per step of a rebuild (rebuild): enough for both insert lanes to stay busy. */
const REBUILD_STEP = 10_000;

/** Reads every record, authenticates it, checks the set against the manifest digest, and fills the graph. */
async function rebuild(state: IndexState): Promise<void> {
  const { store, live } = state;
  const m = state.manifest;
  const dimension = m.dimension;
  const digest = new Uint8Array(32);
  // The graph takes the records as they stream past, REBUILD_STEP at a time: only one step's vectors are held beside
  // it, not every record's (at 200k × 96, all of them as arrays, then one flat copy, held ~190 MiB more at the peak).
  const engine = dimension === null ? null : state.newEngine(dimension);
  // One step's keys and vectors, written in place (a step ends at the first batch that reaches REBUILD_STEP).
  const keys = new BigUint64Array(REBUILD_STEP + SLICE);
  const vectors = new Float32Array(engine === null ? 0 : (REBUILD_STEP + SLICE) * dimension!);
  let rows = 0;
  const addStep = async () => {
    if (engine === null || rows === 0) return;
    await engine.add(keys.subarray(0, rows), vectors.subarray(0, rows * dimension!)); // settled before the buffers are refilled
    rows = 0;
  };
  try {
    let batches = 0;
    for await (const { hkeys, values } of store.recordBatches(SLICE)) {
      // Read through LevelDB's mapped table files: their pages are dropped as they come in (gated: once 8 MiB more did),
      // not all held until the open ends (200k: 107 MiB of them at the peak).
      if (++batches % 16 === 0) store.releaseMappedPages();
      const records = store.openRecords(hkeys, values);
      const expected = store.hashIds(records.map((r) => r.body.id));
      records.forEach((record, i) => {
        const { seq, body } = record;
        if (recordFault(record, hkeys[i]!, expected[i]!, m) !== undefined) {
          throw new IntegrityError(`A record of index "${state.name}" does not belong to its manifest. Restore the store from a backup.`);
        }
        live.set(body.id, body.key, seq, body.metadata);
        if (engine === null) return;
        keys[rows] = BigInt(body.key);
        rowBytes(vectors, rows++, dimension!).set(body.vector);
      });
      xorInto(
        digest,
        store.liveTags(
          hkeys,
          records.map((r) => r.seq),
        ),
      );
      if (rows >= REBUILD_STEP) await addStep();
    }
    await addStep();
    if (live.size !== m.count || !constantTimeEqual(digest, m.digest)) {
      throw new IntegrityError(`Records of index "${state.name}" are missing, extra or from an older commit. Restore the store from a backup.`);
    }
  } catch (error) {
    await engine?.close(); // built from records that did not add up: never served
    throw error;
  }
  if (engine === null) return;
  state.engine = engine;
  state.graphCheck = await repairGraph(engine, 'rebuild');
}
