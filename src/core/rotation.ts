/**
 * Key rotation, inside the write queue (writes wait; reads go on).
 *
 * `rotateKey`: the same DEK under a new key source. One synced batch replaces
 * the catalog entry: a crash leaves the old entry or the new one, so the
 * index opens with exactly one of the two keys. O(1) in the index size.
 *
 * `rotateDataKey`: a new DEK generation. The records are copied, re-sealed
 * under the new DEK's subkeys, into a fresh index id beside the old one (a
 * *staging* copy no catalog entry names), in batches that also record the
 * progress under the old index ('P', sealed under the old records key); then
 * a fresh snapshot is written for the new id through the ordinary snapshot
 * path, and one atomic batch switches over: the catalog entry names the new
 * id, generation and wrapped DEK, the new manifest is written, every user is
 * re-granted the new generation under the new id (user material is bound to
 * the index's users id, which the rotation keeps), and every key of the old
 * id is deleted. Until that batch the old index is whole and is
 * what opens (a crash leaves a staging copy that is invisible to readers and
 * that the next `rotateDataKey()` continues); after it, only the new one
 * exists. Then LevelDB's files are rewritten so no value of the old
 * generation, nor the old catalog entry, remains (`KvStore.shred`).
 *
 * The envelope and KMS work (keys/) is the caller's (api/key-rotation.ts):
 * this module gets it through `RotationKeys`.
 */
import { IntegrityError, NotSupportedError, PermissionError } from '../errors.js';
import type { CatalogEntry, IndexKeys } from '../keys/envelope.js';
import type { IndexStore, PendingErasure, PendingRotation } from '../storage/index-store.js';
import { nextManifest } from '../storage/manifest.js';
import { encodeTableParts } from '../storage/snapshot.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import { xorInto } from './digest.js';
import type { IndexState, RootKeys } from './index-state.js';
import { snapshotRef, snapshotTable } from './maintenance.js';

/** Records re-sealed per batch: one LevelDB batch and a yield to the event loop each. */
const COPY_BATCH = 512;

export interface RotationProgress {
  done: number;
  total: number;
}

/** The keys/ work a data-key rotation needs (api/key-rotation.ts provides it). */
export interface RotationKeys {
  /** 32 random bytes (a new DEK) and 16 (a new index id). */
  random(bytes: number): Buffer;
  /** The subkeys of a generation; for a signed index (`signed`) also the root's admin and record-auth keys. */
  deriveKeys(dek: Uint8Array, indexId: Uint8Array, format: number, signed: boolean): IndexKeys;
  /**
   * The catalog entry of the new generation: the DEK wrapped under the
   * current KEK with a fresh salt, and for a KMS-backed index the KEK wrapped
   * again by its slot under the new context. Called before anything is
   * written by this call, so a KmsError leaves the store as it was.
   */
  entryFor(root: RootKeys, targetId: Uint8Array, dek: Uint8Array, dekGeneration: number): Promise<CatalogEntry>;
}

function rootOf(state: IndexState): RootKeys {
  if (!state.root) {
    throw new PermissionError(
      `This handle of index "${state.name}" was not opened with its root key source; key rotation needs the index key or its KMS slot.`,
    );
  }
  return state.root;
}

/**
 * Replaces the catalog entry with the one `makeEntry` builds from the held
 * keys (a new KEK wrapping the same DEK), in one synced batch, then erases
 * the replaced entry from LevelDB's files. Every handle of the index (they
 * share this state) keeps working: the DEK and subkeys do not change.
 */
export async function rotateKey(state: IndexState, makeEntry: (root: RootKeys) => Promise<{ entry: CatalogEntry; kek: Buffer }>): Promise<void> {
  const root = rootOf(state);
  const { entry, kek } = await makeEntry(root); // any KMS call happens here, before the batch
  let pending: PendingErasure;
  try {
    pending = await state.store.replaceCatalogEntry(entry); // records the erasure below: the next open finishes it after a crash
  } catch (error) {
    kek.fill(0);
    throw error;
  }
  root.kek.fill(0);
  root.kek = kek;
  root.entry = entry;
  await state.store.eraseOldCatalogEntries(pending);
}

/** See the module comment. Resolves once the switch committed and the old generation is erased from the files. */
export async function rotateDataKey(state: IndexState, keys: RotationKeys, onProgress?: (p: RotationProgress) => void): Promise<void> {
  const root = rootOf(state);
  const source = state.store;
  if (source.remote) {
    throw new NotSupportedError(
      `rotateDataKey of index "${state.name}" in a shared (PostgreSQL) store is not supported yet: other processes follow the index by its id, which a data-key rotation changes.`,
    );
  }
  // Just after an open from a snapshot, the live tables are still being listed: finish that in slices, not in one go below.
  await state.live.finishRestoreInBackground(() => true);
  const total = state.live.size;
  const pending = await source.readRotation();
  let fresh = pending === undefined;
  const p: PendingRotation = pending ?? { targetId: keys.random(16), dek: keys.random(32), counter: state.manifest.counter, copied: 0, cursor: null };
  let target: IndexStore | undefined;
  let switched = false;
  try {
    const generation = root.entry.dekGeneration + 1;
    const entry = await keys.entryFor(root, p.targetId, p.dek, generation);
    const targetKeys = keys.deriveKeys(p.dek, p.targetId, entry.format, source.signed);
    // The same signing key: users and the root keep trusting its public key (sealed in their entries).
    if (source.signed) targetKeys.signSeed = Buffer.from(source.keys.signSeed!);
    target = source.sibling(p.targetId, targetKeys);
    if (p.counter !== state.manifest.counter) {
      // Written since the copy began (the process stopped, then the index was written): start the copy over.
      Object.assign(p, { counter: state.manifest.counter, copied: 0, cursor: null });
      fresh = true;
    }
    if (fresh) await source.startRotation(p, target);
    const next = nextManifest(state.manifest);
    await target.createHead(next.counter);
    onProgress?.({ done: p.copied, total });
    for await (const { hkeys, values } of source.recordBatches(COPY_BATCH, p.cursor ?? undefined)) {
      if (hkeys.length === 0) continue;
      const records = source.openRecords(hkeys, values);
      const ids = records.map((r) => r.body.id);
      const expected = source.hashIds(ids);
      records.forEach((r, i) => {
        const live = state.live.get(ids[i]!);
        // The copy must be exactly what memory serves: anything else is a record changed behind vecvault's back.
        if (!live || live.seq !== r.seq || live.key !== r.body.key || !expected[i]!.equals(hkeys[i]!)) {
          throw new IntegrityError(`A record of index "${state.name}" does not match the index's live records. Run index.verify().`);
        }
      });
      p.copied += records.length;
      p.cursor = new Uint8Array(hkeys[hkeys.length - 1]!);
      await source.stageRecords(
        target,
        target.hashIds(ids),
        records.map((r) => r.seq),
        records.map((r) => r.body),
        p,
      );
      for (const r of records) wipeBody(r.body);
      onProgress?.({ done: p.copied, total });
      await yieldToEventLoop();
    }
    if (p.copied !== total) {
      throw new IntegrityError(`Index "${state.name}" holds ${p.copied} records but ${total} are live. Run index.verify().`);
    }
    // The new generation's digest over the same live records (same commit sequences), from memory, in slices.
    next.digest = new Uint8Array(32);
    const all = [...state.live.byId];
    for (let start = 0; start < all.length; start += 4 * SLICE) {
      const slice = all.slice(start, start + 4 * SLICE);
      xorInto(
        next.digest,
        target.liveTags(
          target.hashIds(slice.map(([id]) => id)),
          slice.map(([, e]) => e.seq),
        ),
      );
      await yieldToEventLoop();
    }
    // A fresh snapshot of the new generation through the ordinary snapshot path; the change log starts empty.
    next.snapshot = null;
    const engine = state.engine;
    if (engine) {
      const written = await target.writeSnapshot(
        1,
        (chunkBytes, sink) => engine.serializeTo(chunkBytes, sink),
        // Gathered once the graph is written, as writeSnapshot does: the columns are not held through the stream.
        async () => encodeTableParts(await snapshotTable(state, next)),
      );
      next.snapshot = snapshotRef(written, next.counter, engine);
    }
    const newTarget = target;
    await state.queue.committing(() =>
      source.switchTo(newTarget, next, entry, () => {
        // Durable: from here on the new generation is the index. Readers holding the old store retry (readRecords).
        switched = true;
        state.store = newTarget;
        state.manifest = next;
        state.changedSinceSnapshot = 0;
        for (const key of Object.values(source.keys)) key.fill(0);
        root.dek.fill(0);
        root.dek = Buffer.from(p.dek);
        root.entry = entry;
      }),
    );
  } finally {
    p.dek.fill(0);
    if (!switched && target) for (const key of Object.values(target.keys)) key.fill(0);
  }
  onProgress?.({ done: total, total });
}

function wipeBody(body: { vector: Uint8Array }): void {
  body.vector.fill(0);
}
