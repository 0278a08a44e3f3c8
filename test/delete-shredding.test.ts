/**
 * deleteIndex() erases the index from LevelDB's files (review finding 3):
 * once it resolves, no file under the store directory holds any of the
 * index's stored values (records, manifest, change log, snapshot chunks) nor
 * its catalog entry's wrapped data key, and the same after close. Values are
 * sampled from a raw copy of the live store taken just before the delete;
 * the controls show the scan finds them when LevelDB only got tombstones, or
 * one plain compactRange.
 */
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it, vi } from 'vitest';
import type { CatalogEntry } from '../src/keys/envelope.js';
import { catalogKey, indexRange } from '../src/storage/layout.js';
import { KvStore } from '../src/storage/kv-store.js';
import { unpack } from '../src/util/msgpack.js';
import { Client, StorageError } from '../src/index.js';
import { openClient, openFresh, reopen } from './support/fixtures.js';
import { filesUnder, rejectsWithCode, tempStore } from './support/helpers.js';
import { randomVectors } from './support/vectors.js';

type Raw = ClassicLevel<Uint8Array, Uint8Array>;

/** How many of `needles` occur in some file under `dir`. */
function countFound(dir: string, needles: Buffer[]): number {
  const contents = filesUnder(dir).map((file) => readFileSync(file));
  return needles.filter((needle) => contents.some((bytes) => bytes.includes(needle))).length;
}

/** Opens a raw copy of the (possibly open) store `path`: LevelDB's files can be copied while it runs. */
async function rawCopy(path: string): Promise<{ dir: string; db: Raw }> {
  const dir = tempStore('vecvault-shred-copy-');
  cpSync(join(path, 'store'), join(dir, 'store'), { recursive: true });
  const db = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'store'), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  return { dir, db };
}

/**
 * What must vanish with index `name`: its wrapped DEK and, of every value
 * under its key range, 24 bytes from the ciphertext (random, so unique).
 * Returns the raw copy still open (for the controls) and the keys seen.
 */
async function sample(path: string, name: string) {
  const { dir, db } = await rawCopy(path);
  const entry = unpack((await db.get(catalogKey(name)))!) as CatalogEntry;
  const keys: Uint8Array[] = [];
  const needles: Buffer[] = [Buffer.from(entry.wrappedDek)];
  for await (const [key, value] of db.iterator(indexRange(entry.indexId))) {
    keys.push(key);
    needles.push(Buffer.from(value.subarray(value.byteLength - 40, value.byteLength - 16)));
  }
  return { dir, db, keys, needles, catalog: catalogKey(name) };
}

/** A store whose index `name` has values in LevelDB's tables at several levels and in its log, next to a kept index. */
async function layeredStore(path: string, key: Uint8Array) {
  const keep = Client.generateKey();
  const vectors = randomVectors(120, 8, 5);
  const ids = vectors.map((_, i) => `r-${i}`);
  {
    const client = openClient(path);
    const doomed = await client.createIndex({ indexName: 'doomed', indexKey: key, dimension: 8 });
    const kept = await client.createIndex({ indexName: 'kept', indexKey: keep, dimension: 8 });
    await doomed.upsert({ ids: ids.slice(0, 60), vectors: vectors.slice(0, 60), metadata: ids.slice(0, 60).map((id) => ({ id })) });
    await kept.upsert({ ids: ids.slice(0, 40), vectors: vectors.slice(0, 40) });
    await client.close(); // snapshots, and flushes the memtable into tables
  }
  const { client, index } = await reopen(path, key, 'doomed');
  await index.upsert({ ids: ids.slice(60, 100), vectors: vectors.slice(60, 100), contents: ids.slice(60, 100).map((id) => `contents of ${id}`) });
  await index.compact(); // snapshot + compaction: tables move down a level
  await index.upsert({ ids: ids.slice(100), vectors: vectors.slice(100) }); // and some only in the log
  await index.delete({ ids: ['r-1', 'r-2'] });
  return { client, index, keep, ids };
}

describe('deleteIndex erases the index from the store files', () => {
  it('an index written in this session only (values still in the .log): nothing of it is left once deleteIndex resolves, nor after close', async () => {
    const { path, client, index } = await openFresh({ indexName: 'doomed', dimension: 8 });
    const vectors = randomVectors(40, 8, 3);
    await index.upsert({ ids: vectors.map((_, i) => `v-${i}`), vectors, metadata: vectors.map((_, i) => ({ i })) });
    await index.delete({ ids: ['v-0'] });
    const { db, needles } = await sample(path, 'doomed');
    await db.close();
    expect(needles.length).toBeGreaterThan(40);
    expect(countFound(path, needles)).toBe(needles.length); // control: every sampled value is on disk before the delete
    await index.deleteIndex();
    expect(countFound(path, needles)).toBe(0);
    await client.close();
    expect(countFound(path, needles)).toBe(0);
  });

  it('an index with values in tables at several levels and in the log, beside another index: nothing left; the other index is intact', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const { client, index, keep, ids } = await layeredStore(path, key);
    const { db, needles } = await sample(path, 'doomed');
    await db.close();
    expect(countFound(path, needles)).toBeGreaterThan(needles.length / 2);
    await index.deleteIndex();
    expect(countFound(path, needles)).toBe(0);
    await client.close();
    expect(countFound(path, needles)).toBe(0);

    const again = openClient(path);
    await rejectsWithCode(again.loadIndex({ indexName: 'doomed', indexKey: key }), 'VECVAULT_INDEX_NOT_FOUND');
    const kept = await again.loadIndex({ indexName: 'kept', indexKey: keep });
    expect((await kept.listIds()).count).toBe(40);
    expect((await kept.get({ ids: ids.slice(0, 40) })).every((r) => r.vector !== undefined)).toBe(true);
    // The name can be used again at once.
    await again.createIndex({ indexName: 'doomed', indexKey: key, dimension: 8 });
  });

  it('controls: with tombstones alone (the old deleteIndex), or one plain compactRange after them, sampled values stay in the files', async () => {
    const cases = [
      ['tombstones', false],
      ['tombstones', true],
      ['one compactRange', false], // a small index flushed in one table with its tombstones: LevelDB never rewrites that table
    ] as const;
    for (const [mode, layered] of cases) {
      {
        const path = tempStore();
        const key = Client.generateKey();
        let close: () => Promise<void>;
        if (layered) {
          const { client } = await layeredStore(path, key);
          close = () => client.close();
        } else {
          const fresh = await openFresh({ path, indexName: 'doomed', indexKey: key, dimension: 8 });
          const vectors = randomVectors(40, 8, 3);
          await fresh.index.upsert({ ids: vectors.map((_, i) => `v-${i}`), vectors });
          close = () => fresh.client.close();
        }
        // The same deletion the old deleteIndex did (one batch of tombstones), on a raw copy of the live store.
        const sampled = await sample(path, 'doomed');
        const { keys, needles, catalog } = sampled;
        let { dir, db } = sampled;
        await close();
        if (!layered) {
          // Opening the copy replayed its log into a level-0 table; the live store still had these values in its
          // memtable. A fresh database given the same entries is in that state again.
          const entries: [Uint8Array, Uint8Array][] = [[catalog, (await db.get(catalog))!]];
          for (const k of keys) entries.push([k, (await db.get(k))!]);
          await db.close();
          dir = tempStore('vecvault-shred-fresh-');
          db = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'store'), { keyEncoding: 'view', valueEncoding: 'view' });
          await db.open({ compression: false });
          await db.batch(
            entries.map(([key, value]) => ({ type: 'put' as const, key, value })),
            { sync: true },
          );
        }
        await db.batch(
          [catalog, ...keys].map((k) => ({ type: 'del' as const, key: k })),
          { sync: true },
        );
        if (mode === 'one compactRange') {
          const range = indexRange(keys[0]!.subarray(1, 17));
          await db.compactRange(range.gte, range.lt);
          await db.compactRange(catalog, catalog);
        }
        await db.close();
        expect(countFound(dir, needles), `${mode}, ${layered ? 'layered' : 'log only'}`).toBeGreaterThan(0);
      }
    }
  });
});

describe('deleteIndex when erasing fails after the delete batch', () => {
  it('rejects with the storage error, and the handle is released: the index is gone and calls get VECVAULT_CLOSED', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'gone', dimension: 4 });
    await index.upsert({ ids: ['a'], vectors: [[1, 2, 3, 4]] });
    const shred = vi.spyOn(KvStore.prototype, 'shred').mockRejectedValueOnce(new StorageError('injected: compaction failed'));
    try {
      await rejectsWithCode(index.deleteIndex(), 'VECVAULT_IO');
    } finally {
      shred.mockRestore();
    }
    await rejectsWithCode(index.listIds(), 'VECVAULT_CLOSED');
    expect(await client.listIndexes()).toEqual([]);
    await client.close();
    // The next open finishes erasing it; the name is free again.
    const again = openClient(path);
    await rejectsWithCode(again.loadIndex({ indexName: 'gone', indexKey: key }), 'VECVAULT_INDEX_NOT_FOUND');
  });
});
