/**
 * `index.verify()`: authenticates every value an index keeps (catalog entry,
 * manifest, commit head, every record, the change log, both snapshot
 * sections) and recomputes the manifest digest from the records, reporting
 * each problem instead of stopping at the first. It reads through the
 * IndexStore seam only and writes nothing. The caller runs it inside the
 * index's write queue, so the store holds still while it reads; queries go on.
 *
 * Problem details never hold record ids, metadata or any other plaintext.
 */
import { constantTimeEqual } from '../crypto/kdf.js';
import { VecvaultError } from '../errors.js';
import type { IndexStore } from '../storage/index-store.js';
import type { Manifest } from '../storage/manifest.js';
import { decodeTable, hasValidWriteId } from '../storage/snapshot.js';
import { decodeCatalogEntry } from '../storage/store.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import type { VerifyProblem, VerifyReport } from '../api/check-types.js';
import type { Progress } from '../api/types.js';
import { xorInto } from './digest.js';
import { recordFault } from './record-reader.js';

/** What verify reads, for `onProgress`: records, change-log entries and snapshot chunks, plus catalog, manifest and head. */
export async function verifyIndex(store: IndexStore, memory: Manifest, onProgress?: (progress: Progress) => void): Promise<VerifyReport> {
  const problems: VerifyProblem[] = [];
  const checked = { catalog: 0, manifest: 0, head: 0, records: 0, changeLog: 0, snapshotChunks: 0 };
  const problem = (kind: VerifyProblem['kind'], detail: string) => problems.push({ kind, detail });
  const described = (error: unknown) => (error instanceof VecvaultError ? error.code : 'unexpected error');
  const snapshotChunks = memory.snapshot ? memory.snapshot.graphChunks + memory.snapshot.tableChunks : 0;
  const total = 3 + memory.count + snapshotChunks;
  let done = 0;
  const advance = (n: number) => {
    done = Math.min(total, done + n);
    onProgress?.({ done, total });
  };

  // Catalog entry: present, well-formed, naming this index's id (the key check at open authenticated its envelope).
  try {
    const raw = await store.readCatalogEntry();
    if (raw === undefined) problem('catalog', 'the catalog entry of the index is missing');
    else if (!constantTimeEqual(decodeCatalogEntry(raw, store.indexName).indexId, store.indexId))
      problem('catalog', 'the catalog entry names another index id');
    else checked.catalog = 1;
  } catch (error) {
    problem('catalog', `the catalog entry is unreadable (${described(error)})`);
  }
  advance(1);

  // Manifest: authenticates, and is the one this handle committed last.
  let manifest: Manifest = memory;
  try {
    manifest = await store.readManifest({ checkHead: false });
    if (manifest.counter !== memory.counter || manifest.count !== memory.count || !constantTimeEqual(manifest.digest, memory.digest))
      problem('manifest', `the stored manifest (commit ${manifest.counter}) is not the one this handle committed last (commit ${memory.counter})`);
    else checked.manifest = 1;
  } catch (error) {
    problem('manifest', `the manifest does not authenticate (${described(error)})`);
  }
  advance(1);

  // Commit head: authenticates and is not ahead of the manifest.
  try {
    const head = store.readHead();
    if (head > manifest.counter)
      problem('head', `the commit head acknowledges commit ${head}, the store holds only ${manifest.counter}: committed writes are missing`);
    else checked.head = 1;
  } catch (error) {
    problem('head', `the commit head is missing or does not authenticate (${described(error)})`);
  }
  advance(1);

  // Records: each authenticates, belongs under its key, is not newer than the manifest, has the dimension; digest and count add up.
  const digest = new Uint8Array(32);
  let count = 0;
  const bad = { auth: 0, key: 0, seq: 0, dimension: 0 };
  for await (const { hkeys, values } of store.recordBatches(SLICE)) {
    if (hkeys.length === 0) continue;
    const opened = openEach(store, hkeys, values);
    const goodKeys: Uint8Array[] = [];
    const goodSeqs: number[] = [];
    const expected = store.hashIds(opened.map((r) => r?.body.id ?? ''));
    opened.forEach((record, i) => {
      count++;
      if (record === undefined) return void bad.auth++;
      const fault = recordFault(record, hkeys[i]!, expected[i]!, manifest);
      if (fault !== undefined) return void bad[fault]++;
      goodKeys.push(hkeys[i]!);
      goodSeqs.push(record.seq);
      checked.records++;
    });
    if (goodKeys.length > 0) xorInto(digest, store.liveTags(goodKeys, goodSeqs));
    advance(hkeys.length);
    await yieldToEventLoop();
  }
  if (bad.auth > 0) problem('record', `${bad.auth} record(s) do not authenticate (altered, truncated, or sealed under another key)`);
  if (bad.key > 0) problem('record', `${bad.key} record(s) are stored under another record's key (moved or swapped)`);
  if (bad.seq > 0) problem('record', `${bad.seq} record(s) claim a commit newer than the manifest`);
  if (bad.dimension > 0) problem('record', `${bad.dimension} record(s) do not have the index's dimension`);
  if (count !== manifest.count) problem('digest', `the index stores ${count} record(s), its manifest counts ${manifest.count}`);
  else if (!constantTimeEqual(digest, manifest.digest))
    problem('digest', 'the records do not add up to the manifest digest (a record is missing, extra, or from an older commit)');

  // Change log: each entry authenticates under its commit number, after the snapshot and not after the manifest.
  const after = manifest.snapshot?.counter ?? 0;
  let badChanges = 0;
  let outOfRange = 0;
  for await (const { seq, value } of store.changeLogEntries()) {
    if (seq <= after || seq > manifest.counter) {
      outOfRange++;
      continue;
    }
    try {
      store.openChange(seq, value);
      checked.changeLog++;
    } catch {
      badChanges++;
    }
  }
  if (badChanges > 0) problem('changelog', `${badChanges} change-log entr${badChanges === 1 ? 'y does' : 'ies do'} not authenticate`);
  if (outOfRange > 0) problem('changelog', `${outOfRange} change-log entr${outOfRange === 1 ? 'y is' : 'ies are'} outside the commits after the snapshot`);

  // Snapshot: both sections authenticate chunk by chunk, and the table reflects the snapshot's commit.
  const ref = manifest.snapshot;
  if (ref) {
    if (!Number.isInteger(ref.graphChunks) || !Number.isInteger(ref.tableChunks) || !hasValidWriteId(ref)) {
      problem('snapshot', 'the snapshot reference has an unknown format');
    } else {
      for (const section of ['graph', 'table'] as const) {
        const chunks = section === 'graph' ? ref.graphChunks : ref.tableChunks;
        try {
          if (section === 'table') {
            const table = decodeTable(Buffer.concat(await store.readSnapshot(ref, section)));
            if (table.counter !== ref.counter || table.ids.length !== table.count) throw new Error('table mismatch');
          } else {
            // Streamed: the graph is authenticated chunk by chunk without holding it all.
            for await (const chunk of store.snapshotStream(ref, section).chunks) void chunk;
          }
          checked.snapshotChunks += chunks;
        } catch (error) {
          problem('snapshot', `the ${section} section of the snapshot does not authenticate or is malformed (${described(error)})`);
        }
        advance(chunks);
      }
    }
  }
  onProgress?.({ done: total, total });
  return { ok: problems.length === 0, checked, problems };
}

/** Opens each record on its own after a batch fails, so one bad record does not hide the others. */
function openEach(store: IndexStore, hkeys: Uint8Array[], values: Uint8Array[]): (ReturnType<IndexStore['openRecords']>[number] | undefined)[] {
  try {
    return store.openRecords(hkeys, values);
  } catch {
    return hkeys.map((hkey, i) => {
      try {
        return store.openRecords([hkey], [values[i]!])[0];
      } catch {
        return undefined;
      }
    });
  }
}
