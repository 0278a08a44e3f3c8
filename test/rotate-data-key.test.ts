/**
 * index.rotateDataKey({ onProgress }) (DESIGN §7): a new DEK generation.
 * Every record, the change log and the snapshot are re-sealed; the index
 * reads back the same; writes during the rotation wait and are not lost,
 * reads go on; a KMS-backed index makes exactly one wrap with the new
 * generation's context; a failure midway leaves the old generation serving
 * and the next call continues; afterwards no value of the old generation
 * nor its wrapped DEK is in any file (byte scan; controls: the scan finds
 * them before, and after a switch that only wrote tombstones).
 * kill -9 during rotation: test/rotate-kill.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type CustomSlot, type EncryptedIndex } from '../src/index.js';
import { catalogKey, indexRange } from '../src/storage/layout.js';
import { pack } from '../src/util/msgpack.js';
import { AwsLoopback, LOOPBACK_CREDENTIALS } from './support/aws-loopback.js';
import { rawStore, rejectsKmsError, rejectsWithCode, tempStore } from './support/helpers.js';
import { contentsOf, countFound, customSlot, rawCatalogEntry, sampleGeneration } from './support/rotation.js';
import { randomVectors } from './support/vectors.js';

const N = 1_500;
const IDS = Array.from({ length: N }, (_, i) => `r${i}`);
const VECTORS = randomVectors(N, 8, 7);

/** An index with records in LevelDB's tables (closed once: snapshot) and newer ones only in the change log and the .log file. */
async function layered(path: string, source: { indexKey: Uint8Array } | { kmsName: string }, kms?: Record<string, CustomSlot>) {
  {
    const client = new Client({ path, kms });
    const index = await client.createIndex({ indexName: 'n', dimension: 8, metric: 'cosine', ...source });
    await index.upsert({ ids: IDS.slice(0, 1_000), vectors: VECTORS.slice(0, 1_000), metadata: IDS.slice(0, 1_000).map((_, i) => ({ i })) });
    await client.close();
  }
  const client = new Client({ path, kms });
  const index: EncryptedIndex = await client.loadIndex('indexKey' in source ? { indexName: 'n', indexKey: source.indexKey } : { indexName: 'n' });
  await index.upsert({ ids: IDS.slice(1_000), vectors: VECTORS.slice(1_000), contents: IDS.slice(1_000).map((id) => `text of ${id}`) });
  await index.delete({ ids: ['r3', 'r1200'] });
  return { client, index };
}

const LIVE = IDS.filter((id) => id !== 'r3' && id !== 'r1200');

describe('rotateDataKey', () => {
  it('re-seals everything under a new generation: same answers, new index id and generation, verify passes, progress to the end', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const { client, index } = await layered(path, { indexKey: key });
    const before = await contentsOf(index, IDS);
    const query = (await index.query({ queryVectors: VECTORS[5]!, topK: 10, include: ['distance'] })).results;
    await client.close();
    const old = await sampleGeneration(path, 'n');
    expect(countFound(path, old.needles)).toBe(old.needles.length); // control: the scan finds every sampled value before

    const c2 = new Client({ path });
    const again = await c2.loadIndex({ indexName: 'n', indexKey: key });
    const progress: { done: number; total: number }[] = [];
    await again.rotateDataKey({ onProgress: (p) => progress.push(p) });
    expect(progress.at(-1)).toEqual({ done: LIVE.length, total: LIVE.length });
    expect(progress.every((p, i) => i === 0 || p.done >= progress[i - 1]!.done)).toBe(true);
    expect(progress.length).toBeGreaterThan(2);
    expect(await contentsOf(again, IDS)).toEqual(before);
    expect((await again.query({ queryVectors: VECTORS[5]!, topK: 10, include: ['distance'] })).results).toEqual(query);
    expect(countFound(path, old.needles)).toBe(0); // erased once the call resolves
    await again.upsert({ items: [{ id: 'later', vector: VECTORS[0]! }] });
    expect((await again.verify()).ok).toBe(true);
    await c2.close();
    expect(countFound(path, old.needles)).toBe(0);

    const entry = await rawCatalogEntry(path, 'n');
    expect(entry.dekGeneration).toBe(old.entry.dekGeneration + 1);
    expect(Buffer.from(entry.indexId).equals(Buffer.from(old.entry.indexId))).toBe(false);
    expect(readdirSync(join(path, 'heads'))).toEqual([Buffer.from(entry.indexId).toString('hex')]);
    const c3 = new Client({ path });
    const reopened = await c3.loadIndex({ indexName: 'n', indexKey: key });
    expect(await contentsOf(reopened, IDS)).toEqual(before);
    expect((await reopened.get({ ids: ['later'] }))[0]!.vector).toBeDefined();
    await reopened.rotateDataKey(); // and again
    expect(await contentsOf(reopened, IDS)).toEqual(before);
    await c3.close();
    expect((await rawCatalogEntry(path, 'n')).dekGeneration).toBe(old.entry.dekGeneration + 2);
  });

  it('control: the same switch with tombstones only (no erasure) leaves the old values and wrapped DEK in the files', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const { client } = await layered(path, { indexKey: key });
    await client.close();
    const old = await sampleGeneration(path, 'n');
    // What the switch batch does, without KvStore.shred after it: delete every key of the old index id, replace the catalog entry.
    const db = await rawStore(path);
    const ops: { type: 'del' | 'put'; key: Uint8Array; value?: Uint8Array }[] = [];
    for await (const k of db.keys(indexRange(old.entry.indexId))) ops.push({ type: 'del', key: k });
    ops.push({ type: 'put', key: catalogKey('n'), value: pack({ ...old.entry, wrappedDek: randomBytes(60) }) });
    await db.batch(ops as never, { sync: true });
    await db.close();
    expect(countFound(path, old.needles)).toBeGreaterThan(old.needles.length / 2);
    expect(countFound(path, [Buffer.from(old.entry.wrappedDek)])).toBe(1);
  });

  it('writes during the rotation wait and are kept; reads during it answer from the old generation, then the new', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const { client, index } = await layered(path, { indexKey: key });
    const before = await contentsOf(index, LIVE);
    const other = await new Client({ path }).loadIndex({ indexName: 'n', indexKey: key }); // another Client's handle on the shared index
    let rotated = false;
    const rotation = index.rotateDataKey().then(() => (rotated = true));
    const write = other.upsert({ items: [{ id: 'during', vector: VECTORS[1]!, contents: 'written during rotation' }] }).then((r) => {
      expect(rotated).toBe(true); // it waited
      return r;
    });
    const reads: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      reads.push(
        (async () => {
          await new Promise((resolve) => setTimeout(resolve, i * 5));
          const ids = LIVE.slice(i * 50, i * 50 + 50);
          expect(await contentsOf(other, ids)).toEqual(before.slice(i * 50, i * 50 + 50));
        })(),
      );
    }
    // loadIndex through other Clients while it runs (before, across and after the switch to the new index id) opens the shared index.
    const loads: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) {
      loads.push(
        (async () => {
          await new Promise((resolve) => setTimeout(resolve, i * 10));
          const c = new Client({ path });
          const loaded = await c.loadIndex({ indexName: 'n', indexKey: key });
          expect(await contentsOf(loaded, LIVE.slice(0, 20))).toEqual(before.slice(0, 20));
          await c.close();
        })(),
      );
    }
    await Promise.all([rotation, write, ...reads, ...loads]);
    expect((await index.get({ ids: ['during'] }))[0]!.contents).toBe('written during rotation');
    await client.close();
    const c2 = new Client({ path });
    const again = await c2.loadIndex({ indexName: 'n', indexKey: key });
    expect((await again.get({ ids: ['during'] }))[0]!.contents).toBe('written during rotation');
    expect(await contentsOf(again, LIVE)).toEqual(before);
    await c2.close();
  });

  it('a failure midway leaves the old generation serving; the next call continues the copy; a write in between makes it start over', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const { client, index } = await layered(path, { indexKey: key });
    const before = await contentsOf(index, LIVE);
    const stop = new Error('stop here');
    await expect(
      index.rotateDataKey({
        onProgress: ({ done }) => {
          if (done >= 1_024) throw stop;
        },
      }),
    ).rejects.toBe(stop);
    expect(await contentsOf(index, LIVE)).toEqual(before);
    let first: number | undefined;
    await index.rotateDataKey({ onProgress: ({ done }) => (first ??= done) });
    expect(first).toBe(1_024); // continued, not restarted
    expect(await contentsOf(index, LIVE)).toEqual(before);

    // Interrupted again, then the process "restarts": the old generation opens, and the copy continues.
    await expect(index.rotateDataKey({ onProgress: ({ done }) => { if (done >= 1_024) throw stop; } })).rejects.toBe(stop); // prettier-ignore
    await client.close();
    const c2 = new Client({ path });
    const again = await c2.loadIndex({ indexName: 'n', indexKey: key });
    expect(await contentsOf(again, LIVE)).toEqual(before);
    first = undefined;
    await again.rotateDataKey({ onProgress: ({ done }) => (first ??= done) });
    expect(first).toBe(1_024);
    expect(await contentsOf(again, LIVE)).toEqual(before);

    // A write after the interruption: the copy starts over (first progress 0) and the write is kept.
    await expect(again.rotateDataKey({ onProgress: ({ done }) => { if (done >= 1_024) throw stop; } })).rejects.toBe(stop); // prettier-ignore
    await again.upsert({ items: [{ id: 'between', vector: VECTORS[2]! }] });
    first = undefined;
    await again.rotateDataKey({ onProgress: ({ done }) => (first ??= done) });
    expect(first).toBe(0);
    expect((await again.get({ ids: ['between'] }))[0]!.vector).toBeDefined();
    expect((await again.verify()).ok).toBe(true);
    await c2.close();
  });

  it('deleteIndex during an unfinished rotation erases the staging copy too; the name is free again', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const { client, index } = await layered(path, { indexKey: key });
    const stop = new Error('stop');
    await expect(index.rotateDataKey({ onProgress: ({ done }) => { if (done > 0) throw stop; } })).rejects.toBe(stop); // prettier-ignore
    await index.deleteIndex();
    expect(readdirSync(join(path, 'heads'))).toEqual([]);
    await client.close();
    const db = await rawStore(path);
    expect(await db.keys().all()).toEqual([]);
    await db.close();
    const c2 = new Client({ path });
    await c2.createIndex({ indexName: 'n', indexKey: key, dimension: 8 });
    await c2.close();
  });
});

describe('rotateDataKey on KMS-backed indexes', () => {
  let aws: AwsLoopback;
  beforeAll(async () => {
    aws = await new AwsLoopback('eu-west-1').start();
  });
  afterAll(async () => {
    await aws?.close();
  });

  it('custom slot: exactly one wrap, with the new generation context; a refusing slot is KmsError and writes nothing', async () => {
    const path = tempStore();
    let wraps = 0;
    let refuse = false;
    const inner = customSlot(randomBytes(32), { fail: () => refuse });
    const slot: CustomSlot = { ...inner, wrapKey: (k, ctx) => (wraps++, inner.wrapKey(k, ctx)) };
    const { client, index } = await layered(path, { kmsName: 'app' }, { app: slot });
    const before = await contentsOf(index, LIVE);
    refuse = true;
    await rejectsKmsError(index.rotateDataKey(), true);
    expect(index.getKeySource()).toMatchObject({ kmsName: 'app' });
    refuse = false;
    wraps = 0;
    await index.rotateDataKey();
    expect(wraps).toBe(1);
    expect(index.getKeySource()).toEqual({ provider: 'custom', kmsName: 'app', keyId: 'app-keychain/1' });
    await client.close();
    const stored = await rawCatalogEntry(path, 'n');
    expect(stored.dekGeneration).toBe(2);
    const c2 = new Client({ path, kms: { app: slot } });
    expect(await contentsOf(await c2.loadIndex({ indexName: 'n' }), LIVE)).toEqual(before);
    await c2.close();
  });

  it('a loadIndex that read the catalog entry before the switch (its KMS unwrap still running) opens the rotated index, not the deleted generation', async () => {
    const path = tempStore();
    const inner = customSlot(randomBytes(32));
    let gate: Promise<void> | undefined;
    let unwrapping: () => void = () => undefined;
    const unwrapStarted = new Promise<void>((resolve) => (unwrapping = resolve));
    const slot: CustomSlot = {
      ...inner,
      async unwrapKey(w, ctx) {
        if (gate) {
          unwrapping();
          await gate;
        }
        return inner.unwrapKey(w, ctx);
      },
    };
    const { client, index } = await layered(path, { kmsName: 'app' }, { app: slot });
    const before = await contentsOf(index, LIVE);
    let release: () => void = () => undefined;
    gate = new Promise((resolve) => (release = resolve));
    const other = new Client({ path, kms: { app: slot } });
    const loading = other.loadIndex({ indexName: 'n' }); // reads the entry of generation 1, then waits in unwrapKey
    await unwrapStarted;
    gate = undefined;
    await index.rotateDataKey(); // switches to a new index id meanwhile
    release();
    const loaded = await loading;
    expect(await contentsOf(loaded, LIVE)).toEqual(before);
    await other.close();
    await client.close();
  });

  it('aws-kms: the old generation wrap and values are gone; the index reopens through KMS; rotateKey then works from the new generation', async () => {
    const path = tempStore();
    const kms = {
      aws: { provider: 'aws-kms', keyId: aws.createKey(), region: aws.region, endpoint: aws.endpoint, credentials: LOOPBACK_CREDENTIALS },
      aws2: { provider: 'aws-kms', keyId: aws.createKey(), region: aws.region, endpoint: aws.endpoint, credentials: LOOPBACK_CREDENTIALS },
    } as const;
    const c1 = new Client({ path, kms });
    const index = await c1.createIndex({ indexName: 'n', kmsName: 'aws', dimension: 8 });
    await index.upsert({ ids: IDS.slice(0, 200), vectors: VECTORS.slice(0, 200) });
    await c1.close();
    const old = await sampleGeneration(path, 'n');
    const c2 = new Client({ path, kms });
    const again = await c2.loadIndex({ indexName: 'n' });
    await again.rotateDataKey();
    await again.rotateKey({ kmsName: 'aws2' });
    await c2.close();
    expect(countFound(path, old.needles)).toBe(0);
    const c3 = new Client({ path, kms });
    const reopened = await c3.loadIndex({ indexName: 'n' });
    expect(reopened.getKeySource()).toMatchObject({ provider: 'aws-kms', kmsName: 'aws2' });
    expect((await reopened.listIds()).count).toBe(200);
    await c3.close();
  }, 60_000);
});

describe('format-1 indexes (golden store v1)', () => {
  it('rotateKey to a KMS slot is NOT_SUPPORTED until rotateDataKey rewrites the index in the current format', async () => {
    const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'golden-v1');
    const path = tempStore();
    cpSync(join(fixture, 'store'), path, { recursive: true });
    const keys = new Map(
      readFileSync(join(fixture, 'key.hex'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.split(' ') as [string, string]),
    );
    const name = 'a-euclid-f32';
    const key = Buffer.from(keys.get(name)!, 'hex');
    const client = new Client({ path, kms: { app: customSlot() } });
    const index = await client.loadIndex({ indexName: name, indexKey: key });
    const ids = (await index.listIds()).ids;
    const before = await contentsOf(index, ids);
    const sdkKey = Client.generateKey();
    await index.rotateKey({ indexKey: sdkKey }); // SDK → SDK keeps format 1
    await rejectsWithCode(index.rotateKey({ kmsName: 'app' }), 'VECVAULT_NOT_SUPPORTED');
    await index.rotateDataKey();
    await index.rotateKey({ kmsName: 'app' });
    expect(await contentsOf(index, ids)).toEqual(before);
    await client.close();
    expect((await rawCatalogEntry(path, name)).format).toBe(3);
    const again = new Client({ path, kms: { app: customSlot() } });
    await rejectsKmsError(again.loadIndex({ indexName: name })); // another slot secret: the wrap does not open
    await again.close();
  });
});
