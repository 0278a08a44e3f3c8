/**
 * Upserts and deletes of checked input: seal the records, commit them with
 * the next manifest in one atomic batch, then bring memory (engine, live
 * tables) in line. Each runs inside the index's write queue.
 */
import type { Progress } from '../api/types.js';
import type { AnnEngine } from '../engine/types.js';
import { NativeError, ValidationError } from '../errors.js';
import { nextManifest, type Manifest } from '../storage/manifest.js';
import type { CommitBatch } from '../storage/index-store.js';
import type { ChangeEntry, RecordBody } from '../storage/sealed.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import { xorInto } from './digest.js';
import { engineKey } from './engine-keys.js';
import { retryOnConflict } from './follow.js';
import type { IndexState } from './index-state.js';
import type { LiveEntry } from './live-records.js';
import { compactLaterIfDue, snapshotLaterIfDue } from './maintenance.js';
import { rowBytes } from './vector-bytes.js';
import { reduceHeapSoon } from '../util/memory.js';

/** Checked upsert input: item i's vector is row i of `vectors`. */
export interface UpsertBatch {
  items: readonly { id: string; metadata?: unknown; contents?: string | Uint8Array | undefined }[];
  vectors: Float32Array;
  dimension: number;
  /**
   * When given, the graph takes the batch in steps of PROGRESS_STEP items and
   * this hears of each, before the commit: if it throws, nothing is written.
   */
  onProgress?: ((progress: Progress) => void) | undefined;
}

/**
 * Items per graph insert when the caller asks for progress: big enough that
 * every pool thread has work in each step (the steps run one after another),
 * small enough that a 100k batch reports about ten times.
 */
export const PROGRESS_STEP = 10_000;

/**
 * Records written between two heap trims. Sealing and committing a batch
 * leaves its buffers (records, msgpack, LevelDB's batch copy) to the GC, and
 * glibc keeps the freed pages: at 100k × 96 built 10k per call, 41 MiB of
 * resident memory that one malloc_trim (4 ms) gives back.
 */
const TRIM_EVERY = 8_192;

/** Ids hashed, and their digest terms computed, per step: ~1 µs an id, ~1 ms a step. */
const HASH_CHUNK = 4 * SLICE;

/** Ids made visible between two yields after a commit (publishUpsert); while the live table rebuilds a hash table, fewer. */
const PUBLISH_SLICE = 4 * SLICE;
const PUBLISH_SLICE_REBUILDING = SLICE / 4;

/** Inserts or overwrites every item in one commit (recomputed and retried when another process committed first: follow.ts). */
export async function upsertRecords(state: IndexState, batch: UpsertBatch): Promise<void> {
  await retryOnConflict(state, () => upsertOnce(state, batch));
  // Here, not inside upsertOnce: its sealed records and batch are garbage by now.
  trimAfterWrites(state, batch.items.length);
}

async function upsertOnce(state: IndexState, { items, vectors, dimension: given, onProgress }: UpsertBatch): Promise<void> {
  await state.live.ready(); // right after an open: the restored ids are indexed in slices, not by the first lookup at once
  const { store } = state;
  const next = nextManifest(state.manifest);
  next.dimension ??= given;
  // Checked again here: a concurrent first upsert may have fixed the dimension meanwhile.
  if (given !== next.dimension) {
    throw new ValidationError(`items[0].vector has ${given} values; the index dimension is ${next.dimension}.`, { path: 'items[0].vector' });
  }
  const seq = next.counter;
  const dimension = next.dimension;
  // The id hashes and digest terms are HMACs computed in place a chunk of HASH_CHUNK at a time, so no one step holds
  // the loop long (a whole call's batch once sat inside a 29 ms stall of a 1M build). With these batches on the libuv
  // pool the upsert was ~16 % slower, paired at 200k: 2,659–2,708/s against 3,154–3,275/s in place (docs/performance.md).
  const ids = items.map((item) => item.id);
  const keys = new BigUint64Array(items.length);
  for (let i = 0; i < items.length; i++) {
    if (i > 0 && i % (16 * SLICE) === 0) await yieldToEventLoop();
    keys[i] = BigInt(engineKey(next.nextKey++));
  }
  // The graph inserts on the pool while this thread seals the records. The
  // new keys stay invisible (no id maps) until the commit; if the commit
  // fails they are taken out again.
  const created = state.engine === null;
  const engine = (state.engine ??= state.newEngine(dimension));
  const adding = onProgress ? addInSteps(engine, keys, vectors, dimension, onProgress) : engine.add(keys, vectors);
  adding.catch(() => undefined); // awaited below; never an unhandled rejection
  // Staged: each slice's sealed records go into LevelDB's batch at once, so they die young instead of all
  // surviving to the commit (which grew V8's young generation during bulk loads: docs/performance.md, "Memory").
  const batch = store.newBatch({ staged: true });
  try {
    const replaced: number[] = [];
    for (let chunk = 0; chunk < items.length; chunk += HASH_CHUNK) {
      const chunkHkeys = store.hashIds(ids.slice(chunk, chunk + HASH_CHUNK));
      xorInto(next.digest, store.liveTags(chunkHkeys, seq));
      const oldHkeys: Uint8Array[] = [];
      const oldSeqs: number[] = [];
      const bodies: RecordBody[] = [];
      for (let i = chunk; i < Math.min(items.length, chunk + HASH_CHUNK); i++) {
        if (i > chunk && (i - chunk) % SLICE === 0) await yieldToEventLoop();
        const item = items[i]!;
        const old = state.live.get(item.id);
        if (old) {
          oldHkeys.push(chunkHkeys[i - chunk]!);
          oldSeqs.push(old.seq);
          replaced.push(old.key);
        } else {
          next.count++;
        }
        const body: RecordBody = { id: item.id, key: Number(keys[i]), vector: rowBytes(vectors, i, dimension) };
        if (item.metadata !== undefined) body.metadata = item.metadata;
        if (item.contents !== undefined) body.contents = item.contents;
        bodies.push(body);
      }
      // Sealed SLICE records per native call, with yields; the chunk's writer tags (signed indexes) in one call.
      await yieldToEventLoop();
      await batch.putRecords(chunkHkeys, seq, bodies, yieldToEventLoop);
      if (oldHkeys.length > 0) xorInto(next.digest, store.liveTags(oldHkeys, oldSeqs));
    }
    // With progress, the graph finishes before the commit, so a callback that throws cancels the whole call.
    if (onProgress) await adding;
    await commitThenApply(state, next, batch, { upserted: ids, deleted: [] }, async () => {
      await adding;
      await publishUpsert(state, items, keys, replaced, seq);
    });
  } catch (error) {
    if (state.manifest !== next) await withdraw(state, engine, created, adding, keys);
    throw error;
  } finally {
    batch.discard(); // a no-op once committed
  }
  snapshotLaterIfDue(state);
  compactLaterIfDue(state);
}

/** Trims the heap once TRIM_EVERY records were written since the last trim (the earlier batches' buffers are garbage by now). */
function trimAfterWrites(state: IndexState, written: number): void {
  state.writtenSinceTrim += written;
  if (state.writtenSinceTrim < TRIM_EVERY) return;
  state.writtenSinceTrim = 0;
  // What the GCs since the last trim freed; on the pool: a synchronous malloc_trim took 7–15 ms inside four of the 1M build's stalls.
  void state.store.releaseMemory({ gated: true });
  reduceHeapSoon(); // and this burst's garbage, once V8 has collected it
}

/** The graph insert of a batch in steps, reporting each; a failure stops it (and the commit) like a single add's. */
async function addInSteps(
  engine: AnnEngine,
  keys: BigUint64Array,
  vectors: Float32Array,
  dimension: number,
  onProgress: (progress: Progress) => void,
): Promise<void> {
  const total = keys.length;
  for (let start = 0; start < total; start += PROGRESS_STEP) {
    const end = Math.min(total, start + PROGRESS_STEP);
    await engine.add(keys.subarray(start, end), vectors.subarray(start * dimension, end * dimension));
    onProgress({ done: end, total });
  }
}

/** Deletes the live ones among `ids` in one commit; returns how many there were (retried like upserts). */
export function deleteRecords(state: IndexState, ids: string[]): Promise<number> {
  return retryOnConflict(state, () => deleteOnce(state, ids));
}

async function deleteOnce(state: IndexState, ids: string[]): Promise<number> {
  await state.live.ready();
  const { store } = state;
  const next = nextManifest(state.manifest);
  const gone = new Map<string, LiveEntry>();
  for (let i = 0; i < ids.length; i++) {
    if (i > 0 && i % (16 * SLICE) === 0) await yieldToEventLoop();
    const entry = state.live.get(ids[i]!);
    if (entry) gone.set(ids[i]!, entry);
  }
  if (gone.size === 0) return 0;
  // A slice at a time: the HMACs of 10k deleted ids in one go held the event loop for ~70 ms.
  const goneIds = [...gone.keys()];
  const goneSeqs = Array.from(gone.values(), (entry) => entry.seq);
  const hkeys: Uint8Array[] = [];
  for (let start = 0; start < goneIds.length; start += 4 * SLICE) {
    if (start > 0) await yieldToEventLoop();
    const sliceHkeys = store.hashIds(goneIds.slice(start, start + 4 * SLICE));
    xorInto(next.digest, store.liveTags(sliceHkeys, goneSeqs.slice(start, start + 4 * SLICE)));
    for (const hkey of sliceHkeys) hkeys.push(hkey);
  }
  next.count -= gone.size;
  const batch = store.newBatch();
  batch.removeRecords(hkeys);
  await commitThenApply(state, next, batch, { upserted: [], deleted: [...gone.keys()] }, async () => {
    for (const id of gone.keys()) state.live.remove(id);
    await state.engine?.remove(BigUint64Array.from([...gone.values()], (e) => BigInt(e.key)));
    state.deadSlots += gone.size;
  });
  await state.live.squeezeIfDue();
  compactLaterIfDue(state);
  return gone.size;
}

/**
 * Commits, then brings memory in line. If memory cannot follow, further
 * calls are refused rather than serving a gap.
 */
async function commitThenApply(state: IndexState, next: Manifest, batch: CommitBatch, change: ChangeEntry, apply: () => Promise<void> | void): Promise<void> {
  await state.queue.committing(async () => {
    try {
      await state.store.commit(next, batch, {
        change,
        durable: () => {
          state.manifest = next;
          state.changedSinceSnapshot += change.upserted.length + change.deleted.length;
        },
      });
      await apply();
    } catch (cause) {
      if (state.manifest !== next) throw cause; // the commit itself failed: nothing changed
      state.markBroken(cause as Error);
      throw new NativeError(`Index "${state.name}" saved the write but could not update its in-memory graph. Load the index again.`, { cause });
    }
  });
}

/** After the commit: the new vectors (already in the graph) become visible and the replaced ones go. */
async function publishUpsert(state: IndexState, items: UpsertBatch['items'], keys: BigUint64Array, replaced: number[], seq: number): Promise<void> {
  // In slices, so a large upsert does not stall the event loop; each id
  // switches from its old key to its new one in one step.
  await state.live.reserve(items.length - replaced.length); // the columns grow here in slices, not inside one set()
  let sinceYield = 0;
  for (let i = 0; i < items.length; i++) {
    // Fewer inserts between yields while the live table's hash tables migrate: each insert then moves 16 old rows
    // into the new tables, faulting in their fresh pages, and 1,024 inserts held the event loop 58 ms (55 ms on a
    // CPU; a 500k build's profile).
    if (sinceYield >= (state.live.rebuilding ? PUBLISH_SLICE_REBUILDING : PUBLISH_SLICE)) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
    sinceYield++;
    const item = items[i]!;
    state.live.set(item.id, Number(keys[i]), seq, item.metadata);
  }
  if (replaced.length > 0) {
    await state.engine!.remove(BigUint64Array.from(replaced, BigInt));
    state.deadSlots += replaced.length;
  }
}

/** Undoes an uncommitted upsert's graph insert; if even that fails, the handle refuses further calls. */
async function withdraw(state: IndexState, engine: AnnEngine, created: boolean, adding: Promise<void>, keys: BigUint64Array): Promise<void> {
  try {
    await adding.then(
      () => engine.remove(keys),
      () => engine.remove(keys), // a partial insert leaves a prefix: remove ignores absent keys
    );
    if (created && state.engine === engine) {
      state.engine = null; // the dimension is not fixed until a commit fixes it
      await engine.close();
    }
  } catch (cause) {
    state.markBroken(cause as Error);
  }
}
