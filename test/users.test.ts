/**
 * Per-user keys (DESIGN §7, docs/key-sources.md): users created by the root
 * key source open the index with their own key and userId; a read-only user's
 * writes and any user's administration calls are PermissionError with nothing
 * written; revocation takes effect at once and erases the user's wraps from the
 * files; users survive a change of the root key source (what rotateKey does)
 * and a new data key generation (`grantDataKeyToUsers`, what rotateDataKey
 * calls). The forgery tests are in users-forgery.test.ts.
 */
import { cpSync, readFileSync } from 'node:fs';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { Client, type CustomSlot, type EncryptedIndex } from '../src/index.js';
import { seal } from '../src/crypto/aead.js';
import { deriveKey, frame, u64 } from '../src/crypto/kdf.js';
import { generateSigningKey } from '../src/crypto/sign.js';
import { deriveIndexKeys, openEnvelope } from '../src/keys/envelope.js';
import {
  directoryKey,
  grantDataKeyToUsers,
  newUser,
  openDirectory,
  openSigningSeed,
  openUser,
  regrantUsers,
  rootUserKeys,
  userSlot,
} from '../src/keys/users.js';
import { KvStore } from '../src/storage/kv-store.js';
import { catalogKey, indexKey, indexRange, USER, USER_DIR } from '../src/storage/layout.js';
import { pack } from '../src/util/msgpack.js';
import { openClient, openFresh } from './support/fixtures.js';
import { allBytes, rawCatalogEntry, rawStore, rejectsWithCode, tempStore } from './support/helpers.js';

const items = [
  { id: 'a', vector: [1, 0, 0], metadata: { team: 'red' }, contents: 'alpha' },
  { id: 'b', vector: [0, 1, 0], metadata: { team: 'blue' } },
  { id: 'c', vector: [0, 0, 1], metadata: { team: 'red' } },
];

const catalogOf = rawCatalogEntry;

/** Every call a handle offers that writes, with arguments. */
const writes: [string, (index: EncryptedIndex) => Promise<unknown>][] = [
  ['upsert', (i) => i.upsert({ items: [{ id: 'z', vector: [1, 1, 1] }] })],
  ['delete', (i) => i.delete({ ids: ['a'] })],
  ['compact', (i) => i.compact()],
  ['snapshot', (i) => i.snapshot()],
  ['train', (i) => i.train()],
];
/** Every call only the root key source may make. */
const adminCalls: [string, (index: EncryptedIndex) => Promise<unknown>][] = [
  ['createUserKey', (i) => i.createUserKey({ userId: 'mallory', permissions: ['read', 'write'] })],
  ['listUsers', (i) => i.listUsers()],
  ['revokeUser', (i) => i.revokeUser({ userId: 'alice' })],
  ['deleteIndex', (i) => i.deleteIndex()],
];

describe('per-user keys', () => {
  it('a reader and a writer open the index with their own keys; the reader reads everything, the writer also writes', async () => {
    const { path, key, client, index } = await openFresh({ dimension: 3, metric: 'cosine' });
    await index.upsert({ items });
    const aliceKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
    const bobKey = await index.createUserKey({ userId: 'bob', permissions: ['write', 'read'] });
    expect(aliceKey).toBeInstanceOf(Uint8Array);
    expect(aliceKey.byteLength).toBe(32);
    expect(Buffer.from(aliceKey).equals(Buffer.from(bobKey))).toBe(false);
    expect(await index.listUsers()).toEqual([
      { userId: 'alice', permissions: ['read'] },
      { userId: 'bob', permissions: ['read', 'write'] },
    ]);
    await client.close();

    const c = openClient(path);
    const alice = await c.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alice' });
    expect((await alice.query({ queryVectors: [1, 0, 0], topK: 1, include: ['metadata', 'contents'] })).results[0]).toMatchObject({
      id: 'a',
      metadata: { team: 'red' },
      contents: 'alpha',
    });
    expect((await alice.listIds({ filters: { team: 'red' } })).ids.sort()).toEqual(['a', 'c']);
    expect((await alice.verify()).ok).toBe(true);
    const bob = await c.loadIndex({ indexName: 'test', indexKey: bobKey, userId: 'bob' });
    expect(bob).not.toBe(alice); // one handle per key holder, even in one Client
    await bob.upsert({ items: [{ id: 'd', vector: [1, 1, 0], metadata: { team: 'blue' } }] });
    await bob.delete({ ids: ['b'] });
    await bob.snapshot();
    expect((await alice.get({ ids: ['d', 'b'] })).map((r) => Object.keys(r).length > 1)).toEqual([true, false]); // the reader sees it at once
    await c.close();

    // The root reads what the writer wrote (signed with the same key), and so does the reader after a fresh open.
    const root = openClient(path);
    const again = await root.loadIndex({ indexName: 'test', indexKey: key });
    expect((await again.listIds()).ids.sort()).toEqual(['a', 'c', 'd']);
    expect((await again.verify()).ok).toBe(true);
    await root.close();
    const r = openClient(path);
    expect((await (await r.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alice' })).listIds()).ids.sort()).toEqual(['a', 'c', 'd']);
    await r.close();
  });

  it('a reader gets PermissionError from every write, and nothing is written (not even a snapshot at close)', async () => {
    const { path, client, index } = await openFresh({ dimension: 3 });
    await index.upsert({ items });
    const aliceKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
    await client.close();
    const before = allBytes(join(path, 'store'));
    const heads = allBytes(join(path, 'heads'));

    const c = openClient(path);
    const alice = await c.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alice' });
    for (const [name, call] of writes) {
      const error = await rejectsWithCode(call(alice), 'VECVAULT_PERMISSION');
      expect(error.message, name).toMatch(/write permission/);
    }
    for (const [name, call] of adminCalls) {
      const error = await rejectsWithCode(call(alice), 'VECVAULT_PERMISSION');
      expect(error.message, name).toMatch(/root key source/);
    }
    expect((await alice.listIds()).ids.sort()).toEqual(['a', 'b', 'c']);
    await c.close();
    // LevelDB rewrites its own files on open (a new log, the manifest), so compare what vecvault writes: the values.
    const db = await rawStore(path);
    const values: Buffer[] = [];
    for await (const [, value] of db.iterator()) values.push(Buffer.from(value));
    await db.close();
    expect(values.every((v) => before.includes(v))).toBe(true);
    expect(allBytes(join(path, 'heads')).equals(heads)).toBe(true);
  });

  it('a writer may write but not administer users or delete the index', async () => {
    const { path, client, index } = await openFresh({ dimension: 3 });
    await index.upsert({ items });
    const bobKey = await index.createUserKey({ userId: 'bob', permissions: ['read', 'write'] });
    await client.close();
    const c = openClient(path);
    const bob = await c.loadIndex({ indexName: 'test', indexKey: bobKey, userId: 'bob' });
    for (const [name, call] of adminCalls) {
      const error = await rejectsWithCode(call(bob), 'VECVAULT_PERMISSION');
      expect(error.message, name).toMatch(/root key source/);
    }
    expect((await bob.listIds()).count).toBe(3); // deleteIndex was refused
  });

  it('a wrong user key, a wrong userId, a user of another index or a user key without userId → InvalidKeyError; bad arguments → ValidationError', async () => {
    const { path, key, client, index } = await openFresh({ dimension: 3 });
    const other = await client.createIndex({ indexName: 'other', indexKey: Client.generateKey(), dimension: 3 });
    const aliceKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
    const carolKey = await other.createUserKey({ userId: 'carol', permissions: ['read'] });
    await rejectsWithCode(index.createUserKey({ userId: 'alice', permissions: ['read'] }), 'VECVAULT_VALIDATION'); // exists
    await rejectsWithCode(index.createUserKey({ userId: '', permissions: ['read'] }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.createUserKey({ userId: 'x', permissions: ['write'] as never }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.createUserKey({ userId: 'x', permissions: ['read', 'read'] as never }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.createUserKey({ userId: 'x', permissions: ['read'], userKey: new Uint8Array(16) }), 'VECVAULT_VALIDATION');
    await client.close();

    const c = openClient(path);
    await rejectsWithCode(c.loadIndex({ indexName: 'test', indexKey: Client.generateKey(), userId: 'alice' }), 'VECVAULT_INVALID_KEY');
    await rejectsWithCode(c.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alicia' }), 'VECVAULT_INVALID_KEY');
    await rejectsWithCode(c.loadIndex({ indexName: 'test', indexKey: carolKey, userId: 'carol' }), 'VECVAULT_INVALID_KEY');
    await rejectsWithCode(c.loadIndex({ indexName: 'test', indexKey: aliceKey }), 'VECVAULT_INVALID_KEY'); // not the root key
    await rejectsWithCode(c.loadIndex({ indexName: 'test', indexKey: key, userId: 'alice' }), 'VECVAULT_INVALID_KEY'); // the root key is no user key
    await rejectsWithCode(c.loadIndex({ indexName: 'test', userId: 'alice' }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(c.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 7 as never }), 'VECVAULT_VALIDATION');
    expect((await c.loadIndex({ indexName: 'other', indexKey: carolKey, userId: 'carol' })).getIndexName()).toBe('other');
  });

  it('a given user key is used as is; user ids never appear in the files', async () => {
    const { path, client, index } = await openFresh({ dimension: 3 });
    await index.upsert({ items });
    const chosen = Client.generateKey();
    const got = await index.createUserKey({ userId: 'dana-the-auditor@example.org', permissions: ['read'], userKey: chosen });
    expect(Buffer.from(got).equals(Buffer.from(chosen))).toBe(true);
    await index.createUserKey({ userId: 'erin-the-writer@example.org', permissions: ['read', 'write'] });
    await client.close();
    const bytes = allBytes(path);
    for (const id of ['dana-the-auditor', 'erin-the-writer']) {
      expect(bytes.includes(Buffer.from(id, 'utf8'))).toBe(false);
      expect(bytes.includes(Buffer.from(id, 'utf16le'))).toBe(false);
    }
    expect(bytes.includes(Buffer.from('example.org'))).toBe(false);
    const c = openClient(path);
    expect((await (await c.loadIndex({ indexName: 'test', indexKey: chosen, userId: 'dana-the-auditor@example.org' })).listIds()).count).toBe(3);
  });

  it('revokeUser takes effect at once: open handles are refused, later opens fail, the wraps are erased from the files', async () => {
    const { path, key, client, index } = await openFresh({ dimension: 3 });
    await index.upsert({ items });
    const aliceKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
    const bobKey = await index.createUserKey({ userId: 'bob', permissions: ['read', 'write'] });
    // The reader's handle, open through another Client of the same process (they share the open index).
    const other = openClient(path);
    const alice = await other.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alice' });
    expect((await alice.listIds()).count).toBe(3);

    const copy = tempStore();
    cpSync(join(path, 'store'), join(copy, 'store'), { recursive: true }); // LevelDB's files can be copied while it runs
    const entry = await catalogOf(copy, 'test');
    const slot = userSlot(aliceKey, entry.indexId, 'alice');
    const kvBefore = await rawValues(copy, entry.indexId);
    const wraps = [kvBefore.get(hex(indexKey(entry.indexId, USER, slot)))!];
    for (const [k, v] of kvBefore) if (k.startsWith(hex(indexKey(entry.indexId, USER_DIR)))) wraps.push(v);
    expect(wraps).toHaveLength(3); // alice's entry, and both directory entries
    const needles = wraps.map((w) => w.subarray(w.byteLength - 40, w.byteLength - 16));

    await index.revokeUser({ userId: 'alice' });
    await index.revokeUser({ userId: 'nobody' }); // not an error
    expect(await index.listUsers()).toEqual([{ userId: 'bob', permissions: ['read', 'write'] }]);
    await rejectsWithCode(alice.listIds(), 'VECVAULT_PERMISSION');
    await rejectsWithCode(other.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alice' }), 'VECVAULT_INVALID_KEY');
    const files = allBytes(join(path, 'store'));
    // Alice's entry and her directory entry are gone from every file; Bob's directory entry is still there.
    const found = needles.map((n) => files.includes(n));
    expect(found.filter(Boolean)).toHaveLength(1);
    await other.close();
    await client.close();
    const c = openClient(path);
    await rejectsWithCode(c.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alice' }), 'VECVAULT_INVALID_KEY');
    const bob = await c.loadIndex({ indexName: 'test', indexKey: bobKey, userId: 'bob' });
    expect((await bob.listIds()).count).toBe(3);
    await c.close();
    // A writer's revocation (one commit that also renews the signing key) erases its entry the same way.
    const bobEntry = kvBefore.get(hex(indexKey(entry.indexId, USER, userSlot(bobKey, entry.indexId, 'bob'))))!;
    const bobNeedle = bobEntry.subarray(bobEntry.byteLength - 40, bobEntry.byteLength - 16);
    const c1 = openClient(path);
    const root1 = await c1.loadIndex({ indexName: 'test', indexKey: key });
    expect(allBytes(join(path, 'store')).includes(bobNeedle)).toBe(true);
    await root1.revokeUser({ userId: 'bob' });
    expect(allBytes(join(path, 'store')).includes(bobNeedle)).toBe(false);
    expect(await root1.listUsers()).toEqual([]);
    await c1.close();
    // Re-created, alice gets a new key; the old one stays refused.
    const root = openClient(path);
    const again = await root.loadIndex({ indexName: 'test', indexKey: key });
    const newAlice = await again.createUserKey({ userId: 'alice', permissions: ['read'] });
    const c2 = openClient(path);
    await rejectsWithCode(c2.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alice' }), 'VECVAULT_INVALID_KEY');
    expect((await (await c2.loadIndex({ indexName: 'test', indexKey: newAlice, userId: 'alice' })).listIds()).count).toBe(3);
  });

  it('negative control: without the erasure (tombstones only), the revoked wraps stay in the files', async () => {
    const { path, key, client, index } = await openFresh({ dimension: 3 });
    await index.upsert({ items });
    const aliceKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
    await client.close(); // the entry reaches a table file
    const entry = await catalogOf(path, 'test');
    const wrap = (await rawValues(path, entry.indexId)).get(hex(indexKey(entry.indexId, USER, userSlot(aliceKey, entry.indexId, 'alice'))))!;
    const needle = wrap.subarray(wrap.byteLength - 40, wrap.byteLength - 16);
    const shred = vi.spyOn(KvStore.prototype, 'shred').mockImplementation(async () => undefined);
    try {
      const c = openClient(path);
      const root = await c.loadIndex({ indexName: 'test', indexKey: key });
      await root.revokeUser({ userId: 'alice' });
      expect(shred).toHaveBeenCalledTimes(1);
      expect(allBytes(join(path, 'store')).includes(needle)).toBe(true);
      await c.close();
    } finally {
      shred.mockRestore();
    }
  });

  it('a KMS-backed index: users open with their own key, without any call to the key source', async () => {
    const secret = randomBytes(32);
    let calls = 0;
    const slot: CustomSlot = {
      provider: 'custom',
      async wrapKey(k, context) {
        calls++;
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', secret, iv).setAAD(context);
        return Buffer.concat([iv, cipher.update(k), cipher.final(), cipher.getAuthTag()]);
      },
      async unwrapKey(w, context) {
        calls++;
        const b = Buffer.from(w);
        const decipher = createDecipheriv('aes-256-gcm', secret, b.subarray(0, 12)).setAAD(context);
        decipher.setAuthTag(b.subarray(b.length - 16));
        return Buffer.concat([decipher.update(b.subarray(12, b.length - 16)), decipher.final()]);
      },
    };
    const path = tempStore();
    const client = new Client({ path, kms: { mine: slot } });
    const index = await client.createIndex({ indexName: 'k', kmsName: 'mine', dimension: 3 });
    await index.upsert({ items });
    const aliceKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
    await client.close();
    const before = calls;
    const c = new Client({ path }); // no registry at all
    const alice = await c.loadIndex({ indexName: 'k', indexKey: aliceKey, userId: 'alice' });
    expect((await alice.listIds()).count).toBe(3);
    await rejectsWithCode(alice.upsert({ items: [{ id: 'x', vector: [1, 1, 1] }] }), 'VECVAULT_PERMISSION');
    expect(alice.getKeySource()).toMatchObject({ provider: 'custom', kmsName: 'mine' });
    await c.close();
    expect(calls).toBe(before);
  });

  it('the root and a reader share one open index in a process: the root writes, signed, after the reader opened it', async () => {
    const { path, key, client, index } = await openFresh({ dimension: 3 });
    await index.upsert({ items });
    const aliceKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
    await client.close();
    const c1 = openClient(path);
    const alice = await c1.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alice' });
    const c2 = openClient(path);
    const root = await c2.loadIndex({ indexName: 'test', indexKey: key });
    await root.upsert({ items: [{ id: 'r', vector: [1, 1, 1] }] });
    expect((await alice.listIds()).count).toBe(4);
    await rejectsWithCode(alice.delete({ ids: ['r'] }), 'VECVAULT_PERMISSION');
    await c1.close();
    await c2.close();
    const c3 = openClient(path);
    const reopened = await c3.loadIndex({ indexName: 'test', indexKey: key });
    expect((await reopened.verify()).ok).toBe(true);
    expect(reopened.stats().count).toBe(4);
  });

  it('an index created before signed commits (the golden store) stays readable, has no users, and says so', async () => {
    const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'golden-v2');
    const path = tempStore();
    cpSync(join(fixture, 'store'), path, { recursive: true });
    const [name, hexKey] = readFileSync(join(fixture, 'key.hex'), 'utf8').trim().split('\n')[0]!.split(' ') as [string, string];
    const c = openClient(path);
    const index = await c.loadIndex({ indexName: name, indexKey: new Uint8Array(Buffer.from(hexKey, 'hex')) });
    expect((await index.listIds()).count).toBeGreaterThan(0);
    await rejectsWithCode(index.createUserKey({ userId: 'alice', permissions: ['read'] }), 'VECVAULT_NOT_SUPPORTED');
    await rejectsWithCode(index.listUsers(), 'VECVAULT_NOT_SUPPORTED');
    await rejectsWithCode(c.loadIndex({ indexName: name, indexKey: Client.generateKey(), userId: 'alice' }), 'VECVAULT_INVALID_KEY');
  });
});

describe('users survive key rotation', () => {
  it('a new root key source (what rotateKey does: the DEK re-wrapped, nothing else) leaves every user working', async () => {
    const { path, key, client, index } = await openFresh({ dimension: 3 });
    await index.upsert({ items });
    const aliceKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
    const bobKey = await index.createUserKey({ userId: 'bob', permissions: ['read', 'write'] });
    await client.close();
    const entry = await catalogOf(path, 'test');
    const usersBefore = await rawValues(path, entry.indexId);

    // Re-wrap the DEK under a new KEK: new salt, verifier and wrap, the same AAD fields (with 'signed').
    const newKey = Client.generateKey();
    const dek = openEnvelope(key, 'test', entry);
    const salt = randomBytes(32);
    const aad = frame('dek', u64(entry.format), 'test', entry.indexId, u64(entry.dekGeneration), entry.provider, entry.keyId ?? '', 'signed');
    const verifierKey = deriveKey(newKey, salt, 'verifier');
    const { createHmac } = await import('node:crypto');
    const verifier = createHmac('sha256', verifierKey)
      .update(frame('verifier', 'test', entry.indexId))
      .digest();
    const rotated = { ...entry, salt, verifier, wrappedDek: seal(deriveKey(newKey, salt, 'wrap'), dek, aad) };
    const db = await rawStore(path);
    await db.put(catalogKey('test'), pack(rotated));
    await db.close();

    // Nothing of the users changed, and each still opens; the new root key administers them.
    const after = await rawValues(path, entry.indexId);
    for (const [k, v] of usersBefore)
      if (k.startsWith(hex(indexKey(entry.indexId, USER))) || k.startsWith(hex(indexKey(entry.indexId, USER_DIR)))) expect(after.get(k)!.equals(v)).toBe(true);
    const c = openClient(path);
    await rejectsWithCode(c.loadIndex({ indexName: 'test', indexKey: key }), 'VECVAULT_INVALID_KEY');
    const root = await c.loadIndex({ indexName: 'test', indexKey: newKey });
    expect((await root.listUsers()).map((u) => u.userId)).toEqual(['alice', 'bob']);
    const bob = await c.loadIndex({ indexName: 'test', indexKey: bobKey, userId: 'bob' });
    await bob.upsert({ items: [{ id: 'w', vector: [1, 1, 1] }] });
    const alice = await c.loadIndex({ indexName: 'test', indexKey: aliceKey, userId: 'alice' });
    expect((await alice.listIds()).count).toBe(4);
    await c.close();
  });

  it('grantDataKeyToUsers re-grants every user a new DEK generation and index id from the old and new DEK alone (what rotateDataKey calls)', () => {
    const indexId = randomBytes(16);
    const newIndexId = randomBytes(16); // a data-key rotation moves the index; user material stays bound to the users id
    const usersId = indexId;
    const oldDek = randomBytes(32);
    const newDek = randomBytes(32);
    const signing = generateSigningKey();
    const rootKeys = (dek: Buffer, id: Uint8Array) => ({ ...deriveIndexKeys(dek, id, 2), ...rootUserKeys(dek, id), signSeed: signing.seed });
    const oldKeys = rootKeys(oldDek, indexId);
    const users = [
      { userId: 'alice', permissions: ['read'] as ['read'], key: randomBytes(32) },
      { userId: 'bob', permissions: ['read', 'write'] as ['read', 'write'], key: randomBytes(32) },
    ];
    const written = users.map((u) =>
      newUser({ usersId, userId: u.userId, permissions: u.permissions, userKey: u.key, generation: 1, keys: oldKeys, signKey: signing.publicKey }),
    );
    const newKeys = rootKeys(newDek, newIndexId);
    const grant = regrantUsers({
      indexId: newIndexId,
      usersId,
      oldAdmin: oldKeys.admin,
      newKeys,
      newGeneration: 2,
      keepGenerations: [1],
      directory: written.map((w) => ({ dirKey: w.dirKey, value: w.directory })),
      entries: [...written.map((w) => ({ slot: w.slot, value: w.entry })), { slot: randomBytes(32), value: written[0]!.entry }], // plus a stray entry
    });
    expect(grant.dels.filter((d) => d.kind === 'U')).toHaveLength(1); // the stray one
    expect(openSigningSeed(newKeys.admin, newIndexId, grant.signingSeed, 'n').seed.equals(signing.seed)).toBe(true);
    for (const [i, u] of users.entries()) {
      const entry = grant.puts.find((p) => p.kind === 'U' && p.suffix.equals(written[i]!.slot))!.value;
      for (const generation of [1, 2]) {
        const opened = openUser({ usersId, indexName: 'n', userId: u.userId, userKey: u.key, generation, slot: written[i]!.slot, value: entry });
        const expected = generation === 1 ? oldKeys : newKeys;
        expect(opened.permissions).toEqual(u.permissions);
        expect(opened.keys.records.equals(expected.records)).toBe(true);
        expect(opened.keys.head.equals(expected.head)).toBe(true);
        expect(opened.keys.recordAuth?.equals(expected.recordAuth) ?? false).toBe(u.permissions.length === 2);
        expect(opened.keys.signSeed !== undefined).toBe(u.permissions.length === 2);
        expect(opened.keys.admin).toBeUndefined();
      }
      // The directory is re-sealed under the new admin key, under a new directory key.
      const dirKey = directoryKey(newKeys.admin, usersId, u.userId);
      const dir = grant.puts.find((p) => p.kind === 'D' && p.suffix.equals(dirKey))!;
      expect(openDirectory(newKeys.admin, usersId, dirKey, dir.value)).toMatchObject({ userId: u.userId, permissions: u.permissions });
      expect(() => openDirectory(oldKeys.admin, usersId, dirKey, dir.value)).toThrow();
    }
    // grantDataKeyToUsers (the rotation's) drops the old grant.
    const only = grantDataKeyToUsers({
      indexId: newIndexId,
      usersId,
      oldAdmin: oldKeys.admin,
      newKeys,
      newGeneration: 2,
      directory: written.map((w) => ({ dirKey: w.dirKey, value: w.directory })),
      entries: written.map((w) => ({ slot: w.slot, value: w.entry })),
    });
    const aliceEntry = only.puts.find((p) => p.kind === 'U' && p.suffix.equals(written[0]!.slot))!.value;
    expect(() =>
      openUser({ usersId, indexName: 'n', userId: 'alice', userKey: users[0]!.key, generation: 1, slot: written[0]!.slot, value: aliceEntry }),
    ).toThrow(/current data key/);
    expect(
      openUser({ usersId, indexName: 'n', userId: 'alice', userKey: users[0]!.key, generation: 2, slot: written[0]!.slot, value: aliceEntry }).permissions,
    ).toEqual(['read']);
  });
});

// ---- helpers ----

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Every value under an index's key range of a closed store, by hex key. */
async function rawValues(path: string, indexId: Uint8Array): Promise<Map<string, Buffer>> {
  const db = await rawStore(path);
  const out = new Map<string, Buffer>();
  try {
    for await (const [k, v] of db.iterator(indexRange(indexId))) out.set(hex(k), Buffer.from(v));
  } finally {
    await db.close();
  }
  return out;
}
