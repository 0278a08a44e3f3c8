/**
 * Following commits made by other processes (a store shared through
 * PostgreSQL; with LevelDB `store.remote` is null and all of this is a no-op).
 *
 * - `catchUp` brings one open index up to the newest commit: it reads the
 *   authenticated manifest, then the ids the change log names since this
 *   process's counter (or, when a remote snapshot dropped that part of the
 *   log, every record), opens their records, and applies the difference to
 *   the graph and the live tables only if the result adds up to the new
 *   manifest's count and digest (else it reads again: a commit landed
 *   meanwhile). Runs inside the write queue, so no local write interleaves.
 * - `retryOnConflict` runs a write after catching up, and again after a
 *   ConflictError (another process committed first): upserts and deletes are
 *   recomputed from the new state, so the retry never applies anything twice.
 *   After TURN_AFTER losses in a row it takes a turn (RemoteCommits.takeTurn)
 *   so a busy writer elsewhere cannot starve it.
 * - `follow` keeps an open index current in the background: woken by NOTIFY,
 *   and polling every POLL_MS in case a notification was missed.
 * - `catchUpForRead`: the default read consistency. A query (get, listIds)
 *   first catches up, so it sees every commit acknowledged before it started,
 *   in any process; `consistency: 'eventual'` skips that round trip and reads
 *   what the background follower has applied (at most ~POLL_MS behind).
 */
import { ClosedError, ConflictError, IntegrityError, NativeError } from '../errors.js';
import { constantTimeEqual } from '../crypto/kdf.js';
import type { Manifest } from '../storage/manifest.js';
import type { OpenedRecord } from '../storage/index-store.js';
import { SLICE } from '../util/event-loop.js';
import { xorInto } from './digest.js';
import type { IndexState } from './index-state.js';
import { vectorOf } from './vector-bytes.js';

/** The background follower's polling period (the fallback when NOTIFY is lost). */
export const POLL_MS = 1000;
/** Catch-up reads before giving up while other processes keep committing. */
const ATTEMPTS = 30;
/**
 * Commits a write tries before ConflictError reaches the caller. A loser
 * retries right after catching up, so a run of losses needs the other side to
 * commit inside that one round trip every time.
 */
const WRITE_ATTEMPTS = 50;
/**
 * Losses in a row before a write takes a turn. Without turns a writer that
 * must catch up loses to one that need not, commit after commit: measured,
 * one of two openers writing in a loop lost 47–50 times in a row.
 */
const TURN_AFTER = 2;

type Final = { hkey: Uint8Array; record: OpenedRecord | null };

/** Brings `state` up to the store's newest commit. Call inside `state.exclusive`. */
export async function catchUp(state: IndexState): Promise<void> {
  const remote = state.store.remote;
  if (!remote) return;
  const counter = await remote.counter();
  if (counter < 0) throw new ClosedError(`Index "${state.name}" was deleted (by another process).`);
  if (counter < state.manifest.counter) {
    throw new IntegrityError(
      `Index "${state.name}" in the database is at commit ${counter}, older than commit ${state.manifest.counter} this process saw: the database was rolled back or restored from an older backup. Restore the database from its newest backup.`,
    );
  }
  if (counter === state.manifest.counter) return;
  await state.live.ready();
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const next = await state.store.readManifest();
    if (next.counter <= state.manifest.counter) return;
    const finals = await changedSince(state, next);
    if (finals && (await applyIfConsistent(state, next, finals))) return;
    await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 * (attempt + 1))));
  }
  throw new ConflictError(`Index "${state.name}" could not catch up with the commits of other processes (they kept changing it); retry the call.`);
}

/**
 * What changed after this process's counter, up to (at least) `next`: for each
 * touched id its record now, or null when it is gone. Undefined when a record
 * is newer than `next` (read the manifest again).
 */
async function changedSince(state: IndexState, next: Manifest): Promise<Map<string, Final> | undefined> {
  const { store } = state;
  const mine = state.manifest.counter;
  const finals = new Map<string, Final>();
  if (next.snapshot && next.snapshot.counter > mine) {
    // The log up to the snapshot is gone: compare every record with memory.
    const seen = new Set<string>();
    for await (const { hkeys, values } of store.recordBatches(SLICE)) {
      const records = store.openRecords(hkeys, values);
      for (let i = 0; i < records.length; i++) {
        const record = records[i]!;
        seen.add(record.body.id);
        if (record.seq > next.counter) return undefined;
        const live = state.live.get(record.body.id);
        if (!live || live.seq !== record.seq) finals.set(record.body.id, { hkey: hkeys[i]!, record });
      }
    }
    const gone = [...state.live.byId.keys()].filter((id) => !seen.has(id));
    const hkeys = store.hashIds(gone);
    gone.forEach((id, i) => finals.set(id, { hkey: hkeys[i]!, record: null }));
    return finals;
  }
  const ids = new Set<string>();
  for await (const { change } of store.changes(mine, next.counter)) {
    for (const id of change.upserted) ids.add(id);
    for (const id of change.deleted) ids.add(id);
  }
  const list = [...ids];
  const hkeys = store.hashIds(list);
  for (let start = 0; start < list.length; start += SLICE) {
    const slice = hkeys.slice(start, start + SLICE);
    const values = await store.getRecords(slice);
    const present = slice.flatMap((_, i) => (values[i] === undefined ? [] : [i]));
    const records = store.openRecords(
      present.map((i) => slice[i]!),
      present.map((i) => values[i]!),
    );
    slice.forEach((hkey, i) => finals.set(list[start + i]!, { hkey, record: null }));
    present.forEach((i, j) => {
      const record = records[j]!;
      if (record.body.id !== list[start + i])
        throw new IntegrityError(`A record of index "${state.name}" is stored under another id. Restore the store from a backup.`);
      finals.get(record.body.id)!.record = record;
    });
    if (records.some((r) => r.seq > next.counter)) return undefined;
  }
  return finals;
}

/** Applies `finals` if memory plus them adds up to `next` (count and digest); false when it does not (read again). */
async function applyIfConsistent(state: IndexState, next: Manifest, finals: Map<string, Final>): Promise<boolean> {
  const { store, live } = state;
  const digest = Uint8Array.from(state.manifest.digest);
  let count = live.size;
  const outHkeys: Uint8Array[] = [];
  const outSeqs: number[] = [];
  const inHkeys: Uint8Array[] = [];
  const inSeqs: number[] = [];
  for (const [id, { hkey, record }] of finals) {
    const old = live.get(id);
    if (old && record && old.seq === record.seq) continue;
    if (old) {
      outHkeys.push(hkey);
      outSeqs.push(old.seq);
      count--;
    }
    if (record) {
      if (next.dimension === null || record.body.vector.byteLength !== 4 * next.dimension)
        throw new IntegrityError(`A record of index "${state.name}" does not match its dimension.`);
      inHkeys.push(hkey);
      inSeqs.push(record.seq);
      count++;
    }
  }
  if (outHkeys.length > 0) xorInto(digest, store.liveTags(outHkeys, outSeqs));
  if (inHkeys.length > 0) xorInto(digest, store.liveTags(inHkeys, inSeqs));
  if (count !== next.count || !constantTimeEqual(digest, next.digest)) return false;

  // It adds up: now change memory (a failure from here on leaves a handle that must be reloaded).
  try {
    const removed: number[] = [];
    const added: { key: number; vector: Float32Array }[] = [];
    for (const [id, { record }] of finals) {
      const old = live.get(id);
      if (old && record && old.seq === record.seq) continue;
      if (old) {
        live.remove(id);
        removed.push(old.key);
      }
      if (record) {
        live.set(id, record.body.key, record.seq, record.body.metadata);
        added.push({ key: record.body.key, vector: vectorOf(record.body.vector) });
      }
    }
    if (next.dimension !== null) {
      const engine = (state.engine ??= state.newEngine(next.dimension));
      if (removed.length > 0) {
        await engine.remove(BigUint64Array.from(removed, BigInt));
        state.deadSlots += removed.length;
      }
      if (added.length > 0) {
        const vectors = new Float32Array(added.length * next.dimension);
        added.forEach((a, i) => vectors.set(a.vector, i * next.dimension!));
        await engine.add(
          BigUint64Array.from(added, (a) => BigInt(a.key)),
          vectors,
        );
      }
    }
    // Only now: a strong read's fast path trusts a matching counter, so the graph must hold the commit by then.
    state.manifest = next;
  } catch (cause) {
    state.markBroken(cause as Error);
    throw new NativeError(`Index "${state.name}" could not apply the commits of another process to its in-memory graph. Load the index again.`, { cause });
  }
  await state.live.squeezeIfDue();
  return true;
}

/** Runs a write after catching up; on ConflictError catches up again and retries (a few times, with jitter). Call inside `state.exclusive`. */
export async function retryOnConflict<T>(state: IndexState, write: () => Promise<T>): Promise<T> {
  const remote = state.store.remote;
  if (!remote) return write();
  let release: (() => Promise<void>) | null = null;
  try {
    for (let attempt = 0; ; attempt++) {
      await catchUp(state);
      try {
        return await write();
      } catch (error) {
        if (!(error instanceof ConflictError) || attempt >= WRITE_ATTEMPTS) throw error;
        if (attempt + 1 >= TURN_AFTER && !release) release = await remote.takeTurn();
        else await new Promise((r) => setTimeout(r, Math.random() * 2));
      }
    }
  } finally {
    await release?.();
  }
}

/** The read consistency of a query: 'strong' (default) catches up first; 'eventual' reads what memory holds. */
export async function catchUpForRead(state: IndexState, consistency: 'strong' | 'eventual' = 'strong'): Promise<void> {
  const remote = state.store.remote;
  if (!remote || consistency === 'eventual') return;
  if ((await remote.counter()) === state.manifest.counter) return; // the common case: one round trip, no queueing behind writes
  await state.exclusive(() => catchUp(state));
}

/** Keeps an open index current in the background (NOTIFY, polling every POLL_MS) until it is released. */
export function follow(state: IndexState): void {
  const remote = state.store.remote;
  if (!remote) return;
  let pending = false;
  const wake = (counter?: number) => {
    if (pending || !state.isUsable()) return;
    if (counter !== undefined && counter <= state.manifest.counter) return;
    pending = true;
    state
      .exclusive(() => catchUp(state))
      .catch(() => undefined) // the next query or write reports it
      .finally(() => {
        pending = false;
      });
  };
  const unsubscribe = remote.subscribe(wake);
  const timer = setInterval(() => {
    if (!state.isOpen) {
      clearInterval(timer);
      unsubscribe();
      return;
    }
    wake();
  }, POLL_MS);
  timer.unref();
}
