/**
 * Findings 6 and 7 of the security review ("trust" issue): each test failed
 * before its fix. Leaks the threat model did not list (a plaintext creation
 * time, each record's commit sequence in clear), and smaller defects (a
 * tampered verifier reported as a wrong key, float32 overflow in distances,
 * close() racing calls in flight, one subkey for two purposes, Float64Array
 * queries, key material never wiped). Plus a format-1 store written the old
 * way (catalog with `createdAt`, version-1 records, digest and head under the
 * manifest key), which must keep opening and reading identically.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { seal } from '../src/crypto/aead.js';
import { deriveKey, frame, hmac, u64 } from '../src/crypto/kdf.js';
import { openEnvelope, type CatalogEntry } from '../src/keys/envelope.js';
import { catalogKey } from '../src/storage/layout.js';
import { openManifest, sealManifest } from '../src/storage/manifest.js';
import { asUnsignedManifest, makeUnsigned } from './support/unsigned.js';
import { liveTags, openRecords } from '../src/storage/sealed.js';
import { pack, unpack } from '../src/util/msgpack.js';
import { Client, type EncryptedIndex } from '../src/index.js';
import { openClient, openFresh, reopen, storedTwoRecords } from './support/fixtures.js';
import { rawRecords, rawStore, rejectsWithCode, tempStore } from './support/helpers.js';
import { randomVectors } from './support/vectors.js';

// Every key Buffer the library makes for an index, to check that it is wiped (7f).
const made = vi.hoisted(() => ({
  keks: [] as Buffer[],
  deks: [] as Buffer[],
  subkeys: [] as Record<string, Buffer>[],
  // The MAC/seal key each commit-head file was given (copied: it is wiped on close), by index id (hex).
  headKeys: new Map<string, Buffer>(),
}));
vi.mock('../src/keys/envelope.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/keys/envelope.js')>();
  return {
    ...real,
    createEnvelope: (...args: Parameters<typeof real.createEnvelope>) => {
      const out = real.createEnvelope(...args);
      made.deks.push(out.dek);
      return out;
    },
    openEnvelope: (...args: Parameters<typeof real.openEnvelope>) => {
      const dek = real.openEnvelope(...args);
      made.deks.push(dek);
      return dek;
    },
    deriveIndexKeys: (...args: Parameters<typeof real.deriveIndexKeys>) => {
      const keys = real.deriveIndexKeys(...args);
      made.subkeys.push(keys as unknown as Record<string, Buffer>);
      return keys;
    },
  };
});
vi.mock('../src/storage/heads.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/storage/heads.js')>();
  class HeadFile extends real.HeadFile {
    constructor(...args: ConstructorParameters<typeof real.HeadFile>) {
      super(...args);
      made.headKeys.set(Buffer.from(args[1]).toString('hex'), Buffer.from(args[2]));
    }
  }
  return { ...real, HeadFile };
});
vi.mock('../src/keys/index-key.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/keys/index-key.js')>();
  return {
    ...real,
    checkIndexKey: (...args: Parameters<typeof real.checkIndexKey>) => {
      const kek = real.checkIndexKey(...args);
      made.keks.push(kek);
      return kek;
    },
  };
});

const isZero = (b: Uint8Array) => b.every((x) => x === 0);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function catalogOf(path: string, name: string): Promise<CatalogEntry & Record<string, unknown>> {
  const db = await rawStore(path);
  try {
    return unpack((await db.get(catalogKey(name)))!) as CatalogEntry & Record<string, unknown>;
  } finally {
    await db.close();
  }
}

/** The DEK of a closed store's index, through the real envelope. */
async function dekOf(path: string, name: string, key: Uint8Array): Promise<{ entry: CatalogEntry; dek: Buffer }> {
  const entry = await catalogOf(path, name);
  const fixed = { ...entry, indexId: new Uint8Array(entry.indexId), salt: new Uint8Array(entry.salt), verifier: new Uint8Array(entry.verifier) };
  const { openEnvelope: realOpen } = await vi.importActual<typeof import('../src/keys/envelope.js')>('../src/keys/envelope.js');
  return { entry: fixed, dek: realOpen(key, name, { ...fixed, wrappedDek: new Uint8Array(entry.wrappedDek) }) };
}

/**
 * Rewrites one index of a closed store exactly as the previous release wrote
 * it: catalog format 1 with `createdAt`, records version 1 (seq in the clear
 * header, bound by the AAD), digest terms and commit head under the manifest
 * key, no snapshot (the next open rebuilds from the records).
 */
async function rewriteAsFormat1(path: string, name: string, key: Uint8Array): Promise<void> {
  await makeUnsigned(path, name, key); // the previous release signed nothing
  const { entry, dek } = await dekOf(path, name, key);
  const id = entry.indexId;
  const records = deriveKey(dek, id, 'records');
  const manifestKey = deriveKey(dek, id, 'manifest');
  const db = await rawStore(path);
  const ops: { type: 'put' | 'del'; key: Uint8Array; value?: Uint8Array }[] = [];
  const prefix = Buffer.concat([Buffer.of(0x49), id]);
  const manifest = openManifest(manifestKey, id, (await db.get(Buffer.concat([prefix, Buffer.of(0x4d)])))!, name);
  const digest = Buffer.alloc(32);
  for await (const [k, value] of db.iterator({ gte: prefix, lt: Buffer.concat([prefix, Buffer.of(0xff)]) })) {
    const kind = k[17];
    if (kind === 0x53 || kind === 0x4c) ops.push({ type: 'del', key: k }); // snapshot chunks, change log
    if (kind !== 0x52) continue;
    const hkey = k.subarray(18);
    const { seq, body } = openRecords(records, id, [hkey], [value])[0]!;
    const v1 = Buffer.concat([Buffer.of(1), u64(seq), seal(records, pack(body), frame('record', id, hkey, u64(seq)))]);
    ops.push({ type: 'put', key: k, value: v1 });
    const tag = liveTags(manifestKey, [hkey], seq);
    for (let i = 0; i < 32; i++) digest[i]! ^= tag[i]!;
  }
  const old = { ...manifest, digest, snapshot: null };
  ops.push({ type: 'put', key: Buffer.concat([prefix, Buffer.of(0x4d)]), value: sealManifest(manifestKey, id, old) });
  const wrapAad = frame('dek', u64(1), name, id, u64(1), 'none', '');
  const v1Entry = { ...entry, format: 1, wrappedDek: seal(deriveKey(key, entry.salt, 'wrap'), dek, wrapAad), createdAt: 1_700_000_000_000 };
  ops.push({ type: 'put', key: catalogKey(name), value: pack(v1Entry) });
  await db.batch(ops as never);
  await db.close();
  const mac = hmac(manifestKey, frame('head', id, u64(old.counter)));
  writeFileSync(join(path, 'heads', hex(id)), Buffer.concat([Buffer.of(1), u64(old.counter), mac]));
}

async function readEverything(index: EncryptedIndex, ids: string[]) {
  return {
    got: await index.get({ ids }),
    listed: (await index.listIds()).ids.sort(),
    near: await index.query({ queryVectors: [0.5, 0.5, 0.5, 0.5], topK: 5, include: ['distance', 'metadata', 'contents'] }),
  };
}

describe('6. leaks the threat model did not list', () => {
  it('(a) a new catalog entry holds no creation time; an entry that has one still loads', async () => {
    const { path, key, client } = await openFresh({ indexName: 'c', dimension: 2 });
    await client.close();
    const entry = await catalogOf(path, 'c');
    expect(Object.keys(entry)).not.toContain('createdAt');
    expect(entry.format).toBe(2);
    // An old entry's createdAt is not bound into anything: with it added, the index still opens.
    const db = await rawStore(path);
    await db.put(catalogKey('c'), pack({ ...entry, createdAt: 1_700_000_000_000 }));
    await db.close();
    const { index } = await reopen(path, key, 'c');
    expect((await index.listIds()).count).toBe(0);
  });

  it('(b) records carry no commit sequence in clear: records written together are not linkable by their headers', async () => {
    const { path, client, index } = await openFresh({ indexName: 'r', dimension: 2 });
    await index.upsert({
      ids: ['a', 'b', 'c'],
      vectors: [
        [1, 0],
        [0, 1],
        [1, 1],
      ],
    }); // one commit
    await index.upsert({
      ids: ['d', 'e', 'f'],
      vectors: [
        [2, 0],
        [0, 2],
        [2, 2],
      ],
    }); // another
    await client.close();
    const db = await rawStore(path);
    const values = (await rawRecords(db)).map((r) => Buffer.from(r.value));
    await db.close();
    expect(values).toHaveLength(6);
    expect(values.every((v) => v[0] === 3)).toBe(true); // record format 3: format 2 with a writer tag (a new index is signed)
    // Format 1 had u64(seq) at bytes 1..9, shared by every record of a commit; now those bytes are the writer tag, then the random nonce.
    expect(new Set(values.map((v) => hex(v.subarray(1, 9)))).size).toBe(6);
    expect(new Set(values.map((v) => hex(v.subarray(33, 41)))).size).toBe(6);
    for (const seq of [1, 2]) expect(values.some((v) => v.includes(u64(seq)))).toBe(false);
  });

  it('(b) the sequence inside a format-2 record is still authenticated and checked: a replayed older copy or an edited version byte → IntegrityError', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'r', dimension: 2 });
    await index.upsert({
      ids: ['a', 'b'],
      vectors: [
        [1, 0],
        [0, 1],
      ],
      metadata: [{ v: 1 }, { v: 1 }],
    });
    await client.close();
    let db = await rawStore(path);
    const before = await rawRecords(db);
    await db.close();
    const again = await reopen(path, key, 'r');
    await again.index.upsert({
      ids: ['a', 'b'],
      vectors: [
        [1, 0],
        [0, 1],
      ],
      metadata: [{ v: 2 }, { v: 2 }],
    });
    await again.client.close();
    // Control: untouched, the new values read back.
    let check = await reopen(path, key, 'r');
    expect((await check.index.get({ ids: ['a'], include: ['metadata'] }))[0]!.metadata).toEqual({ v: 2 });
    await check.client.close();

    db = await rawStore(path);
    const current = await rawRecords(db);
    await db.put(before[0]!.key, before[0]!.value); // replay the older copy (valid ciphertext, older seq inside)
    await db.close();
    check = await reopen(path, key, 'r');
    await rejectsWithCode(check.index.get({ ids: ['a', 'b'] }), 'VECVAULT_INTEGRITY');
    await check.client.close();

    for (const version of [1, 2]) {
      // Record format 3 with its version byte edited to 1 or 2 (the tag then parses as a header or a nonce).
      db = await rawStore(path);
      const edited = Buffer.from(current[0]!.value);
      edited[0] = version;
      await db.put(current[0]!.key, edited);
      await db.close();
      check = await reopen(path, key, 'r');
      await rejectsWithCode(check.index.get({ ids: ['a', 'b'] }), 'VECVAULT_INTEGRITY');
      await check.client.close();
    }
  });

  it('(c) record keys are deterministic per index: the same ids give the same LevelDB keys in two copies (documented, inherent)', async () => {
    const { path, key } = await storedTwoRecords({ indexName: 'k' });
    const db = await rawStore(path);
    const keys = (await rawRecords(db)).map((r) => hex(r.key));
    await db.close();
    // A later copy of the same index (another value for 'a') keeps the key: copies are linkable record by record.
    const again = await reopen(path, key, 'k');
    await again.index.upsert({ ids: ['a'], vectors: [[5, 5]] });
    await again.client.close();
    const db2 = await rawStore(path);
    expect((await rawRecords(db2)).map((r) => hex(r.key))).toEqual(keys);
    await db2.close();
  });
});

describe('format 1 (the previous release) keeps opening, reading and taking writes', () => {
  it('a format-1 index: same answers after the rewrite, new writes use record format 2, the head and digest stay under the manifest key', async () => {
    const vectors = randomVectors(40, 4, 8);
    const ids = vectors.map((_, i) => `id-${i}`);
    const { path, key, client, index } = await openFresh({ indexName: 'old', dimension: 4 });
    await index.upsert({ ids: ids.slice(0, 25), vectors: vectors.slice(0, 25), metadata: ids.slice(0, 25).map((_, i) => ({ i })) });
    await index.upsert({ items: ids.slice(25).map((id, j) => ({ id, vector: vectors[25 + j]!, contents: `text ${j}` })) });
    await index.delete({ ids: ['id-3'] });
    const expected = await readEverything(index, [...ids, 'missing']);
    await client.close();

    await rewriteAsFormat1(path, 'old', key);
    let db = await rawStore(path);
    expect((await rawRecords(db)).every((r) => r.value[0] === 1)).toBe(true);
    await db.close();

    const loaded = await reopen(path, key, 'old');
    expect(await readEverything(loaded.index, [...ids, 'missing'])).toEqual(expected);
    await loaded.index.upsert({ ids: ['id-0', 'new'], vectors: [vectors[1]!, vectors[2]!], metadata: [{ i: 100 }, { i: 101 }] });
    await loaded.index.delete({ ids: ['id-1'] });
    const after = await readEverything(loaded.index, [...ids, 'new']);
    await loaded.client.close();

    const entry = await catalogOf(path, 'old');
    expect(entry.format).toBe(1); // an existing index keeps its format
    expect(entry.createdAt).toBe(1_700_000_000_000);
    db = await rawStore(path);
    const versions = (await rawRecords(db)).map((r) => r.value[0]);
    await db.close();
    expect(versions.filter((v) => v === 2)).toHaveLength(2); // the two records just written
    expect(versions.filter((v) => v === 1)).toHaveLength(37); // 40 − id-3 − id-1 − id-0 (rewritten)
    // The commit head of a format-1 index stays keyed by the manifest key (the old head file, MAC'd with it, was accepted above).
    const { dek } = await dekOf(path, 'old', key);
    expect(made.headKeys.get(hex(entry.indexId))).toEqual(deriveKey(dek, entry.indexId, 'manifest'));

    const last = await reopen(path, key, 'old');
    expect(await readEverything(last.index, [...ids, 'new'])).toEqual(after);
  });
});

describe('7. smaller defects', () => {
  it('(a) a tampered verifier with the right key → IntegrityError; a wrong key still → InvalidKeyError', async () => {
    const { path, key, client } = await openFresh({ indexName: 'v', dimension: 2 });
    await client.close();
    const entry = await catalogOf(path, 'v');
    const verifier = Buffer.from(entry.verifier);
    verifier[5]! ^= 0x40;
    const db = await rawStore(path);
    await db.put(catalogKey('v'), pack({ ...entry, verifier }));
    await db.close();
    const c1 = openClient(path);
    await rejectsWithCode(c1.loadIndex({ indexName: 'v', indexKey: key }), 'VECVAULT_INTEGRITY');
    await rejectsWithCode(c1.loadIndex({ indexName: 'v', indexKey: Client.generateKey() }), 'VECVAULT_INVALID_KEY');
  });

  describe('(b) vectors whose float32 distances would overflow → ValidationError with a path', () => {
    const huge = [1e20, 1e20];
    for (const metric of ['euclidean', 'squared_euclidean', 'ip'] as const) {
      it(`${metric}: upsert and query, every input shape`, async () => {
        const { index } = await openFresh({ indexName: metric, metric, dimension: 2 });
        const e1 = await rejectsWithCode(
          index.upsert({
            items: [
              { id: 'ok', vector: [1, 2] },
              { id: 'big', vector: huge },
            ],
          }),
          'VECVAULT_VALIDATION',
        );
        expect((e1 as { path?: string }).path).toBe('items[1].vector');
        const e2 = await rejectsWithCode(index.upsert({ ids: ['ok', 'big'], vectors: [[1, 2], new Float64Array(huge)] }), 'VECVAULT_VALIDATION');
        expect((e2 as { path?: string }).path).toBe('vectors[1]');
        expect((await index.listIds()).count).toBe(0); // nothing written
        await index.upsert({
          ids: ['near', 'far'],
          vectors: [
            [1, 1],
            [-1000, 5],
          ],
        });
        const queries: [unknown, string][] = [
          [[1e20, -1e20], 'queryVectors'],
          [[[1, 1], huge], 'queryVectors[1]'],
          [new Float32Array([1, 1, ...huge]), 'queryVectors[1]'],
          [new Float32Array(huge), 'queryVectors'],
        ];
        for (const [queryVectors, path] of queries) {
          const e = await rejectsWithCode(index.query({ queryVectors: queryVectors as number[], topK: 2, dimension: 2 }), 'VECVAULT_VALIDATION');
          expect((e as { path?: string }).path).toBe(path);
        }
        // Control: up to a squared length of 2^125 every distance stays finite and the order right.
        const c = Math.sqrt(2 ** 125 / 2) * 0.999;
        await index.upsert({
          ids: ['edge+', 'edge-'],
          vectors: [
            [c, c],
            [-c, -c],
          ],
        });
        const { results } = await index.query({ queryVectors: [-c, -c], topK: 4, include: ['distance'] });
        expect(results.every((r) => Number.isFinite(r.distance))).toBe(true);
        if (metric !== 'ip') expect([results[0]!.id, results[3]!.id]).toEqual(['edge-', 'edge+']); // nearest first, the farthest (distance² ≈ 2^127) last
      });
    }

    it('cosine (float32) computes in double: huge vectors are accepted and rank correctly', async () => {
      const { index } = await openFresh({ indexName: 'cos', metric: 'cosine', dimension: 2 });
      await index.upsert({ ids: ['big', 'other'], vectors: [huge, [1, -1]] });
      const { results } = await index.query({ queryVectors: [1e20, 0.9e20], topK: 2, include: ['distance'] });
      expect(results.map((r) => r.id)).toEqual(['big', 'other']);
      expect(results.every((r) => Number.isFinite(r.distance))).toBe(true);
    });

    it('float16 storage: a component beyond 65504 (float16 infinity) is rejected for every metric', async () => {
      const client = openClient();
      for (const metric of ['euclidean', 'cosine', 'ip'] as const) {
        const index = await client.createIndex({ indexName: metric, indexKey: Client.generateKey(), metric, storagePrecision: 'float16', dimension: 2 });
        const e = await rejectsWithCode(index.upsert({ ids: ['a'], vectors: [[1, 1e5]] }), 'VECVAULT_VALIDATION');
        expect((e as { path?: string }).path).toBe('vectors[0][1]');
        const q = await rejectsWithCode(index.query({ queryVectors: [1e5, 1] }), 'VECVAULT_VALIDATION');
        expect((q as { path?: string }).path).toBe('queryVectors[0]');
        await index.upsert({
          ids: ['a', 'b'],
          vectors: [
            [65504, -65504],
            [-65504, 65504],
          ],
        }); // control: the largest float16 is fine
        const { results } = await index.query({ queryVectors: [65504, -65504], topK: 2, include: ['distance'] });
        expect(results.map((r) => r.id)).toEqual(['a', 'b']);
      }
    });
  });

  describe('(c) close() waits for calls that started before it', () => {
    for (const via of ['index', 'client'] as const) {
      for (const n of [2, 1000]) {
        it(`an upsert of ${n} still validating when ${via}.close() is called completes and is saved`, async () => {
          const vectors = randomVectors(n, 4, 3);
          const { path, key, client, index } = await openFresh({ indexName: 'w', dimension: 4 });
          const write = index.upsert({ ids: vectors.map((_, i) => `v${i}`), vectors });
          const read = index.listIds();
          const closed = via === 'index' ? index.close() : client.close();
          await expect(write).resolves.toEqual({ status: 'success', upsertedCount: n });
          expect((await read).count).toBeLessThanOrEqual(n);
          await closed;
          await rejectsWithCode(index.upsert({ ids: ['late'], vectors: [[1, 2, 3, 4]] }), 'VECVAULT_CLOSED');
          await client.close();
          const again = await reopen(path, key, 'w');
          expect((await again.index.listIds()).count).toBe(n);
        });
      }
    }

    it('calls that start after close() began still get ClosedError, while the close is draining', async () => {
      const vectors = randomVectors(1000, 4, 3);
      const { index } = await openFresh({ indexName: 'w', dimension: 4 });
      const write = index.upsert({ ids: vectors.map((_, i) => `v${i}`), vectors });
      const closed = index.close();
      await rejectsWithCode(index.upsert({ ids: ['late'], vectors: [[1, 2, 3, 4]] }), 'VECVAULT_CLOSED');
      await rejectsWithCode(index.query({ queryVectors: [1, 2, 3, 4] }), 'VECVAULT_CLOSED');
      await rejectsWithCode(index.get({ ids: ['v1'] }), 'VECVAULT_CLOSED');
      await expect(write).resolves.toMatchObject({ upsertedCount: 1000 });
      await closed;
    });
  });

  it('(d) a new index MACs its head file and digest terms with their own subkeys, not the manifest key', async () => {
    const { path, key } = await storedTwoRecords({ indexName: 'd' });
    const { entry, dek } = await dekOf(path, 'd', key);
    const id = entry.indexId;
    const manifestKey = deriveKey(dek, id, 'manifest');
    // The commit-head file is given the index's own head key (heads.ts decides how it uses it).
    expect(made.headKeys.get(hex(id))).not.toEqual(manifestKey);
    expect(made.headKeys.get(hex(id))).toEqual(deriveKey(dek, id, 'head'));

    const db = await rawStore(path);
    const records = await rawRecords(db);
    const manifest = openManifest(manifestKey, id, asUnsignedManifest((await db.get(Buffer.concat([Buffer.of(0x49), id, Buffer.of(0x4d)])))!), 'd');
    await db.close();
    const digestWith = (k: Uint8Array) => {
      const out = Buffer.alloc(32);
      for (const r of records) {
        const hkey = r.key.subarray(18);
        const { seq } = openRecords(deriveKey(dek, id, 'records'), id, [hkey], [r.value])[0]!;
        const tag = liveTags(k, [hkey], seq);
        for (let i = 0; i < 32; i++) out[i]! ^= tag[i]!;
      }
      return out;
    };
    expect(Buffer.from(manifest.digest)).not.toEqual(digestWith(manifestKey));
    expect(Buffer.from(manifest.digest)).toEqual(digestWith(deriveKey(dek, id, 'digest')));
  });

  it('(e) Float64Array query vectors are accepted like Float32Array: one vector, or a flat batch split by dimension', async () => {
    const base = randomVectors(50, 4, 9);
    const { index } = await openFresh({ indexName: 'f', dimension: 4 });
    await index.upsert({ ids: base.map((_, i) => `v${i}`), vectors: base });
    const single = await index.query({ queryVectors: new Float64Array(base[7]!), topK: 1 });
    expect(single.results).toEqual([{ id: 'v7' }]);
    const flat = new Float64Array([...base[10]!, ...base[20]!]);
    const batch = await index.query({ queryVectors: flat, dimension: 4, topK: 1 });
    expect(batch.results).toEqual([[{ id: 'v10' }], [{ id: 'v20' }]]);
    expect(batch).toEqual(await index.query({ queryVectors: new Float32Array(flat), dimension: 4, topK: 1 }));
    const rows = await index.query({ queryVectors: [new Float64Array(base[3]!), new Float64Array(base[4]!)], topK: 1 });
    expect(rows.results).toEqual([[{ id: 'v3' }], [{ id: 'v4' }]]);
    const e = await rejectsWithCode(index.query({ queryVectors: new Float64Array([1, 2, 3, Number.NaN]) }), 'VECVAULT_VALIDATION');
    expect((e as { path?: string }).path).toBe('queryVectors[3]');
  });

  it('(f) the DEK, the copy of the index key and every subkey are wiped once no longer needed; the caller key is left alone', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const callerCopy = Buffer.from(key);
    const at = { keks: made.keks.length, deks: made.deks.length, subkeys: made.subkeys.length };
    const client = openClient(path);
    const index = await client.createIndex({ indexName: 'z', indexKey: key, dimension: 2 });
    await index.upsert({ ids: ['a'], vectors: [[1, 2]] });
    expect(made.deks.slice(at.deks).every(isZero)).toBe(true); // DEK: gone once the subkeys are derived
    expect(made.keks.slice(at.keks).every(isZero)).toBe(true); // our copy of the KEK: gone after the envelope
    const live = made.subkeys.slice(at.subkeys);
    expect(live.length).toBe(1);
    expect(Object.values(live[0]!).some(isZero)).toBe(false); // in use while open
    await index.close();
    expect(Object.values(live[0]!).every(isZero)).toBe(true);

    const loaded = await client.loadIndex({ indexName: 'z', indexKey: key });
    expect((await loaded.get({ ids: ['a'] }))[0]!.vector).toEqual([1, 2]);
    await rejectsWithCode(client.loadIndex({ indexName: 'z', indexKey: Client.generateKey() }), 'VECVAULT_INVALID_KEY');
    await loaded.deleteIndex();
    expect(made.subkeys.slice(at.subkeys).every((k) => Object.values(k).every(isZero))).toBe(true);
    expect(made.deks.slice(at.deks).every(isZero)).toBe(true);
    expect(made.keks.slice(at.keks).every(isZero)).toBe(true);
    expect(Buffer.from(key)).toEqual(callerCopy); // the caller's key is theirs
  });
});
