/**
 * index.rotateKey({ indexKey } | { kmsName }) (DESIGN §7, docs/key-sources.md):
 * the data key re-wrapped under a new key source in one atomic catalog write,
 * every direction through real providers (custom, aws-kms on the loopback
 * server through the official SDK, pkcs11 on SoftHSM2); the old key stops
 * opening the index and its wrap is erased from the files; a failing key
 * source changes nothing; records are not touched (O(1)).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, generateKey, type KmsRegistry } from '../src/index.js';
import { indexRange } from '../src/storage/layout.js';
import { AwsLoopback, LOOPBACK_CREDENTIALS } from './support/aws-loopback.js';
import { rawStore, rejectsKmsError, rejectsWithCode, tempStore } from './support/helpers.js';
import { contentsOf, countFound, customSlot, rawCatalogEntry } from './support/rotation.js';
import { SOFTHSM_MODULE, SoftHsm, softHsmUnavailable } from './support/softhsm.js';
import { randomVectors } from './support/vectors.js';

const IDS = Array.from({ length: 300 }, (_, i) => `r${i}`);
const VECTORS = randomVectors(IDS.length, 8, 11);

async function fill(index: Awaited<ReturnType<Client['createIndex']>>): Promise<void> {
  await index.upsert({ ids: IDS, vectors: VECTORS, metadata: IDS.map((id, i) => ({ i })), contents: IDS.map((id) => `text of ${id}`) });
}

/** Every stored value of the index (raw), to show rotateKey leaves records untouched. */
async function rawValues(path: string, indexId: Uint8Array): Promise<Buffer[]> {
  const db = await rawStore(path);
  try {
    const out: Buffer[] = [];
    for await (const [key, value] of db.iterator(indexRange(indexId))) if (key[17] === 0x52) out.push(Buffer.from(value));
    return out;
  } finally {
    await db.close();
  }
}

describe('rotateKey: arguments', () => {
  it('exactly one of indexKey / kmsName, a 32-byte key: else ValidationError, nothing changed', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const client = new Client({ path, kms: { mine: customSlot() } });
    const index = await client.createIndex({ indexName: 'n', indexKey: key, dimension: 8 });
    await rejectsWithCode(index.rotateKey({} as never), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.rotateKey({ indexKey: Client.generateKey(), kmsName: 'mine' } as never), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.rotateKey({ indexKey: new Uint8Array(16) }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.rotateKey({ kmsName: '' }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.rotateKey(null as never), 'VECVAULT_VALIDATION');
    await rejectsKmsError(index.rotateKey({ kmsName: 'not-in-registry' }));
    await client.close();
    const again = new Client({ path });
    await again.loadIndex({ indexName: 'n', indexKey: key });
    await again.close();
  });
});

describe('rotateKey SDK → SDK', () => {
  it('the new key opens, the old one is InvalidKeyError; records are untouched; every handle of the process keeps working', async () => {
    const path = tempStore();
    const oldKey = Client.generateKey();
    const newKey = Client.generateKey();
    const a = new Client({ path });
    await fill(await a.createIndex({ indexName: 'n', indexKey: oldKey, dimension: 8 }));
    await a.close();
    const entry = await rawCatalogEntry(path, 'n');
    const values = await rawValues(path, entry.indexId);

    const d = new Client({ path });
    const b = new Client({ path }); // a second Client of the process: shares the open index
    const mine = await d.loadIndex({ indexName: 'n', indexKey: oldKey });
    const theirs = await b.loadIndex({ indexName: 'n', indexKey: oldKey });
    const before = await contentsOf(mine, IDS);
    await mine.rotateKey({ indexKey: newKey });
    // Both handles (one shared open index) keep reading and writing.
    expect(await contentsOf(theirs, IDS)).toEqual(before);
    await theirs.upsert({ items: [{ id: 'after', vector: VECTORS[0]! }] });
    expect((await mine.get({ ids: ['after'] }))[0]!.vector).toBeDefined();
    // The old key no longer opens it, even while it is open in this process.
    await rejectsWithCode(d.loadIndex({ indexName: 'n', indexKey: oldKey }), 'VECVAULT_INVALID_KEY');
    expect(theirs.getKeySource()).toEqual({ provider: 'none' });
    await d.close();
    await b.close();

    const e = new Client({ path });
    await rejectsWithCode(e.loadIndex({ indexName: 'n', indexKey: oldKey }), 'VECVAULT_INVALID_KEY');
    const back = await e.loadIndex({ indexName: 'n', indexKey: newKey });
    expect(await contentsOf(back, IDS)).toEqual(before);
    expect(back.getKeySource()).toEqual({ provider: 'none' });
    await e.close();
    const after = await rawCatalogEntry(path, 'n');
    expect(Buffer.from(after.indexId).equals(Buffer.from(entry.indexId))).toBe(true);
    expect(after.dekGeneration).toBe(entry.dekGeneration);
    // O(1): no record was rewritten (the one upsert after rotation added one).
    const valuesAfter = await rawValues(path, entry.indexId);
    expect(valuesAfter.filter((v) => values.some((w) => w.equals(v))).length).toBe(values.length);
  });

  it('the old wrapped data key is erased from the files (control: present before the rotation)', async () => {
    const path = tempStore();
    const oldKey = Client.generateKey();
    const client = new Client({ path });
    await fill(await client.createIndex({ indexName: 'n', indexKey: oldKey, dimension: 8 }));
    await client.close();
    const old = await rawCatalogEntry(path, 'n');
    const needles = [Buffer.from(old.wrappedDek), Buffer.from(old.verifier), Buffer.from(old.salt)];
    expect(countFound(path, needles)).toBe(3); // control
    const c2 = new Client({ path });
    const index = await c2.loadIndex({ indexName: 'n', indexKey: oldKey });
    await index.rotateKey({ indexKey: Client.generateKey() });
    expect(countFound(path, needles)).toBe(0);
    await c2.close();
    expect(countFound(path, needles)).toBe(0);
  });

  it('the key cache (generateKey({ save: true })) holds the old key, which then no longer opens the index', async () => {
    const path = tempStore();
    const cache = join(tempStore('vecvault-keycache-'), 'index_key');
    const cached = generateKey({ save: true, path: cache });
    const client = new Client({ path });
    const index = await client.createIndex({ indexName: 'n', indexKey: cached, dimension: 8 });
    await fill(index);
    const fresh = Client.generateKey();
    await index.rotateKey({ indexKey: fresh });
    await client.close();
    const again = new Client({ path });
    const stillCached = generateKey({ save: true, path: cache });
    expect(Buffer.from(stillCached).equals(Buffer.from(cached))).toBe(true); // rotation does not rewrite the application's cache
    await rejectsWithCode(again.loadIndex({ indexName: 'n', indexKey: stillCached }), 'VECVAULT_INVALID_KEY');
    expect((await (await again.loadIndex({ indexName: 'n', indexKey: fresh })).listIds()).count).toBe(IDS.length);
    await again.close();
  });
});

describe('rotateKey through real key sources', () => {
  let aws: AwsLoopback;
  let hsmReason: string | undefined;
  const TOKEN = 'vecvault-rotate';
  const PIN = '2468';
  beforeAll(async () => {
    aws = await new AwsLoopback('eu-west-1').start();
    hsmReason = softHsmUnavailable();
    if (hsmReason === undefined) {
      const hsm = new SoftHsm();
      hsm.initToken(TOKEN, PIN);
      hsm.generateAesKey(TOKEN, PIN, 'kek-a');
      hsm.generateAesKey(TOKEN, PIN, 'kek-b');
    } else if (process.env.CI === 'true') throw new Error(`SoftHSM2 is required under CI: ${hsmReason}`);
    else console.warn(`rotate-key.test.ts: pkcs11 steps skipped: ${hsmReason}`);
  });
  afterAll(async () => {
    await aws?.close();
  });

  function registry(): KmsRegistry {
    const kms: KmsRegistry = {
      app: customSlot(randomBytes(32)),
      aws: { provider: 'aws-kms', keyId: aws.createKey(), region: aws.region, endpoint: aws.endpoint, credentials: LOOPBACK_CREDENTIALS },
      aws2: { provider: 'aws-kms', keyId: aws.createKey(), region: aws.region, endpoint: aws.endpoint, credentials: LOOPBACK_CREDENTIALS },
    };
    if (hsmReason === undefined) {
      kms.hsm = { provider: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: TOKEN, pin: PIN, keyLabel: 'kek-a' };
      kms.hsm2 = { provider: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: TOKEN, pin: PIN, keyLabel: 'kek-b' };
    }
    return kms;
  }

  it('SDK → custom → aws-kms → aws-kms → pkcs11 → pkcs11 → SDK → custom → SDK: each step reopens with the new source only; the old wrap is gone from the files', async () => {
    const path = tempStore();
    const kms = registry();
    const first = Client.generateKey();
    {
      const client = new Client({ path, kms });
      await fill(await client.createIndex({ indexName: 'n', indexKey: first, dimension: 8, metric: 'cosine' }));
      await client.close();
    }
    const reference = await (async () => {
      const client = new Client({ path, kms });
      const out = await contentsOf(await client.loadIndex({ indexName: 'n', indexKey: first }), IDS);
      await client.close();
      return out;
    })();
    const hsm = hsmReason === undefined ? ['hsm', 'hsm2'] : [];
    const steps: ({ kmsName: string } | { indexKey: Uint8Array })[] = [
      { kmsName: 'app' },
      { kmsName: 'aws' },
      { kmsName: 'aws2' },
      ...hsm.map((kmsName) => ({ kmsName })),
      { indexKey: Client.generateKey() },
      { kmsName: 'app' },
      { indexKey: Client.generateKey() },
    ];
    let current: { kmsName: string } | { indexKey: Uint8Array } = { indexKey: first };
    const load = (client: Client, source: typeof current) =>
      client.loadIndex('indexKey' in source ? { indexName: 'n', indexKey: source.indexKey } : { indexName: 'n' });
    for (const step of steps) {
      const before = await rawCatalogEntry(path, 'n');
      const oldWraps = [Buffer.from(before.wrappedDek), ...(before.wrappedKek ? [Buffer.from(before.wrappedKek)] : [])];
      const client = new Client({ path, kms });
      const index = await load(client, current);
      await index.rotateKey(step);
      const source = index.getKeySource();
      if ('kmsName' in step) expect(source).toMatchObject({ provider: kms[step.kmsName]!.provider, kmsName: step.kmsName });
      else expect(source).toEqual({ provider: 'none' });
      await client.close();
      expect(countFound(path, oldWraps)).toBe(0);
      const after = await rawCatalogEntry(path, 'n');
      expect(after.format).toBe('kmsName' in step ? 3 : 2);
      const again = new Client({ path, kms });
      if ('indexKey' in current) await rejectsWithCode(again.loadIndex({ indexName: 'n', indexKey: current.indexKey }), 'VECVAULT_INVALID_KEY');
      if ('indexKey' in step)
        await rejectsWithCode(again.loadIndex({ indexName: 'n' }), 'VECVAULT_VALIDATION'); // no KMS slot opens it any more
      else await rejectsWithCode(again.loadIndex({ indexName: 'n', indexKey: Client.generateKey() }), 'VECVAULT_INVALID_KEY');
      expect(await contentsOf(await load(again, step), IDS)).toEqual(reference);
      await again.close();
      current = step;
    }
  }, 120_000);

  it('a refusing or unreachable key source: KmsError, the catalog entry is byte-for-byte unchanged and the old key still opens', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    let refuse = true;
    const kms: KmsRegistry = {
      locked: customSlot(randomBytes(32), { fail: () => refuse }),
      down: { provider: 'aws-kms', keyId: aws.createKey(), region: aws.region, endpoint: 'http://127.0.0.1:9', credentials: LOOPBACK_CREDENTIALS },
    };
    const client = new Client({ path, kms });
    const index = await client.createIndex({ indexName: 'n', indexKey: key, dimension: 8 });
    await fill(index);
    await client.close();
    const before = await rawCatalogEntry(path, 'n');
    const c2 = new Client({ path, kms });
    const again = await c2.loadIndex({ indexName: 'n', indexKey: key });
    await rejectsKmsError(again.rotateKey({ kmsName: 'locked' }), true);
    await rejectsKmsError(again.rotateKey({ kmsName: 'down' }), true);
    expect(again.getKeySource()).toEqual({ provider: 'none' });
    expect((await again.listIds()).count).toBe(IDS.length);
    await c2.close();
    expect(await rawCatalogEntry(path, 'n')).toEqual(before);
    refuse = false;
    const c3 = new Client({ path, kms });
    await (await c3.loadIndex({ indexName: 'n', indexKey: key })).rotateKey({ kmsName: 'locked' });
    await c3.close();
    const c4 = new Client({ path, kms });
    expect((await (await c4.loadIndex({ indexName: 'n' })).listIds()).count).toBe(IDS.length);
    await c4.close();
  }, 60_000);
});
