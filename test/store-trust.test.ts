/**
 * Review findings 4, 5 and 6 (part) on the store directory, each failing
 * before its fix: the commit-head temp file followed a planted symlink (4); a
 * removed catalog entry made an index vanish as "not found" and its name
 * reusable over its remains (5); the commit counter sat in clear in the head
 * file (6). Format-1 head files (the previous release) still open.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { frame, hmac, u64 } from '../src/crypto/kdf.js';
import { deriveIndexKeys, openEnvelope, type CatalogEntry } from '../src/keys/envelope.js';
import { HeadFile } from '../src/storage/heads.js';
import { catalogKey, indexRange } from '../src/storage/layout.js';
import { unpack } from '../src/util/msgpack.js';
import { Client } from '../src/index.js';
import { openClient, openFresh, reopen, storedTwoRecords } from './support/fixtures.js';
import { rawStore, rejectsWithCode, tempStore } from './support/helpers.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function catalogOf(path: string, name: string): Promise<CatalogEntry> {
  const db = await rawStore(path);
  try {
    return unpack((await db.get(catalogKey(name)))!) as CatalogEntry;
  } finally {
    await db.close();
  }
}

/** The head key of index `name` (what Store gives its HeadFile), from the raw catalog and the index key. */
async function headKeyOf(path: string, name: string, key: Uint8Array): Promise<{ entry: CatalogEntry; headKey: Buffer }> {
  const entry = await catalogOf(path, name);
  const keys = deriveIndexKeys(openEnvelope(key, name, entry), entry.indexId, entry.format);
  return { entry, headKey: Buffer.from(keys.head) };
}

const populated = (name = 'x') => storedTwoRecords({ indexName: name });

describe('4. no file vecvault writes follows a planted symlink', () => {
  it('symlinks planted at the head, its old temp name and any temp name never redirect a write; the victim is unchanged', async () => {
    const { path, key } = await populated();
    const victimDir = tempStore('vecvault-victim-');
    const victim = join(victimDir, 'victim.txt');
    writeFileSync(victim, 'precious data\n');
    const before = statSync(victim);
    const heads = join(path, 'heads');
    const [headName] = readdirSync(heads);
    // The old code wrote `<head>.tmp` with flag 'w', which follows a symlink there.
    symlinkSync(victim, join(heads, `${headName}.tmp`));

    const { client, index } = await reopen(path, key, 'x');
    await index.upsert({ ids: ['c'], vectors: [[1, 1]] });
    await client.close();
    expect(readFileSync(victim, 'utf8')).toBe('precious data\n');
    expect(statSync(victim).size).toBe(before.size);
    expect(lstatSync(join(heads, headName!)).isFile()).toBe(true);

    // A symlink in place of the head itself: it is never read through (IntegrityError), and a write replaces the link.
    rmSync(join(heads, headName!));
    symlinkSync(victim, join(heads, headName!));
    const c2 = new Client({ path });
    await rejectsWithCode(c2.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
    await c2.close();
    expect(readFileSync(victim, 'utf8')).toBe('precious data\n');

    // Negative control: a plain write through a planted name (flag 'w', as the old head code wrote) does reach the victim.
    symlinkSync(victim, join(heads, 'control.tmp'));
    writeFileSync(join(heads, 'control.tmp'), 'overwritten\n');
    expect(readFileSync(victim, 'utf8')).toBe('overwritten\n');
  });

  it('heads/ or store/ replaced by a symlink to elsewhere → IntegrityError, nothing written there', async () => {
    for (const dir of ['heads', 'store']) {
      const { path, key } = await populated();
      const elsewhere = tempStore('vecvault-elsewhere-');
      renameSync(join(path, dir), join(elsewhere, dir));
      symlinkSync(join(elsewhere, dir), join(path, dir));
      const before = readdirSync(join(elsewhere, dir)).sort();
      const client = new Client({ path });
      await rejectsWithCode(client.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
      await client.close();
      expect(readdirSync(join(elsewhere, dir)).sort()).toEqual(before);
    }
  });

  it('the head temp file is opened O_CREAT|O_EXCL|O_NOFOLLOW under a random name and never left behind', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'x', dimension: 2 });
    for (let i = 0; i < 5; i++) await index.upsert({ ids: [`i${i}`], vectors: [[i, 1]] });
    await client.close();
    expect(readdirSync(join(path, 'heads'))).toHaveLength(1);
    // Stale temp files of a crash (old or new naming) are removed at the next open.
    const heads = join(path, 'heads');
    const [headName] = readdirSync(heads);
    writeFileSync(join(heads, `${headName}.tmp`), 'x');
    writeFileSync(join(heads, `${headName}.0123456789abcdef.tmp`), 'x');
    const again = await reopen(path, key, 'x');
    expect(readdirSync(heads)).toEqual([headName]);
    await again.client.close();
  });
});

describe('5. an index whose catalog entry vanished is never reported absent, nor its name reused', () => {
  it('catalog entry removed, data and head remain → loadIndex and createIndex of that name: IntegrityError; other names work', async () => {
    const { path, key } = await populated('x');
    const db = await rawStore(path);
    await db.del(catalogKey('x'));
    await db.close();
    const client = openClient(path);
    await rejectsWithCode(client.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
    await rejectsWithCode(client.createIndex({ indexName: 'x', indexKey: key, dimension: 2 }), 'VECVAULT_INTEGRITY');
    // The head names the lost index, so other names are not in doubt.
    await client.createIndex({ indexName: 'y', indexKey: key, dimension: 2 });
    await rejectsWithCode(client.loadIndex({ indexName: 'zzz', indexKey: key }), 'VECVAULT_INDEX_NOT_FOUND');
  });

  it('catalog entry and every key gone (the database lost the index), head remains → IntegrityError for that name', async () => {
    const { path, key } = await populated('x');
    const entry = await catalogOf(path, 'x');
    const db = await rawStore(path);
    const range = indexRange(entry.indexId);
    const keys: Uint8Array[] = [];
    for await (const k of db.keys(range)) keys.push(k);
    await db.batch([catalogKey('x'), ...keys].map((k) => ({ type: 'del' as const, key: k })));
    await db.close();
    const client = openClient(path);
    await rejectsWithCode(client.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
    await rejectsWithCode(client.createIndex({ indexName: 'x', indexKey: key, dimension: 2 }), 'VECVAULT_INTEGRITY');
  });

  it('catalog entry and head removed, data remains (name unknown) → every absent name is refused', async () => {
    const { path, key } = await populated('x');
    const entry = await catalogOf(path, 'x');
    rmSync(join(path, 'heads', hex(entry.indexId)));
    const db = await rawStore(path);
    await db.del(catalogKey('x'));
    await db.close();
    const client = openClient(path);
    await rejectsWithCode(client.createIndex({ indexName: 'x', indexKey: key, dimension: 2 }), 'VECVAULT_INTEGRITY');
    await rejectsWithCode(client.createIndex({ indexName: 'other', indexKey: key, dimension: 2 }), 'VECVAULT_INTEGRITY');
    await rejectsWithCode(client.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
  });

  it('an interrupted delete (head marked deleting, keys gone) or create (head creating, nothing else) is finished at open: the name is free', async () => {
    const { path, key } = await populated('x');
    const { entry, headKey } = await headKeyOf(path, 'x', key);
    const { client, index } = await reopen(path, key, 'x');
    await index.deleteIndex();
    await client.close();
    // As if the process died after the delete batch, before removing its head.
    await new HeadFile(join(path, 'heads'), entry.indexId, headKey, 'x').markDeleting();
    // And a create that died after its first head, before its catalog batch.
    const ghostId = Buffer.alloc(16, 7);
    await new HeadFile(join(path, 'heads'), ghostId, headKey, 'ghost').create(0);
    expect(readdirSync(join(path, 'heads'))).toHaveLength(2);

    const again = openClient(path);
    await rejectsWithCode(again.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INDEX_NOT_FOUND');
    expect(readdirSync(join(path, 'heads'))).toHaveLength(0);
    await again.createIndex({ indexName: 'x', indexKey: key, dimension: 2 });
    await again.createIndex({ indexName: 'ghost', indexKey: key, dimension: 2 });
  });

  it('limit (README): an index removed whole — catalog entry, keys and head — leaves no trace, and its name is free', async () => {
    // Also the control for the test above: the head is what tells a lost index from one never created.
    const { path, key } = await populated('x');
    const entry = await catalogOf(path, 'x');
    const db = await rawStore(path);
    const keys: Uint8Array[] = [catalogKey('x')];
    for await (const k of db.keys(indexRange(entry.indexId))) keys.push(k);
    await db.batch(keys.map((k) => ({ type: 'del' as const, key: k })));
    await db.close();
    rmSync(join(path, 'heads', hex(entry.indexId)));
    const client = openClient(path);
    await client.createIndex({ indexName: 'x', indexKey: key, dimension: 2 });
  });
});

describe('6. the commit counter is sealed in the head file', () => {
  it('format 2: version byte 2, the counter nowhere in clear, the same size at every counter; a flipped byte → IntegrityError', async () => {
    const { path, key, client } = await openFresh({ indexName: 'x', dimension: 2 });
    await client.close();
    const entry = await catalogOf(path, 'x');
    const headPath = join(path, 'heads', hex(entry.indexId));
    const sizes = new Set<number>();
    const again = await reopen(path, key, 'x');
    for (let i = 1; i <= 3; i++) {
      await again.index.upsert({ ids: [`i${i}`], vectors: [[i, 1]] });
      const head = readFileSync(headPath);
      sizes.add(head.byteLength);
      expect(head[0]).toBe(2);
      expect(head.includes(u64(i))).toBe(false);
      expect((await again.index.stats()).commitCounter).toBe(i);
    }
    expect(sizes.size).toBe(1);
    await again.client.close();
    const head = readFileSync(headPath);
    for (const at of [1, 5, head.byteLength - 20, head.byteLength - 1]) {
      const bad = Buffer.from(head);
      bad[at]! ^= 1;
      writeFileSync(headPath, bad);
      const c = new Client({ path });
      await rejectsWithCode(c.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
      await c.close();
    }
    writeFileSync(headPath, head);
    await (await reopen(path, key, 'x')).client.close();
  });

  it('a format-1 head (counter in clear, HMAC) still opens and is rolled back-checked; the next commit rewrites it as format 2', async () => {
    const { path, key } = await populated('x');
    const { entry, headKey } = await headKeyOf(path, 'x', key);
    const headPath = join(path, 'heads', hex(entry.indexId));
    const v1 = (counter: number) => Buffer.concat([Buffer.of(1), u64(counter), hmac(headKey, frame('head', entry.indexId, u64(counter)))]);
    writeFileSync(headPath, v1(1)); // populated() made one commit
    const { client, index } = await reopen(path, key, 'x');
    expect((await index.listIds()).count).toBe(2);
    await index.upsert({ ids: ['c'], vectors: [[1, 1]] });
    await client.close();
    expect(readFileSync(headPath)[0]).toBe(2);
    // A format-1 head ahead of the store is still caught.
    writeFileSync(headPath, v1(9));
    const c = new Client({ path });
    await rejectsWithCode(c.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
    await c.close();
  });

  it('a head naming another index (moved from it) → IntegrityError', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const client = openClient(path);
    await client.createIndex({ indexName: 'x', indexKey: key, dimension: 2 });
    await client.close();
    const { entry, headKey } = await headKeyOf(path, 'x', key);
    mkdirSync(join(path, 'heads'), { recursive: true });
    await new HeadFile(join(path, 'heads'), entry.indexId, headKey, 'not-x').update(0);
    const c = new Client({ path });
    await rejectsWithCode(c.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
    await c.close();
    expect(existsSync(join(path, 'heads', hex(entry.indexId)))).toBe(true);
  });
});
