/**
 * Salvage for `recoverIndex()`: every record of a damaged index that still
 * authenticates and belongs under its key, read through the IndexStore seam,
 * and the ids the change log and snapshot say should be there. Reads only.
 */
import { constantTimeEqual } from '../crypto/kdf.js';
import type { IndexStore } from '../storage/index-store.js';
import type { Manifest } from '../storage/manifest.js';
import type { RecordBody } from '../storage/sealed.js';
import { decodeTable, hasValidWriteId } from '../storage/snapshot.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import { xorInto } from './digest.js';

export interface SalvageBatch {
  /** Records that authenticated, belong under their keys and have the batch's dimension. */
  records: RecordBody[];
  /** Records in this batch that did not. */
  unreadable: number;
}

/**
 * Reads every stored record in batches. `dimension` is the manifest's, or
 * null when the manifest is lost (then the first good record fixes it).
 * `digest` accumulates the digest terms of the good records. An iterator
 * failure (LevelDB damage in a table) ends the walk with `failed` set.
 */
export async function* salvageRecords(
  store: IndexStore,
  dimension: number | null,
  digest: Uint8Array,
  status: { failed: boolean; dimension: number | null },
): AsyncGenerator<SalvageBatch> {
  status.dimension = dimension;
  const batches = store.recordBatches(SLICE);
  for (;;) {
    let next: IteratorResult<{ hkeys: Uint8Array[]; values: Uint8Array[] }>;
    try {
      next = await batches.next();
    } catch {
      status.failed = true; // LevelDB cannot read further: what was read is kept
      return;
    }
    if (next.done) return;
    const { hkeys, values } = next.value;
    if (hkeys.length === 0) continue;
    const records: RecordBody[] = [];
    const goodKeys: Uint8Array[] = [];
    const goodSeqs: number[] = [];
    let unreadable = 0;
    hkeys.forEach((hkey, i) => {
      let opened;
      try {
        opened = store.openRecords([hkey], [values[i]!])[0]!;
      } catch {
        unreadable++;
        return;
      }
      const { body } = opened;
      const belongs = typeof body.id === 'string' && constantTimeEqual(store.hashIds([body.id])[0]!, hkey);
      const bytes = body.vector instanceof Uint8Array ? body.vector.byteLength : -1;
      if (status.dimension === null && bytes > 0 && bytes % 4 === 0) status.dimension = bytes / 4;
      if (!belongs || bytes !== 4 * (status.dimension ?? 0)) {
        unreadable++;
        return;
      }
      records.push(body);
      goodKeys.push(hkey);
      goodSeqs.push(opened.seq);
    });
    if (goodKeys.length > 0) xorInto(digest, store.liveTags(goodKeys, goodSeqs));
    yield { records, unreadable };
    await yieldToEventLoop();
  }
}

/**
 * The ids the index should hold, as far as its authenticated snapshot table
 * and change log tell: the table's ids, then each later commit's upserts and
 * deletes in order. Entries or sections that do not authenticate are skipped.
 */
export async function expectedIds(store: IndexStore, manifest: Manifest | null): Promise<Set<string>> {
  const ids = new Set<string>();
  const ref = manifest?.snapshot;
  if (ref && hasValidWriteId(ref)) {
    try {
      for (const id of decodeTable(Buffer.concat(await store.readSnapshot(ref, 'table'))).ids) ids.add(id);
    } catch {
      // no usable table: the change log alone
    }
  }
  try {
    for await (const { seq, value } of store.changeLogEntries()) {
      if (ref && seq <= ref.counter) continue;
      try {
        const change = store.openChange(seq, value);
        for (const id of change.deleted) ids.delete(id);
        for (const id of change.upserted) ids.add(id);
      } catch {
        // an entry that does not authenticate names nothing we can trust
      }
    }
  } catch {
    // LevelDB cannot read further
  }
  return ids;
}
