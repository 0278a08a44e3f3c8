/**
 * Key rotation meets per-user keys and signed commits: `rotateKey` keeps the
 * index signed and every user working (their material does not depend on the
 * root key); `rotateDataKey` re-seals a signed index under a new generation
 * that stays signed (writer tags, the signing seed under the new admin key),
 * carries every user over (same user key, same permissions, the new
 * generation's keys; user material is bound to the users id, which the
 * rotation keeps while the index id changes), erases the old generation's
 * user material from the files, and refuses user handles.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';
import { openUser, userSlot } from '../src/keys/users.js';
import { catalogKey, indexKey, kindRange, USER, USER_DIR, USERS_ADMIN } from '../src/storage/layout.js';
import { pack, unpack } from '../src/util/msgpack.js';
import { openClient, openFresh } from './support/fixtures.js';
import { rawCatalogEntry, rawStore, rejectsWithCode } from './support/helpers.js';
import { countFound } from './support/rotation.js';

const items = [
  { id: 'a', vector: [1, 0, 0], metadata: { team: 'red' } },
  { id: 'b', vector: [0, 1, 0], metadata: { team: 'blue' } },
];

describe('rotation of a signed index with users', () => {
  it('rotateKey: the root opens with the new key only; readers and writers keep their keys and permissions', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'n', dimension: 3 });
    await index.upsert({ items });
    const reader = await index.createUserKey({ userId: 'r', permissions: ['read'] });
    const writer = await index.createUserKey({ userId: 'w', permissions: ['read', 'write'] });
    const newKey = Client.generateKey();
    await index.rotateKey({ indexKey: newKey });
    await client.close();

    const again = openClient(path);
    await rejectsWithCode(again.loadIndex({ indexName: 'n', indexKey: key }), 'VECVAULT_INVALID_KEY');
    const root = await again.loadIndex({ indexName: 'n', indexKey: newKey });
    expect((await root.listUsers()).map((u) => u.userId).sort()).toEqual(['r', 'w']);
    const asWriter = await again.loadIndex({ indexName: 'n', indexKey: writer, userId: 'w' });
    await asWriter.upsert({ items: [{ id: 'c', vector: [0, 0, 1] }] });
    const asReader = await again.loadIndex({ indexName: 'n', indexKey: reader, userId: 'r' });
    expect((await asReader.listIds()).ids.sort()).toEqual(['a', 'b', 'c']);
    await rejectsWithCode(asReader.upsert({ items: [{ id: 'd', vector: [1, 1, 0] }] }), 'VECVAULT_PERMISSION');
    await rejectsWithCode(asWriter.rotateKey({ indexKey: Client.generateKey() }), 'VECVAULT_PERMISSION');
    expect((await root.verify()).ok).toBe(true);
  });

  it('rotateDataKey on a signed index without users: stays signed and verifiable under the new generation; users can be created after', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'n', dimension: 3 });
    await index.upsert({ items });
    const before = index.stats();
    await index.rotateDataKey();
    expect(index.stats().count).toBe(before.count);
    await client.close();

    const again = openClient(path);
    const root = await again.loadIndex({ indexName: 'n', indexKey: key });
    expect((await root.verify()).ok).toBe(true);
    await root.upsert({ items: [{ id: 'c', vector: [0, 0, 1] }] }); // signs and tags with the new generation's keys
    const readerKey = await root.createUserKey({ userId: 'r', permissions: ['read'] });
    const asReader = await again.loadIndex({ indexName: 'n', indexKey: readerKey, userId: 'r' });
    expect((await asReader.listIds()).ids.sort()).toEqual(['a', 'b', 'c']);
    await rejectsWithCode(asReader.rotateDataKey(), 'VECVAULT_PERMISSION');
    await root.rotateDataKey(); // a user created after a rotation survives the next one too
    await again.close();

    const third = openClient(path);
    expect((await (await third.loadIndex({ indexName: 'n', indexKey: key })).verify()).ok).toBe(true);
    expect((await (await third.loadIndex({ indexName: 'n', indexKey: readerKey, userId: 'r' })).listIds()).count).toBe(3);
  });

  it('rotateDataKey with users: each keeps the same key and permissions and gets the new generation; revoked users stay revoked; revocation after works', async () => {
    const first = await openFresh({ indexName: 'n', dimension: 3 });
    const { path, key } = first;
    await first.index.upsert({ items });
    const reader = await first.index.createUserKey({ userId: 'r', permissions: ['read'] });
    const writer = await first.index.createUserKey({ userId: 'w', permissions: ['read', 'write'] });
    const gone = await first.index.createUserKey({ userId: 'gone', permissions: ['read', 'write'] });
    await first.index.revokeUser({ userId: 'gone' });
    const firstId = (await rawCatalogEntryClosed(first.client, path)).indexId;
    const client = openClient(path);
    const index = await client.loadIndex({ indexName: 'n', indexKey: key });
    const openReader = await client.loadIndex({ indexName: 'n', indexKey: reader, userId: 'r' });
    const openWriter = await client.loadIndex({ indexName: 'n', indexKey: writer, userId: 'w' });
    await index.rotateDataKey();
    // Handles of this process share the rotated state: they keep working, with their permissions.
    expect((await openReader.listIds()).ids.sort()).toEqual(['a', 'b']);
    await openWriter.upsert({ items: [{ id: 'c', vector: [0, 0, 1] }] });
    await rejectsWithCode(openReader.upsert({ items: [{ id: 'x', vector: [1, 1, 1] }] }), 'VECVAULT_PERMISSION');
    await client.close();

    // The catalog names a new index id and generation, and keeps the users id (the first index id).
    const entry = await rawCatalogEntry(path, 'n');
    expect(Buffer.from(entry.indexId).equals(Buffer.from(firstId))).toBe(false);
    expect(entry.dekGeneration).toBe(2);
    expect(Buffer.from(entry.usersId!).equals(Buffer.from(firstId))).toBe(true);
    // What the reader's key opens: the new generation's reader subkeys only, no writer or root material.
    const raw = await rawStore(path);
    const slot = userSlot(reader, entry.usersId!, 'r');
    const value = await raw.get(indexKey(entry.indexId, USER, slot));
    // Control: bound to the (new) index id instead of the users id, the reader's key would find no entry.
    expect(await raw.get(indexKey(entry.indexId, USER, userSlot(reader, entry.indexId, 'r')))).toBeUndefined();
    await raw.close();
    const opened = openUser({ usersId: entry.usersId!, indexName: 'n', userId: 'r', userKey: reader, generation: 2, slot, value });
    expect(opened.permissions).toEqual(['read']);
    expect(opened.keys.recordAuth).toBeUndefined();
    expect(opened.keys.signSeed).toBeUndefined();
    expect(opened.keys.admin).toBeUndefined();
    expect(() => openUser({ usersId: entry.usersId!, indexName: 'n', userId: 'r', userKey: reader, generation: 1, slot, value })).toThrow(/current data key/);

    const again = openClient(path);
    const root = await again.loadIndex({ indexName: 'n', indexKey: key }); // the root key source is unchanged
    expect(await root.listUsers()).toEqual([
      { userId: 'r', permissions: ['read'] },
      { userId: 'w', permissions: ['read', 'write'] },
    ]);
    await rejectsWithCode(again.loadIndex({ indexName: 'n', indexKey: gone, userId: 'gone' }), 'VECVAULT_INVALID_KEY');
    const asWriter = await again.loadIndex({ indexName: 'n', indexKey: writer, userId: 'w' });
    await asWriter.upsert({ items: [{ id: 'd', vector: [1, 1, 0] }] }); // signed and tagged with the new generation's keys
    const asReader = await again.loadIndex({ indexName: 'n', indexKey: reader, userId: 'r' });
    expect((await asReader.listIds()).ids.sort()).toEqual(['a', 'b', 'c', 'd']);
    await rejectsWithCode(asReader.upsert({ items: [{ id: 'x', vector: [1, 1, 1] }] }), 'VECVAULT_PERMISSION');
    await rejectsWithCode(asWriter.rotateDataKey(), 'VECVAULT_PERMISSION');
    expect((await root.verify()).ok).toBe(true);

    // Twice more (the users id is carried, not re-derived), with a rotateKey in between; then revocation.
    await root.rotateDataKey();
    const newKey = Client.generateKey();
    await root.rotateKey({ indexKey: newKey });
    await root.rotateDataKey();
    await root.revokeUser({ userId: 'r' });
    await again.close();

    const third = openClient(path);
    await rejectsWithCode(third.loadIndex({ indexName: 'n', indexKey: reader, userId: 'r' }), 'VECVAULT_INVALID_KEY');
    const w3 = await third.loadIndex({ indexName: 'n', indexKey: writer, userId: 'w' });
    await w3.upsert({ items: [{ id: 'e', vector: [1, 0, 1] }] });
    const r3 = await third.loadIndex({ indexName: 'n', indexKey: newKey });
    expect((await r3.listUsers()).map((u) => u.userId)).toEqual(['w']);
    expect((await r3.verify()).ok).toBe(true);
    expect((await rawCatalogEntryClosed(third, path)).dekGeneration).toBe(4);
  });

  it('revokeUser called while rotateDataKey runs waits for it, then revokes: the revoked user is out, the other keeps working', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'n', dimension: 3 });
    await index.upsert({ items: Array.from({ length: 2_000 }, (_, i) => ({ id: `r${i}`, vector: [i % 7, i % 11, 1] })) });
    const reader = await index.createUserKey({ userId: 'r', permissions: ['read'] });
    const writer = await index.createUserKey({ userId: 'w', permissions: ['read', 'write'] });
    let progressed = 0;
    const rotating = index.rotateDataKey({ onProgress: () => progressed++ });
    const revoking = index.revokeUser({ userId: 'w' }); // a writer: the revocation commits and renews the signing key
    await Promise.all([rotating, revoking]);
    expect(progressed).toBeGreaterThan(2);
    await client.close();

    const again = openClient(path);
    await rejectsWithCode(again.loadIndex({ indexName: 'n', indexKey: writer, userId: 'w' }), 'VECVAULT_INVALID_KEY');
    expect((await (await again.loadIndex({ indexName: 'n', indexKey: reader, userId: 'r' })).listIds()).count).toBe(2_000);
    const root = await again.loadIndex({ indexName: 'n', indexKey: key });
    expect(await root.listUsers()).toEqual([{ userId: 'r', permissions: ['read'] }]);
    expect((await root.verify()).ok).toBe(true);
  });

  it('the users id is bound into the data key wrap: stripped or replaced in the catalog entry, the root open fails (control: untouched, it opens)', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'n', dimension: 3 });
    await index.createUserKey({ userId: 'r', permissions: ['read'] });
    await index.rotateDataKey();
    await client.close();
    const entry = await rawCatalogEntry(path, 'n');
    const original = await rawValue(path, catalogKey('n'));
    for (const edit of [{ usersId: undefined }, { usersId: randomBytes(16) }]) {
      await putRaw(path, catalogKey('n'), pack({ ...entry, ...edit }));
      const c = new Client({ path });
      const error = await c.loadIndex({ indexName: 'n', indexKey: key }).then(
        () => undefined,
        (e: { code?: string }) => e.code,
      );
      await c.close();
      expect(error).toBe('VECVAULT_INTEGRITY');
    }
    await putRaw(path, catalogKey('n'), original);
    const c = openClient(path);
    expect((await (await c.loadIndex({ indexName: 'n', indexKey: key })).listUsers()).map((u) => u.userId)).toEqual(['r']);
  });

  it("the old generation's user material (grants, bodies, directory, signing-key entry) is erased from the files; each user's wrap is carried as it is", async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'n', dimension: 3 });
    await index.upsert({ items });
    await index.createUserKey({ userId: 'r', permissions: ['read'] });
    await index.createUserKey({ userId: 'w', permissions: ['read', 'write'] });
    await client.close();
    const old = await userMaterial(path);
    expect(old.erased.length).toBeGreaterThanOrEqual(6);
    // Control: the scan finds all of it before.
    expect(countFound(path, old.erased)).toBe(old.erased.length);
    expect(countFound(path, old.wraps)).toBe(2);

    const again = openClient(path);
    await (await again.loadIndex({ indexName: 'n', indexKey: key })).rotateDataKey();
    expect(countFound(path, old.erased)).toBe(0); // erased once the call resolves
    await again.close();
    expect(countFound(path, old.erased)).toBe(0);
    // The wrap of U under each user's key is the one thing kept: it needs the user's key to redo, and opens nothing of the old generation.
    expect(countFound(path, old.wraps)).toBe(2);
  });
});

async function rawValue(path: string, key: Uint8Array): Promise<Uint8Array> {
  const db = await rawStore(path);
  try {
    return (await db.get(key))!;
  } finally {
    await db.close();
  }
}

async function putRaw(path: string, key: Uint8Array, value: Uint8Array): Promise<void> {
  const db = await rawStore(path);
  try {
    await db.put(key, value);
  } finally {
    await db.close();
  }
}

/** The catalog entry of index `n`, read after closing `client` (raw LevelDB needs the lock). */
async function rawCatalogEntryClosed(client: Client, path: string) {
  await client.close();
  return rawCatalogEntry(path, 'n');
}

/**
 * Index `n`'s user material as stored (its Client closed): 24 ciphertext bytes of every grant and
 * body of every user entry, of every directory entry and of the signing-key entry (`erased`), and
 * each user's wrap of U (`wraps`).
 */
async function userMaterial(path: string): Promise<{ erased: Buffer[]; wraps: Buffer[] }> {
  const entry = await rawCatalogEntry(path, 'n');
  const db = await rawStore(path);
  const tail = (v: Uint8Array) => Buffer.from(v.subarray(v.byteLength - 40, v.byteLength - 16));
  const out = { erased: [] as Buffer[], wraps: [] as Buffer[] };
  try {
    for (const kind of [USER, USER_DIR, USERS_ADMIN]) {
      for await (const [, value] of db.iterator(kindRange(entry.indexId, kind))) {
        if (kind !== USER) {
          out.erased.push(tail(value));
          continue;
        }
        const e = unpack(value) as { wrap: Uint8Array; body: Uint8Array; grants: Record<string, Uint8Array> };
        out.wraps.push(Buffer.from(e.wrap));
        out.erased.push(tail(e.body), ...Object.values(e.grants).map(tail));
      }
    }
  } finally {
    await db.close();
  }
  return out;
}
