/**
 * A read-only user holds the keys to decrypt everything, and with them could
 * edit the files: re-seal a record, recompute the digest, write a new
 * manifest, re-seal snapshot chunks. Signed commits make those edits
 * detectable: each forgery below is done exactly as such a reader could (with
 * the keys its own user entry yields, nothing more), and ends in
 * IntegrityError; each has a negative control, the same forgery on the same
 * index made unsigned (as indexes created before signed commits are), where
 * it is accepted and served.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';
import { xorInto } from '../src/core/digest.js';
import { deriveIndexKeys, openEnvelope, type CatalogEntry, type IndexKeys } from '../src/keys/envelope.js';
import { openUser, userSlot } from '../src/keys/users.js';
import { KvStore } from '../src/storage/kv-store.js';
import { catalogKey, indexKey, MANIFEST, USER, USERS_ADMIN } from '../src/storage/layout.js';
import { openManifest, sealManifest, type Manifest, type SnapshotRef } from '../src/storage/manifest.js';
import { hashIds, liveTags, openRecords, sealRecords } from '../src/storage/sealed.js';
import { pack, unpack } from '../src/util/msgpack.js';
import { chunkMacKey, decodeTable, encodeTable, readSection, unpackMetadataFrame, writeSection } from '../src/storage/snapshot.js';
import { openClient, openFresh } from './support/fixtures.js';
import { rawCatalogEntry, rawStore, rejectsWithCode } from './support/helpers.js';
import { asUnsignedManifest, makeUnsigned } from './support/unsigned.js';

const items = [
  { id: 'a', vector: [1, 0, 0], metadata: { team: 'red' } },
  { id: 'b', vector: [0, 1, 0], metadata: { team: 'blue' } },
  { id: 'c', vector: [0, 0, 1], metadata: { team: 'red' } },
];

interface Setup {
  path: string;
  rootKey: Uint8Array;
  readerKey: Uint8Array;
  writerKey: Uint8Array;
}

/** A closed store: index `test` with three records and a snapshot, a reader `alice` and a writer `bob`. */
async function setup(): Promise<Setup> {
  const { path, key, client, index } = await openFresh({ dimension: 3 });
  await index.upsert({ items });
  const readerKey = await index.createUserKey({ userId: 'alice', permissions: ['read'] });
  const writerKey = await index.createUserKey({ userId: 'bob', permissions: ['read', 'write'] });
  await client.close();
  return { path, rootKey: key, readerKey, writerKey };
}

const catalogOf = (path: string): Promise<CatalogEntry> => rawCatalogEntry(path, 'test');

/** The keys the reader's own entry yields: all a forger with a read-only key has. */
async function readerKeys(s: Setup): Promise<IndexKeys> {
  const keys = await userKeys(s, 'alice', s.readerKey);
  expect(keys.recordAuth).toBeUndefined();
  expect(keys.signSeed).toBeUndefined();
  return keys;
}

/** The keys a user's entry yields (read while the user still has access). */
async function userKeys(s: Setup, userId: string, userKey: Uint8Array): Promise<IndexKeys> {
  const entry = await catalogOf(s.path);
  const slot = userSlot(userKey, entry.indexId, userId);
  const db = await rawStore(s.path);
  try {
    const value = await db.get(indexKey(entry.indexId, USER, slot));
    return openUser({ usersId: entry.indexId, indexName: 'test', userId, userKey, generation: 1, slot, value }).keys;
  } finally {
    await db.close();
  }
}

/** Control: the same index made unsigned; the forger then holds the same subkeys (derived from the DEK, as a reader's grant holds them). */
async function unsignedControl(s: Setup): Promise<IndexKeys> {
  await makeUnsigned(s.path, 'test', s.rootKey);
  const entry = await catalogOf(s.path);
  return deriveIndexKeys(openEnvelope(s.rootKey, 'test', entry), entry.indexId, entry.format);
}

async function readManifestRaw(path: string, keys: IndexKeys, id: Uint8Array): Promise<Manifest> {
  const db = await rawStore(path);
  try {
    return openManifest(keys.manifest, id, asUnsignedManifest((await db.get(indexKey(id, MANIFEST)))!), 'test');
  } finally {
    await db.close();
  }
}

/**
 * The brief's forgery: record `a` re-sealed with new metadata under a new commit, the digest
 * recomputed with the digest key, a new manifest (counter + 1, no snapshot, so the open rebuilds
 * from the records) sealed with the manifest key. With `keepSignature`, the old signature is kept
 * in front of the new manifest (a version-2 value).
 */
async function forgeCommit(path: string, keys: IndexKeys, keepSignature = false): Promise<void> {
  // With a writer's keys (a revoked writer who kept them), the record is tagged and the manifest signed as a writer would.
  const { indexId: id } = await catalogOf(path);
  const manifest = await readManifestRaw(path, keys, id);
  const db = await rawStore(path);
  try {
    const [hkey] = hashIds(keys.ids, ['a']);
    const recordKey = indexKey(id, 0x52, hkey!);
    const [old] = openRecords(keys.records, id, [hkey!], [(await db.get(recordKey))!]);
    const next: Manifest = { ...manifest, counter: manifest.counter + 1, digest: new Uint8Array(manifest.digest), snapshot: null };
    xorInto(next.digest, liveTags(keys.digest, [hkey!], old!.seq));
    xorInto(next.digest, liveTags(keys.digest, [hkey!], next.counter));
    const [forged] = sealRecords(keys.records, id, [hkey!], next.counter, [{ ...old!.body, metadata: { team: 'forged' } }], keys.recordAuth);
    let value = sealManifest(keys.manifest, id, next, keys.signSeed);
    if (keepSignature) {
      const signed = (await db.get(indexKey(id, MANIFEST)))!;
      value = Buffer.concat([signed.subarray(0, 65), value.subarray(1)]);
    }
    await db.batch([
      { type: 'put', key: recordKey, value: forged! },
      { type: 'put', key: indexKey(id, MANIFEST), value },
    ]);
  } finally {
    await db.close();
  }
}

/** Record `a` re-sealed with new metadata under its own commit sequence: the manifest and digest stay as they are. */
async function forgeRecordInPlace(path: string, keys: IndexKeys, copyTag = false): Promise<void> {
  const { indexId: id } = await catalogOf(path);
  const db = await rawStore(path);
  try {
    const [hkey] = hashIds(keys.ids, ['a']);
    const recordKey = indexKey(id, 0x52, hkey!);
    const raw = (await db.get(recordKey))!;
    const [old] = openRecords(keys.records, id, [hkey!], [raw]);
    let [forged] = sealRecords(keys.records, id, [hkey!], old!.seq, [{ ...old!.body, metadata: { team: 'forged' } }]);
    if (copyTag && raw[0] === 3) forged = Buffer.concat([raw.subarray(0, 33), forged!.subarray(1)]); // the old writer tag in front
    await db.put(recordKey, forged!);
  } finally {
    await db.close();
  }
}

/** The snapshot table re-sealed with the ids of `a` and `b` swapped: queries near `a` would answer `b`. */
async function forgeSnapshotTable(path: string, keys: IndexKeys): Promise<void> {
  const { indexId: id } = await catalogOf(path);
  const manifest = await readManifestRaw(path, keys, id);
  const ref = manifest.snapshot!;
  const kv = await KvStore.open(join(path, 'store'));
  try {
    const table = decodeTable(Buffer.concat(await readSection(kv, keys.graph, id, ref, 'table', ref.tableChunks)));
    const ids = [...table.ids];
    const [i, j] = [ids.indexOf('a'), ids.indexOf('b')];
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    const metadata = table.metadataFrames.flatMap((f) => unpackMetadataFrame(f));
    const payload = await encodeTable({ counter: table.counter, count: table.count, digest: table.digest, ids, keys: table.keys, seqs: table.seqs, metadata });
    expect(await writeSection(kv, keys.graph, id, ref, 'table', payload)).toBe(ref.tableChunks);
  } finally {
    await kv.close();
  }
}

/** Every graph chunk re-sealed as it was (same plaintext, fresh nonces): authentic under the graph key, not the ones the manifest names. */
async function resealGraph(path: string, keys: IndexKeys): Promise<void> {
  const { indexId: id } = await catalogOf(path);
  const ref = (await readManifestRaw(path, keys, id)).snapshot!;
  const kv = await KvStore.open(join(path, 'store'));
  try {
    const graph = Buffer.concat(await readSection(kv, keys.graph, id, ref, 'graph', ref.graphChunks));
    expect(await writeSection(kv, keys.graph, id, ref, 'graph', graph)).toBe(ref.graphChunks);
  } finally {
    await kv.close();
  }
}

/** A new manifest whose snapshot reference `edit` changed, signed as a writer (who can sign) would. */
async function editSnapshotRef(path: string, writer: IndexKeys, edit: (ref: SnapshotRef) => void): Promise<void> {
  const { indexId: id } = await catalogOf(path);
  const manifest = await readManifestRaw(path, writer, id);
  edit(manifest.snapshot!);
  const db = await rawStore(path);
  try {
    await db.put(indexKey(id, MANIFEST), sealManifest(writer.manifest, id, manifest, writer.signSeed));
  } finally {
    await db.close();
  }
}

const loadRoot = (s: Setup) => openClient(s.path).loadIndex({ indexName: 'test', indexKey: s.rootKey });
const loadUser = (s: Setup, userId: 'alice' | 'bob') =>
  openClient(s.path).loadIndex({ indexName: 'test', indexKey: userId === 'alice' ? s.readerKey : s.writerKey, userId });

describe("a read-only user's forged file edits", () => {
  it('a new commit written with the reader keys (record, digest, manifest) → IntegrityError on the next open by the root, a writer or a reader', async () => {
    for (const keepSignature of [false, true]) {
      const s = await setup();
      await forgeCommit(s.path, await readerKeys(s), keepSignature);
      for (const open of [() => loadRoot(s), () => loadUser(s, 'bob'), () => loadUser(s, 'alice')]) {
        const error = await rejectsWithCode(open(), 'VECVAULT_INTEGRITY');
        expect(error.message).toMatch(/signature|not signed/);
      }
    }
  });

  it('control: the same forgery on an unsigned index is accepted and served', async () => {
    const s = await setup();
    await forgeCommit(s.path, await unsignedControl(s));
    const index = await loadRoot(s);
    expect((await index.get({ ids: ['a'], include: ['metadata'] }))[0]!.metadata).toEqual({ team: 'forged' });
    expect((await index.verify()).ok).toBe(true);
  });

  it('a record re-sealed in place (same commit, manifest untouched) → IntegrityError when the root or a writer reads it, and verify() reports it', async () => {
    for (const copyTag of [false, true]) {
      const s = await setup();
      await forgeRecordInPlace(s.path, await readerKeys(s), copyTag);
      for (const open of [() => loadRoot(s), () => loadUser(s, 'bob')]) {
        const index = await open();
        await rejectsWithCode(index.get({ ids: ['a'], include: ['metadata'] }), 'VECVAULT_INTEGRITY');
        const report = await index.verify();
        expect(report.ok).toBe(false);
        expect(report.problems.some((p) => p.kind === 'record')).toBe(true);
      }
    }
  });

  it('the root joining an index a reader opened first in this process checks every writer tag (the reader could not)', async () => {
    const s = await setup();
    await forgeRecordInPlace(s.path, await readerKeys(s));
    const c1 = openClient(s.path);
    const alice = await c1.loadIndex({ indexName: 'test', indexKey: s.readerKey, userId: 'alice' });
    expect((await alice.get({ ids: ['a'], include: ['metadata'] }))[0]!.metadata).toEqual({ team: 'forged' }); // a reader cannot tell
    const c2 = openClient(s.path);
    await rejectsWithCode(c2.loadIndex({ indexName: 'test', indexKey: s.rootKey }), 'VECVAULT_INTEGRITY');
    await rejectsWithCode(c2.loadIndex({ indexName: 'test', indexKey: s.writerKey, userId: 'bob' }), 'VECVAULT_INTEGRITY');
  });

  it('control: the same in-place re-seal on an unsigned index is accepted and served', async () => {
    const s = await setup();
    await forgeRecordInPlace(s.path, await unsignedControl(s));
    const index = await loadRoot(s);
    expect((await index.get({ ids: ['a'], include: ['metadata'] }))[0]!.metadata).toEqual({ team: 'forged' });
  });

  it('a re-sealed snapshot table (ids swapped) → IntegrityError on the next open by anyone, never a silent rebuild', async () => {
    const s = await setup();
    await forgeSnapshotTable(s.path, await readerKeys(s));
    for (const open of [() => loadRoot(s), () => loadUser(s, 'bob'), () => loadUser(s, 'alice')]) {
      const error = await rejectsWithCode(open(), 'VECVAULT_INTEGRITY');
      expect(error.message).toMatch(/signed manifest/);
    }
  });

  it('control: the same table forgery on an unsigned index opens and answers a query near `a` with `b`', async () => {
    const s = await setup();
    await forgeSnapshotTable(s.path, await unsignedControl(s));
    const index = await loadRoot(s);
    expect(index.stats().openedFrom).toBe('snapshot');
    expect((await index.query({ queryVectors: [1, 0, 0], topK: 1 })).results[0]!.id).toBe('b');
  });

  it('a revoked writer who kept its keys: its signed commit → IntegrityError (the revocation renewed the signing key); the other users carry on', async () => {
    const s = await setup();
    const bobKeys = await userKeys(s, 'bob', s.writerKey); // bob keeps a copy of what his entry held
    expect(bobKeys.signSeed).toBeDefined();
    const client = openClient(s.path);
    const root = await client.loadIndex({ indexName: 'test', indexKey: s.rootKey });
    const carolKey = await root.createUserKey({ userId: 'carol', permissions: ['read', 'write'] });
    const before = root.stats().commitCounter;
    await root.revokeUser({ userId: 'bob' });
    expect(root.stats().commitCounter).toBe(before + 1); // one commit installs the new signing key
    await root.upsert({ items: [{ id: 'r', vector: [1, 1, 0] }] }); // signed with the new key
    await client.close();
    // The remaining writer and the reader open and work with the new key.
    const c = openClient(s.path);
    const carol = await c.loadIndex({ indexName: 'test', indexKey: carolKey, userId: 'carol' });
    await carol.upsert({ items: [{ id: 'q', vector: [0, 1, 1] }] });
    expect((await (await c.loadIndex({ indexName: 'test', indexKey: s.readerKey, userId: 'alice' })).listIds()).count).toBe(5);
    await c.close();
    await forgeCommit(s.path, bobKeys);
    for (const open of [() => loadRoot(s), () => loadUser(s, 'alice')]) await rejectsWithCode(open(), 'VECVAULT_INTEGRITY');
  });

  it('control: the same commit by a writer who was not revoked is accepted (it is a writer)', async () => {
    const s = await setup();
    await forgeCommit(s.path, await userKeys(s, 'bob', s.writerKey));
    const index = await loadRoot(s);
    expect((await index.get({ ids: ['a'], include: ['metadata'] }))[0]!.metadata).toEqual({ team: 'forged' });
  });

  it("the root's signing entry deleted, or `signed` stripped from the catalog entry → IntegrityError for the root", async () => {
    const s = await setup();
    const entry = await catalogOf(s.path);
    let db = await rawStore(s.path);
    const admin = (await db.get(indexKey(entry.indexId, USERS_ADMIN)))!;
    await db.del(indexKey(entry.indexId, USERS_ADMIN));
    await db.close();
    const rootFails = async () => {
      const client = new Client({ path: s.path });
      await rejectsWithCode(client.loadIndex({ indexName: 'test', indexKey: s.rootKey }), 'VECVAULT_INTEGRITY');
      await client.close();
    };
    await rootFails();
    db = await rawStore(s.path);
    await db.put(indexKey(entry.indexId, USERS_ADMIN), admin);
    const { signed: _signed, ...stripped } = unpack((await db.get(catalogKey('test')))!) as CatalogEntry;
    await db.put(catalogKey('test'), pack(stripped));
    await db.close();
    await rootFails();
  });
});

describe("a signed snapshot's chunks: GMACs for those who can sign, SHA-256s for readers", () => {
  type Who = 'root' | 'bob' | 'alice';
  /** Opens the index as `who` in a client of its own, closed again (it holds the store's lock): where the open came from. */
  async function openedFrom(s: Setup, who: Who): Promise<string> {
    const client = new Client({ path: s.path });
    try {
      const key = { root: s.rootKey, bob: s.writerKey, alice: s.readerKey }[who];
      const index = await client.loadIndex({ indexName: 'test', indexKey: key, ...(who !== 'root' && { userId: who }) });
      return index.stats().openedFrom;
    } finally {
      await client.close();
    }
  }
  const opensFromSnapshot = async (s: Setup, ...who: Who[]) => {
    for (const w of who) expect(await openedFrom(s, w)).toBe('snapshot');
  };
  const fails = async (s: Setup, ...who: Who[]) => {
    for (const w of who) expect((await rejectsWithCode(openedFrom(s, w), 'VECVAULT_INTEGRITY')).message).toMatch(/signed manifest/);
  };

  it('re-sealed graph chunks → IntegrityError for the root and a writer (GMACs) and a reader (SHA-256s); control: unsigned, they open', async () => {
    const s = await setup();
    await resealGraph(s.path, await readerKeys(s));
    await fails(s, 'root', 'bob', 'alice');
    const c = await setup();
    await resealGraph(c.path, await unsignedControl(c));
    await opensFromSnapshot(c, 'root');
  });

  it('each opener checks its own value: a wrong GMAC value fails the root and writers only, a wrong SHA-256 value readers only', async () => {
    const s = await setup();
    const bob = await userKeys(s, 'bob', s.writerKey);
    await editSnapshotRef(s.path, bob, (ref) => {
      expect(ref.chunkMacs).toBeDefined();
      ref.chunkMacs!.graph = Buffer.alloc(32);
    });
    await fails(s, 'root', 'bob');
    await opensFromSnapshot(s, 'alice');
    await editSnapshotRef(s.path, bob, (ref) => (ref.chunkMacs!.keyId = Buffer.alloc(32))); // still wrong, under a key id no one holds
    await opensFromSnapshot(s, 'root', 'bob', 'alice'); // so everyone checks the SHA-256s, which are right
    const t = await setup();
    await editSnapshotRef(t.path, await userKeys(t, 'bob', t.writerKey), (ref) => (ref.graphHash = Buffer.alloc(32)));
    await opensFromSnapshot(t, 'root', 'bob');
    await fails(t, 'alice');
  });

  it('a snapshot without GMACs (an older writer) or under a renewed signing key opens by its SHA-256s, and forgeries still fail', async () => {
    const s = await setup();
    await editSnapshotRef(s.path, await userKeys(s, 'bob', s.writerKey), (ref) => delete ref.chunkMacs);
    await opensFromSnapshot(s, 'root', 'bob');
    await resealGraph(s.path, await readerKeys(s));
    await fails(s, 'root', 'bob');

    // Revoking bob renews the signing key in one commit that keeps the snapshot: its GMACs are under the old key's id,
    // which bob holds, so no opener may trust them; the root checks the SHA-256s until its next snapshot.
    const t = await setup();
    const bobKeys = await userKeys(t, 'bob', t.writerKey);
    const { indexId } = await catalogOf(t.path);
    const keyIdOf = async () => (await readManifestRaw(t.path, bobKeys, indexId)).snapshot!.chunkMacs!.keyId;
    const oldId = chunkMacKey(bobKeys.signSeed!, indexId).id;
    expect(Buffer.from(await keyIdOf())).toEqual(oldId);
    const client = openClient(t.path);
    const root = await client.loadIndex({ indexName: 'test', indexKey: t.rootKey });
    await root.revokeUser({ userId: 'bob' });
    await client.close();
    expect(Buffer.from(await keyIdOf())).toEqual(oldId); // the same snapshot, under the renewed signature
    await opensFromSnapshot(t, 'root');
    await resealGraph(t.path, await readerKeys(t));
    await fails(t, 'root');
    // A new snapshot by the root carries the renewed key's id.
    const u = await setup();
    const uId = (await catalogOf(u.path)).indexId;
    const bobBefore = chunkMacKey((await userKeys(u, 'bob', u.writerKey)).signSeed!, uId).id;
    const c = openClient(u.path);
    const r = await c.loadIndex({ indexName: 'test', indexKey: u.rootKey });
    await r.revokeUser({ userId: 'bob' });
    await r.upsert({ items: [{ id: 'n', vector: [1, 1, 1] }] });
    await r.snapshot();
    await c.close();
    const renewed = (await readManifestRaw(u.path, await userKeys(u, 'alice', u.readerKey), uId)).snapshot!.chunkMacs!.keyId;
    expect(Buffer.from(renewed)).not.toEqual(bobBefore);
    await opensFromSnapshot(u, 'root');
  });
});
