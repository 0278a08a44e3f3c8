/**
 * Snapshots and compactions: when they are due (pure policy), when they run
 * (timers and the write queue), and the work itself. Background failures only
 * warn: the data is safe (the change log covers a missing snapshot; a missed
 * compaction only costs memory).
 */
import type { Progress } from '../api/types.js';
import type { SnapshotTable } from '../storage/snapshot.js';
import { encodeTableParts } from '../storage/snapshot.js';
import { nextManifest, type Manifest, type SnapshotRef } from '../storage/manifest.js';
import type { AnnEngine } from '../engine/types.js';
import { catchUp } from './follow.js';
import { repairGraph, type GraphCheckSummary } from './graph-repair.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import { reduceHeapSoon } from '../util/memory.js';
import { warn } from '../warnings.js';
import type { IndexState, MaintenanceKind } from './index-state.js';
import { readRecords } from './record-reader.js';
import { rowBytes } from './vector-bytes.js';

/** Snapshot in the background once this many records changed (or a quarter of the index, if larger). */
const SNAPSHOT_MIN_CHANGES = 10_000;
/**
 * A due snapshot waits until writes pause this long, so a bulk import of
 * back-to-back upserts is not held up by snapshots between its calls (the
 * change log covers a crash meanwhile). Once the changes since the last
 * snapshot reach SNAPSHOT_MAX_BACKLOG or half the index, whichever is more,
 * it is taken at once: replaying the log after a crash stays bounded, and a
 * growing import snapshots at geometrically spaced sizes.
 */
const SNAPSHOT_IDLE_MS = 250;
const SNAPSHOT_MAX_BACKLOG = 100_000;
/** Compact in the background once removed vectors outnumber live ones (and at least this many). */
const COMPACT_MIN_DEAD = 1_000;
/** Records read and re-inserted per step of a compaction. */
const COMPACT_BATCH = 1_024; // one batch's records are opened (decrypted, unpacked) at once: 4,096 held the event loop ~45 ms at 1M

// ---- policy ----

/** Whether a snapshot is due after a write: not yet, once writes pause, or now. */
export function snapshotDue(changed: number, live: number): 'no' | 'when-idle' | 'now' {
  if (changed < Math.max(SNAPSHOT_MIN_CHANGES, live / 4)) return 'no';
  return changed >= Math.max(SNAPSHOT_MAX_BACKLOG, live / 2) ? 'now' : 'when-idle';
}

/** Whether removed vectors outnumber live ones enough to rebuild the graph. */
export function compactionDue(dead: number, live: number): boolean {
  return dead >= Math.max(COMPACT_MIN_DEAD, live);
}

// ---- scheduling ----

/** Queues a snapshot once enough has changed since the last one. */
export function snapshotLaterIfDue(state: IndexState): void {
  if (!state.store.canCommit) return; // opened with a read-only key: writes nothing, not even a snapshot
  const due = snapshotDue(state.changedSinceSnapshot, state.live.size);
  if (due === 'no') return;
  clearTimeout(state.snapshotTimer);
  state.snapshotTimer = undefined;
  if (due === 'now') {
    inBackground(state, 'snapshot', () => writeSnapshot(state));
    return;
  }
  armIdleSnapshot(state);
}

/**
 * Snapshots once the write queue has been idle for SNAPSHOT_IDLE_MS. A write
 * still being checked, queued or running when the timer fires (a bulk import
 * whose calls each take longer than the timer) re-arms it: measured at 200k × 96 in
 * calls of 10,000, firing anyway took five snapshots of the growing graph
 * between the import's calls, each one's transient memory on top of the
 * build's.
 */
function armIdleSnapshot(state: IndexState): void {
  state.snapshotTimer = setTimeout(() => {
    state.snapshotTimer = undefined;
    if (!state.isOpen || state.changedSinceSnapshot === 0) return;
    if (state.queue.busy || state.writeCalls > 0) armIdleSnapshot(state);
    else inBackground(state, 'snapshot', () => writeSnapshot(state));
  }, SNAPSHOT_IDLE_MS);
  state.snapshotTimer.unref(); // never keeps the host process alive
}

/** Queues a compaction once removed vectors outnumber live ones. */
export function compactLaterIfDue(state: IndexState): void {
  if (compactionDue(state.deadSlots, state.live.size)) inBackground(state, 'compaction', () => compact(state));
}

/** Runs maintenance after the writes queued so far, at most one of each kind at a time. */
function inBackground(state: IndexState, kind: MaintenanceKind, task: () => Promise<void>): void {
  if (state.background.has(kind)) return;
  state.background.add(kind);
  state
    .exclusive(task)
    .catch((error: unknown) => {
      if (state.isOpen) {
        warn(
          kind === 'snapshot' ? 'VECVAULT_SNAPSHOT_FAILED' : 'VECVAULT_COMPACT_FAILED',
          `background ${kind} of index "${state.name}" failed: ${(error as Error).message}`,
        );
      }
    })
    .finally(() => state.background.delete(kind));
}

// ---- work (each runs inside the write queue: no write can interleave) ----

/**
 * Serializes the graph and the live-record table, seals them in chunks and
 * commits them with the manifest, dropping the previous snapshot and the
 * change log it covers in the same batch.
 */
export async function writeSnapshot(state: IndexState): Promise<void> {
  await catchUp(state); // a shared store: snapshot the newest commit, never a stale one
  const engine = state.engine;
  if (!engine) return; // nothing to snapshot before the first vector
  if (snapshotIsCurrent(state)) return; // e.g. snapshot() right after the backlog's snapshot: rewriting it would change nothing
  // What the writes before it freed goes back first, so the snapshot's own transient memory does not stack on
  // top of it (measured at 200k × 96: the close's peak, docs/performance.md "Memory"). Awaited on the pool: on the main
  // thread the unmapping of LevelDB's pages took 7–57 ms of a 1M build's snapshots and close.
  await state.store.releaseMemory();
  // Persist a graph that reaches every live record: incremental builds leave a few unreachable (3,034 of 1M
  // measured), and every open from this snapshot would otherwise find and relink them again.
  const check = await repairGraph(engine, 'snapshot');
  const next = nextManifest(state.manifest);
  const previous = next.snapshot;
  const generation = (previous?.generation ?? 0) + 1;
  // The store picks a fresh write id: chunks a failed earlier write of this generation left never authenticate under `next.snapshot`.
  const written = await state.store.writeSnapshot(
    generation,
    (chunkBytes, sink) => engine.serializeTo(chunkBytes, sink),
    // The table's columns are gathered only once the graph is written (nothing can change in between: this runs
    // inside the write queue), so they are not held through the graph's stream, and are garbage once encoded.
    async () => encodeTableParts(await snapshotTable(state, next)),
  );
  next.snapshot = snapshotRef(written, next.counter, engine);
  // The graph just serialized reaches every live record: an open that replays nothing need not walk it again.
  if (check !== null && check.remaining === 0) next.snapshot.reachable = true;
  await state.store.commitSnapshot(next, previous, () => {
    state.manifest = next;
  });
  state.changedSinceSnapshot = 0;
  state.snapshotUncompacted = true;
  void state.store.releaseMemory(); // the table's encoding and the sealed chunks were transient; not waited for
  reduceHeapSoon(); // and the young generation its allocations grew (~20 MiB at 200k), which plain GCs keep
}

/**
 * Whether the committed snapshot already covers every commit and nothing has
 * changed since. Snapshots written before write ids are rewritten anyway (an
 * explicit snapshot() upgrades them).
 */
function snapshotIsCurrent(state: IndexState): boolean {
  const current = state.manifest.snapshot;
  return state.changedSinceSnapshot === 0 && current !== null && current.writeId !== undefined && current.counter === state.manifest.counter;
}

/**
 * The manifest's reference to a snapshot the store just wrote from `engine`: with `unitVectors` when the engine
 * held only unit vectors, so the open may use the unit-vector kernel (docs/architecture.md).
 */
export function snapshotRef(written: Omit<SnapshotRef, 'counter'>, counter: number, engine: AnnEngine): SnapshotRef {
  return engine.unitVectors?.() === true ? { ...written, counter, unitVectors: true } : { ...written, counter };
}

/** The live-record table of a snapshot that manifest `next` will name (its counter and digest), built in slices. */
export async function snapshotTable(state: IndexState, next: Manifest): Promise<SnapshotTable> {
  await state.live.ready();
  const unchanged = state.live.writeGuard();
  // The ids as the table stores them, from the live table's id bytes (no string per record); typed key and seq columns.
  const { ids, keys, seqs } = await state.live.liveColumns(64 * SLICE, yieldToEventLoop);
  const filterIndex = state.live.filterIndex();
  // Looked up as the encoding packs each frame: no array of a million entries made in one turn. The caller holds the
  // write queue; should a write get in anyway, the table fails rather than pair new metadata with an old seq.
  const metadata = (row: number) => {
    unchanged();
    return filterIndex.get(keys[row]!) ?? null;
  };
  return { counter: next.counter, count: keys.length, digest: next.digest, ids, keys, seqs, metadata };
}

/**
 * Rebuilds the graph from the live records only, so removed and overwritten
 * vectors stop holding memory, then snapshots it and asks the store to drop
 * dead values from disk. Queries keep using the old graph until the swap.
 */
export async function compact(state: IndexState, onProgress?: (progress: Progress) => void): Promise<void> {
  const dimension = state.manifest.dimension;
  if (!state.engine || dimension === null) return;
  const fresh = state.newEngine(dimension);
  let graphCheck: GraphCheckSummary | null = null;
  try {
    await state.live.ready(); // the restored ids indexed in slices first: the batches below look each one up
    const total = state.live.size;
    let done = 0;
    // Only the batch in hand exists as strings: nothing writes meanwhile (this runs inside the write queue).
    for (const batch of state.live.idBatches(COMPACT_BATCH)) {
      const bodies = await readRecords(state, batch);
      const keys = new BigUint64Array(batch.length);
      const vectors = new Float32Array(batch.length * dimension);
      batch.forEach((id, i) => {
        const body = bodies.get(id)!;
        keys[i] = BigInt(body.key);
        rowBytes(vectors, i, dimension).set(body.vector); // the record's bytes straight into the step's array
      });
      await fresh.add(keys, vectors);
      // The records just read came through LevelDB's mapped table files: without this every page of them stayed
      // resident until the end (at 1M, 522 MiB of the compaction's 1,807 MiB peak). Gated: a release runs on the pool
      // only once 8 MiB more came in.
      state.store.releaseMappedPages();
      done += batch.length;
      onProgress?.({ done, total });
    }
    graphCheck = await repairGraph(fresh, 'compaction'); // before the swap: queries never see the orphans a build leaves
  } catch (error) {
    await fresh.close();
    throw error;
  }
  const old = state.engine;
  state.engine = fresh;
  state.graphCheck = graphCheck;
  state.deadSlots = 0;
  await old.close();
  state.changedSinceSnapshot = Math.max(1, state.changedSinceSnapshot);
  await writeSnapshot(state);
  await state.store.compactAll();
  state.snapshotUncompacted = false;
  await state.store.releaseMemory(); // the old graph, and the tables the compaction read (awaited, on the pool)
}

/** Waits for writes in flight, writes a snapshot if anything changed, then frees memory. */
export async function closeIndex(state: IndexState): Promise<void> {
  if (!state.isOpen) return;
  state.detach(); // loadIndex from now on opens a fresh handle
  await state
    .exclusive(async () => {
      // A state only read-only keys opened cannot sign a snapshot: the change log stays, as after a crash.
      if ((state.changedSinceSnapshot > 0 || state.snapshotUncompacted) && state.store.canCommit) {
        try {
          if (state.changedSinceSnapshot > 0) await writeSnapshot(state);
          // Also after an idle or explicit snapshot with nothing changed since: flush LevelDB's memtable (otherwise the
          // next open replays the snapshot from the log) and drop the older generations' deleted chunks from the files
          // (a 200k × 96 store closed after `snapshot()` held 1,949 B per vector on disk instead of ~1,100).
          await state.store.compactSnapshots();
          state.snapshotUncompacted = false;
          await state.store.releaseMemory(); // the tables the compaction read stay mapped otherwise
        } catch (error) {
          // Every write is in the change log: the next open replays it. Say so rather than fail the close.
          warn(
            'VECVAULT_SNAPSHOT_FAILED',
            `the snapshot of index "${state.name}" at close failed (${(error as Error).message}); the next open replays the change log.`,
          );
        }
      }
      await state.release('closed');
    })
    .catch(() => state.release('closed'));
}
