/**
 * Reads live records back from the store for `get`, `include: ['vector' |
 * 'contents']` and compaction. Memory says which commit wrote each live
 * record; the store must agree, or the disk was tampered with.
 */
import { constantTimeEqual } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';
import type { OpenedRecord } from '../storage/index-store.js';
import type { Manifest } from '../storage/manifest.js';
import type { RecordBody } from '../storage/sealed.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import type { IndexState } from './index-state.js';

/**
 * Decrypts the records of `ids` that are live. Each must exist, authenticate,
 * and carry the commit sequence memory expects: a record that vanished or was
 * replayed from an older commit is an IntegrityError, never stale data.
 */
export async function readRecords(state: IndexState, ids: string[], retried = false): Promise<Map<string, RecordBody>> {
  await state.live.ready(); // the restored ids indexed in slices, not by the first lookup at once
  const out = new Map<string, RecordBody>();
  // One store for the whole read: a data-key rotation may replace it (new keys, new index id) meanwhile.
  const store = state.store;
  const hkeys = store.hashIds(ids);
  const mark = state.queue.mark();
  const values = await store.getRecords(hkeys);
  state.assertUsable(); // closed or deleted while the read ran: memory is gone, say so rather than blame the disk
  // Rotated meanwhile (its old subkeys are wiped): read again from the new store.
  const readAgain = (): Promise<Map<string, RecordBody>> => {
    if (retried) throw new IntegrityError(`The records of index "${state.name}" moved twice during one read. Retry the call.`);
    return readRecords(state, ids, true);
  };
  if (state.store !== store) return readAgain();
  const present = ids.flatMap((_, i) => (values[i] === undefined ? [] : [i]));
  // Opened SLICE records per turn: a compaction batch of 1,024 opened at once (tag checks, decryption, unpacking) held
  // the event loop 37–53 ms on a CPU at 1M under load.
  const records = new Map<number, OpenedRecord>();
  for (let start = 0; start < present.length; start += SLICE) {
    if (start > 0) {
      await yieldToEventLoop();
      state.assertUsable();
      if (state.store !== store) return readAgain();
    }
    const part = present.slice(start, start + SLICE);
    const opened = store.openRecords(
      part.map((i) => hkeys[i]!),
      part.map((i) => values[i]!),
    );
    part.forEach((i, j) => records.set(i, opened[j]!));
  }
  // Disk and memory may disagree only while a write is between its commit and its memory update (asked after the
  // turns above: a write may have run in between).
  const racing = state.queue.racedSince(mark);
  let raced = false;
  ids.forEach((id, i) => {
    const entry = state.live.get(id);
    const value = values[i];
    if (value === undefined && entry === undefined) return;
    const body = records.get(i);
    if (entry !== undefined && body !== undefined && body.seq === entry.seq && body.body.id === id && body.body.key === entry.key) {
      out.set(id, body.body);
      return;
    }
    if (racing) {
      raced = true;
      return;
    }
    throw new IntegrityError(
      body === undefined || entry === undefined
        ? `A record of index "${state.name}" was removed or restored behind vecvault's back. Restore the store from a backup.`
        : `A record of index "${state.name}" was replaced by an older copy. Restore the store from a backup.`,
    );
  });
  if (raced && !retried) {
    await state.queue.settled(); // let the concurrent write finish, then read again
    return readRecords(state, ids, true);
  }
  return out;
}

/**
 * Why an authenticated record does not belong to the index as `manifest`
 * describes it, or undefined: stored under another id's key (`expectedHkey`
 * is the hash of the id inside it), written by a commit the manifest has not
 * reached, or of another dimension. Shared by the rebuild (which refuses) and
 * verify (which counts).
 */
export function recordFault(
  record: { seq: number; body: RecordBody },
  hkey: Uint8Array,
  expectedHkey: Uint8Array,
  manifest: Manifest,
): 'key' | 'seq' | 'dimension' | undefined {
  if (!constantTimeEqual(expectedHkey, hkey)) return 'key';
  if (record.seq > manifest.counter) return 'seq';
  if (!(record.body.vector instanceof Uint8Array) || record.body.vector.byteLength !== 4 * (manifest.dimension ?? 0)) return 'dimension';
  return undefined;
}
