/**
 * Attacks on the files at rest, each with a negative control showing the
 * attack works when the protection is taken away.
 */
import { closeSync, cpSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { open, seal } from '../src/crypto/aead.js';
import { frame } from '../src/crypto/kdf.js';
import { deriveIndexKeys, openEnvelope, type CatalogEntry } from '../src/keys/envelope.js';
import { catalogKey } from '../src/storage/layout.js';
import { pack, unpack } from '../src/util/msgpack.js';
import { Client } from '../src/index.js';
import { openFresh, reopen } from './support/fixtures.js';
import { rawRecords, rawStore, rejectsWithCode, tempStore } from './support/helpers.js';
import { randomVectors } from './support/vectors.js';

async function populated(path: string, key: Uint8Array, name = 'secure', n = 20) {
  const { client, index } = await openFresh({ path, indexName: name, indexKey: key, dimension: 4 });
  const vectors = randomVectors(n, 4, 21);
  await index.upsert({ ids: vectors.map((_, i) => `id-${i}`), vectors, metadata: vectors.map((_, i) => ({ i })) });
  await client.close();
  return vectors;
}

async function loadAndReadAll(path: string, key: Uint8Array, name = 'secure', n = 20) {
  const client = new Client({ path }); // not reopen(): closed at once even when loading fails, the next attempt opens the same store
  try {
    const index = await client.loadIndex({ indexName: name, indexKey: key });
    return await index.get({ ids: Array.from({ length: n }, (_, i) => `id-${i}`) });
  } finally {
    await client.close();
  }
}

describe('tampering with stored records', () => {
  it('a flipped byte anywhere in a record value → IntegrityError', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    await populated(path, key);
    // Control: an untouched copy loads and reads back in full, so each failure below is the flipped byte's doing.
    const untouched = tempStore();
    cpSync(path, untouched, { recursive: true });
    expect(await loadAndReadAll(untouched, key)).toHaveLength((await loadAndReadAll(path, key)).length);
    for (const position of ['header', 'nonce', 'body', 'tag'] as const) {
      const copy = tempStore();
      cpSync(path, copy, { recursive: true });
      const db = await rawStore(copy);
      const [victim] = await rawRecords(db);
      const value = Buffer.from(victim!.value);
      const at = { header: 3, nonce: 12, body: 30, tag: value.length - 2 }[position];
      value[at]! ^= 0x01;
      await db.put(victim!.key, value);
      await db.close();
      await rejectsWithCode(loadAndReadAll(copy, key), 'VECVAULT_INTEGRITY');
    }
  });

  it('swapping two records, or moving one between indexes → IntegrityError; without AAD binding the swap goes unnoticed', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    await populated(path, key, 'one');
    await populated(path, key, 'two'); // same KEK, different index
    const db = await rawStore(path);
    const records = await rawRecords(db);
    const entry = unpack((await db.get(catalogKey('one')))!) as CatalogEntry;
    const oneId = Buffer.from(entry.indexId).toString('hex');
    const [a, b] = records.filter((r) => r.indexId === oneId);
    const foreign = records.find((r) => r.indexId !== oneId)!;
    await db.close();

    // Swap within one index.
    const swapped = tempStore();
    cpSync(path, swapped, { recursive: true });
    let raw = await rawStore(swapped);
    await raw.batch([
      { type: 'put', key: a!.key, value: b!.value },
      { type: 'put', key: b!.key, value: a!.value },
    ]);
    await raw.close();
    await rejectsWithCode(loadAndReadAll(swapped, key, 'one'), 'VECVAULT_INTEGRITY');

    // Move a record from index two into index one (same KEK).
    const moved = tempStore();
    cpSync(path, moved, { recursive: true });
    raw = await rawStore(moved);
    await raw.put(a!.key, foreign.value);
    await raw.close();
    await rejectsWithCode(loadAndReadAll(moved, key, 'one'), 'VECVAULT_INTEGRITY');

    // Negative control: the same records sealed under the same key but with an
    // AAD that does not bind the record key decrypt fine after the swap — the
    // reader would get b's data for a.
    const dek = openEnvelope(key, 'one', {
      ...entry,
      indexId: new Uint8Array(entry.indexId),
      salt: new Uint8Array(entry.salt),
      verifier: new Uint8Array(entry.verifier),
      wrappedDek: new Uint8Array(entry.wrappedDek),
    });
    const { records: recordKey } = deriveIndexKeys(dek, new Uint8Array(entry.indexId));
    const unbound = frame('record');
    const sealedA = seal(recordKey, Buffer.from('payload of a'), unbound);
    const sealedB = seal(recordKey, Buffer.from('payload of b'), unbound);
    const readAtA = open(recordKey, sealedB, unbound, 'control'); // slot a now holds b's value
    expect(readAtA.toString()).toBe('payload of b');
    expect(sealedA).not.toEqual(sealedB);
  });

  it('a record deleted or replayed from an older commit behind our back → IntegrityError', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    await populated(path, key);
    // Replay: keep an old copy of a record, overwrite it through the API, put the old copy back.
    let db = await rawStore(path);
    const [old] = await rawRecords(db);
    await db.close();
    const { client, index } = await reopen(path, key, 'secure');
    const all = await index.get({ ids: Array.from({ length: 20 }, (_, i) => `id-${i}`), include: ['vector'] });
    await index.upsert({ items: all.map((g) => ({ id: g.id, vector: g.vector!, metadata: { i: -1 } })) });
    await client.close();
    const replayed = tempStore();
    cpSync(path, replayed, { recursive: true });
    db = await rawStore(replayed);
    await db.put(old!.key, old!.value);
    await db.close();
    await rejectsWithCode(loadAndReadAll(replayed, key), 'VECVAULT_INTEGRITY');
    // Control: untouched copy loads and serves the new metadata.
    expect((await loadAndReadAll(path, key)).every((g) => g.metadata?.i === -1)).toBe(true);

    // Deletion of one record's key.
    db = await rawStore(path);
    const [victim] = await rawRecords(db);
    await db.del(victim!.key);
    await db.close();
    await rejectsWithCode(loadAndReadAll(path, key), 'VECVAULT_INTEGRITY');
  });

  it('rolling the LevelDB files back to an earlier commit → IntegrityError; restoring the head too hides it (control)', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    await populated(path, key);
    const snapshot = tempStore();
    cpSync(path, snapshot, { recursive: true });
    const { client, index } = await reopen(path, key, 'secure');
    await index.delete({ ids: ['id-1', 'id-2'] });
    await client.close();

    // Attack: only the database files go back in time (a sync conflict, a partial restore,
    // or LevelDB dropping batches after a corrupt log byte all look like this).
    rmSync(join(path, 'store'), { recursive: true });
    cpSync(join(snapshot, 'store'), join(path, 'store'), { recursive: true });
    await rejectsWithCode(loadAndReadAll(path, key), 'VECVAULT_INTEGRITY');

    // Control: roll the head back as well and the old state loads without complaint —
    // the head is what catches it (a full-directory rollback is out of scope, see README).
    rmSync(join(path, 'heads'), { recursive: true });
    cpSync(join(snapshot, 'heads'), join(path, 'heads'), { recursive: true });
    const restored = await loadAndReadAll(path, key);
    expect(restored[1]!.vector).toBeDefined();
  });

  it('a forged or missing head → IntegrityError', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    await populated(path, key);
    const [headName] = readdirSync(join(path, 'heads'));
    const headPath = join(path, 'heads', headName!);
    const head = readFileSync(headPath);
    head[5]! ^= 1;
    writeFileSync(headPath, head);
    await rejectsWithCode(loadAndReadAll(path, key), 'VECVAULT_INTEGRITY');
    rmSync(headPath);
    await rejectsWithCode(loadAndReadAll(path, key), 'VECVAULT_INTEGRITY');
  });
});

describe('tampering with the catalog', () => {
  it('catalog entries with fields of the wrong type → IntegrityError, never a TypeError', async () => {
    const { path, key, client: creator } = await openFresh({ indexName: 'x' });
    await creator.close();
    // Control: the same decode and re-pack with nothing changed still loads, so each failure below is the field's doing.
    const db0 = await rawStore(path);
    await db0.put(catalogKey('x'), pack(unpack((await db0.get(catalogKey('x')))!)));
    await db0.close();
    await (await reopen(path, key, 'x')).client.close();
    for (const [field, value] of [
      ['dekGeneration', 'x'],
      ['dekGeneration', 1.5],
      ['keyId', 5],
      ['indexId', 'nope'],
      ['salt', new Uint8Array(3)],
    ] as const) {
      const db = await rawStore(path);
      const original = (await db.get(catalogKey('x')))!;
      await db.put(catalogKey('x'), pack({ ...(unpack(original) as object), [field]: value }));
      await db.close();
      const client = new Client({ path });
      await rejectsWithCode(client.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
      await client.close();
      const restore = await rawStore(path);
      await restore.put(catalogKey('x'), original);
      await restore.close();
    }
  });
});

describe('leakage', () => {
  /**
   * Regular files under `dir` (symlinks are not followed), optionally only those
   * modified at or after `since` (ms). Unreadable directories and entries that
   * vanish meanwhile are skipped: the OS temp dir is shared with everything else.
   */
  function filesUnder(dir: string, since = 0, out: string[] = []): string[] {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return out;
    }
    for (const name of entries) {
      const full = join(dir, name);
      let st;
      try {
        st = lstatSync(full);
      } catch {
        continue;
      }
      if (st.isDirectory()) filesUnder(full, since, out);
      else if (st.isFile() && st.mtimeMs >= since) out.push(full);
    }
    return out;
  }

  /**
   * Whether `file` contains any needle, read in chunks (memory stays bounded for
   * any file size); each chunk keeps the previous one's last (longest needle − 1)
   * bytes so a needle straddling a boundary is still found. Unreadable → false.
   */
  function fileContains(file: string, needles: Buffer[], chunkSize = 1 << 20): boolean {
    const overlap = Math.max(...needles.map((n) => n.length)) - 1;
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return false; // vanished or unreadable meanwhile
    }
    try {
      const buffer = Buffer.alloc(overlap + chunkSize);
      let kept = 0;
      for (;;) {
        const read = readSync(fd, buffer, kept, chunkSize, null);
        if (read === 0) return false;
        const window = buffer.subarray(0, kept + read);
        if (needles.some((needle) => window.includes(needle))) return true;
        kept = Math.min(overlap, window.length);
        window.copyWithin(0, window.length - kept);
      }
    } catch {
      return false; // e.g. EISDIR/EIO on an odd file, or it shrank under us
    } finally {
      closeSync(fd);
    }
  }

  it('the chunked scan finds a needle that straddles a chunk boundary (scanner control)', () => {
    const dir = tempStore();
    const needle = Buffer.from('straddling-needle');
    for (const at of [0, 5, 9, 10, 11, 31]) {
      const file = join(dir, `at-${at}.bin`);
      writeFileSync(file, Buffer.concat([Buffer.alloc(at, 0x2e), needle, Buffer.alloc(7, 0x2e)]));
      expect(fileContains(file, [needle], 10)).toBe(true);
      expect(fileContains(file, [Buffer.from('absent-needle')], 10)).toBe(false);
    }
    expect(fileContains(join(dir, 'missing.bin'), [needle])).toBe(false);
  });

  it('no planted id, metadata, contents or vector bytes appear in any file of the store or the temp dir', async () => {
    // Files the OS temp dir held before the test are not ours to read (it may hold gigabytes);
    // only those written from now on can be vecvault's. Slack covers coarse mtime clocks.
    const since = Date.now() - 2_000;
    const osTmp = tmpdir();
    // A private temp dir for the test's duration: anything vecvault (or a native library
    // under it) puts in "the temp dir" lands here and is scanned in full.
    const privateTmp = tempStore('vecvault-leak-tmp-');
    const saved = { TMPDIR: process.env.TMPDIR, TMP: process.env.TMP, TEMP: process.env.TEMP };
    process.env.TMPDIR = process.env.TMP = process.env.TEMP = privateTmp;
    const marker = `M${Date.now().toString(36)}Q`;
    const vector = new Float32Array(64).fill(1234.56787109375);
    const vectorBytes = Buffer.from(vector.buffer).subarray(0, 16);
    let path: string;
    let items: { id: string; vector: Float32Array; metadata: { note: string }; contents: string | Buffer }[];
    try {
      expect(tmpdir()).toBe(privateTmp);
      path = tempStore();
      const key = Client.generateKey();
      const { client, index } = await openFresh({ path, indexName: 'plain-name', indexKey: key, dimension: 64 });
      items = Array.from({ length: 300 }, (_, i) => ({
        id: `${marker}-id-${i}`,
        vector: i === 0 ? vector : Float32Array.from({ length: 64 }, (_, j) => Math.sin(i * j)),
        metadata: { note: `${marker}-meta-${i}` },
        contents: i % 2 ? `${marker}-contents-${i}` : Buffer.from(`${marker}-bytes-${i}`),
      }));
      await index.upsert({ items });
      await index.delete({ ids: [`${marker}-id-7`] });
      await client.close();
      const reopened = await reopen(path, key, 'plain-name');
      expect((await reopened.index.get({ ids: [`${marker}-id-1`] }))[0]!.contents).toBe(`${marker}-contents-1`);
      await reopened.client.close();
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }

    const needles = [Buffer.from(marker), Buffer.from(marker, 'utf16le'), vectorBytes];
    const leaks = (files: string[]) => files.filter((file) => fileContains(file, needles));
    const storeFiles = filesUnder(path);
    expect(storeFiles.length).toBeGreaterThan(3);
    const files = [...new Set([...storeFiles, ...filesUnder(privateTmp), ...filesUnder(osTmp, since)])];
    expect(leaks(files)).toEqual([]);

    // Negative controls: the same scan finds the markers once a plaintext copy exists
    // (what the stock usearch save() or an unencrypted store would leave behind) —
    // in the store, and as a fresh file anywhere in the OS temp dir.
    const plain = join(path, 'plaintext-control.bin');
    writeFileSync(plain, Buffer.concat([Buffer.from(JSON.stringify(items.slice(0, 3))), Buffer.from(vector.buffer)]));
    expect(leaks(filesUnder(path))).toEqual([plain]);
    const strayDir = tempStore('vecvault-leak-control-');
    const stray = join(strayDir, 'nested', 'stray.bin');
    mkdirSync(dirname(stray));
    writeFileSync(stray, Buffer.concat([Buffer.alloc(3 << 20, 0x20), Buffer.from(marker)])); // past the first chunks
    expect(leaks(filesUnder(osTmp, since)).sort()).toEqual([plain, stray].sort()); // the store lives under it too
  });
});
