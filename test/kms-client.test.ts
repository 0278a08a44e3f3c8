/**
 * KMS-backed indexes through the public API (docs/key-sources.md, steps 1–5):
 * `new Client({ kms })`, `createIndex({ kmsName })`, `loadIndex({ indexName })`
 * without a key, and `index.getKeySource()`, through the `custom` provider,
 * `aws-kms` and `aws-secrets-manager` against the loopback AWS server, and
 * `pkcs11` on SoftHSM2. Failures of the key source are `KmsError` and write
 * nothing; no KEK or secret reaches the store's files.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type CustomSlot, type KmsRegistry } from '../src/index.js';
import { catalogKey } from '../src/storage/layout.js';
import { unpack } from '../src/util/msgpack.js';
import { AwsLoopback, LOOPBACK_CREDENTIALS, closedPort } from './support/aws-loopback.js';
import { allBytes, rawStore, rejectsKmsError, rejectsWithCode, tempStore } from './support/helpers.js';
import { customSlot } from './support/rotation.js';
import { SOFTHSM_MODULE, SoftHsm, softHsmUnavailable } from './support/softhsm.js';

const rejectsKms = (promise: Promise<unknown>, withCause = true) => rejectsKmsError(promise, withCause);

async function catalogOf(path: string, name: string): Promise<Record<string, unknown>> {
  const db = await rawStore(path);
  try {
    return unpack((await db.get(catalogKey(name)))!) as Record<string, unknown>;
  } finally {
    await db.close();
  }
}

/** Create, upsert, query, close, reopen with { indexName } alone, query again. */
async function roundTrip(path: string, kms: KmsRegistry, kmsName: string, indexName = 'notes'): Promise<void> {
  const client = new Client({ path, kms });
  const index = await client.createIndex({ indexName, kmsName, dimension: 3, metric: 'cosine' });
  await index.upsert({
    items: [
      { id: 'a', vector: [1, 0, 0], metadata: { t: 1 } },
      { id: 'b', vector: [0, 1, 0] },
    ],
  });
  expect((await index.query({ queryVectors: [1, 0, 0], topK: 1 })).results[0]!.id).toBe('a');
  await client.close();
  const again = new Client({ path, kms });
  const reopened = await again.loadIndex({ indexName });
  expect((await reopened.query({ queryVectors: [0, 1, 0], topK: 1 })).results[0]!.id).toBe('b');
  expect(await reopened.get({ ids: ['a'], include: ['metadata'] })).toEqual([{ id: 'a', metadata: { t: 1 } }]);
  await again.close();
}

describe('custom provider through Client', () => {
  const secret = randomBytes(32);

  it('creates, upserts, queries and reopens without a key; getKeySource names the slot', async () => {
    const path = tempStore();
    const seen: Buffer[] = [];
    const kms = { mine: customSlot(secret, { seen }) };
    await roundTrip(path, kms, 'mine');
    expect(seen).toHaveLength(1); // one wrap at create

    const client = new Client({ path, kms });
    const index = await client.loadIndex({ indexName: 'notes' });
    expect(index.getKeySource()).toEqual({ provider: 'custom', kmsName: 'mine', keyId: 'app-keychain/1' });
    await client.close();
    expect(index.getKeySource()).toEqual({ provider: 'custom', kmsName: 'mine', keyId: 'app-keychain/1' }); // after close too

    const entry = await catalogOf(path, 'notes');
    expect(entry).toMatchObject({ format: 3, provider: 'custom', kmsName: 'mine', keyId: 'app-keychain/1', region: null });
    expect(entry.wrappedKek).toBeInstanceOf(Uint8Array);

    // Byte scan: neither the KEK nor the slot's secret is anywhere in the store's files.
    const bytes = allBytes(path);
    expect(bytes.indexOf(seen[0]!)).toBe(-1);
    expect(bytes.indexOf(secret)).toBe(-1);
    expect(bytes.indexOf(Buffer.from(secret.toString('hex')))).toBe(-1);
  });

  it('one unwrap per open; an indexKey index still reports provider none', async () => {
    const path = tempStore();
    let unwraps = 0;
    const base = customSlot(secret);
    const counting: CustomSlot = { ...base, unwrapKey: (w, c) => (unwraps++, base.unwrapKey(w, c)) };
    const client = new Client({ path, kms: { mine: counting } });
    await client.createIndex({ indexName: 'k', kmsName: 'mine', dimension: 2 });
    const key = Client.generateKey();
    const plain = await client.createIndex({ indexName: 'p', indexKey: key, dimension: 2 });
    expect(plain.getKeySource()).toEqual({ provider: 'none' });
    await client.close();
    const again = new Client({ path, kms: { mine: counting } });
    await again.loadIndex({ indexName: 'k' });
    expect(unwraps).toBe(1);
    expect((await again.loadIndex({ indexName: 'p', indexKey: key })).getKeySource()).toEqual({ provider: 'none' });
    await again.close();
    expect((await catalogOf(path, 'p')).format).toBe(2); // indexKey indexes keep format 2
  });

  it('argument rules: exactly one of indexKey/kmsName; indexKey to a KMS index; no key for an SDK-key index', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const client = new Client({ path, kms: { mine: customSlot(secret) } });
    await rejectsWithCode(client.createIndex({ indexName: 'x', indexKey: key, kmsName: 'mine' }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(client.createIndex({ indexName: 'x' }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(client.createIndex({ indexName: 'x', kmsName: '' }), 'VECVAULT_VALIDATION');
    await client.createIndex({ indexName: 'k', kmsName: 'mine', dimension: 2 });
    await client.createIndex({ indexName: 'p', indexKey: key, dimension: 2 });
    await client.close();
    const again = new Client({ path, kms: { mine: customSlot(secret) } });
    await rejectsWithCode(again.loadIndex({ indexName: 'k', indexKey: key }), 'VECVAULT_INVALID_KEY');
    await rejectsWithCode(again.loadIndex({ indexName: 'p' }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(again.loadIndex({ indexName: 'p', kmsName: 'mine' }), 'VECVAULT_VALIDATION');
    await rejectsKms(again.loadIndex({ indexName: 'k', kmsName: 'other' }), false);
    expect((await again.loadIndex({ indexName: 'k', kmsName: 'mine' })).getKeySource().provider).toBe('custom');
    await again.close();
  });

  it('a bad slot is a ValidationError at new Client with path kms.<slot>.<field>', () => {
    expect(() => new Client({ path: tempStore(), kms: { aws: { provider: 'aws-kms', region: 'eu-west-1' } as never } })).toThrow(
      expect.objectContaining({ code: 'VECVAULT_VALIDATION', path: 'kms.aws.keyId' }),
    );
  });

  it('missing slot, failing wrap, wrong slot provider, replaced key: KmsError, nothing written', async () => {
    const path = tempStore();
    const client = new Client({
      path,
      kms: { mine: customSlot(secret), broken: { ...customSlot(secret), wrapKey: () => Promise.reject(new Error('keychain locked')) } },
    });
    const missing = await rejectsKms(client.createIndex({ indexName: 'x', kmsName: 'nope', dimension: 2 }), false);
    expect(missing.message).toContain('"nope"');
    const refused = await rejectsKms(client.createIndex({ indexName: 'x', kmsName: 'broken', dimension: 2 }));
    expect((refused.cause as Error).message).toBe('keychain locked');
    expect(await client.listIndexes()).toEqual([]);
    await client.createIndex({ indexName: 'k', kmsName: 'mine', dimension: 2 });
    await client.close();

    // The slot of that name now points at another provider, at another key, or is gone.
    const aws = new Client({ path, kms: { mine: { provider: 'aws-kms', keyId: 'alias/x', region: 'eu-west-1', endpoint: 'http://127.0.0.1:1' } } });
    await rejectsKms(aws.loadIndex({ indexName: 'k' }), false);
    await aws.close();
    const other = new Client({ path, kms: { mine: customSlot(randomBytes(32)) } });
    await rejectsKms(other.loadIndex({ indexName: 'k' })); // GCM refuses: the custom slot's error as cause
    await other.close();
    const liar = new Client({ path, kms: { mine: { provider: 'custom', wrapKey: async () => Buffer.of(1), unwrapKey: async () => randomBytes(32) } } });
    const replaced = await rejectsKms(liar.loadIndex({ indexName: 'k' }));
    expect((replaced.cause as { code?: string }).code).toBe('VECVAULT_INVALID_KEY');
    await liar.close();
    const none = new Client({ path });
    await rejectsKms(none.loadIndex({ indexName: 'k' }), false);
    expect(await none.listIndexes()).toEqual(['k']);
    await none.close();
  });
});

describe('aws-kms and aws-secrets-manager through Client (loopback)', () => {
  let aws: AwsLoopback;
  beforeAll(async () => {
    aws = await new AwsLoopback('eu-west-1').start();
  });
  afterAll(async () => {
    await aws?.close();
  });
  const kmsSlot = (keyId: string, endpoint = aws.endpoint) =>
    ({ provider: 'aws-kms', keyId, region: aws.region, endpoint, credentials: LOOPBACK_CREDENTIALS }) as const;

  it('aws-kms: create, upsert, query, reopen; the envelope records slot, provider, key ARN and region', async () => {
    const path = tempStore();
    const arn = aws.createKey();
    await roundTrip(path, { aws: kmsSlot(arn) }, 'aws');
    const client = new Client({ path, kms: { aws: kmsSlot(arn) } });
    expect((await client.loadIndex({ indexName: 'notes' })).getKeySource()).toEqual({ provider: 'aws-kms', kmsName: 'aws', keyId: arn });
    await client.close();
    const entry = await catalogOf(path, 'notes');
    expect(entry).toMatchObject({ format: 3, provider: 'aws-kms', kmsName: 'aws', keyId: arn, region: 'eu-west-1' });
    const bytes = allBytes(path);
    expect(bytes.indexOf(Buffer.from(LOOPBACK_CREDENTIALS.secretAccessKey))).toBe(-1);
    expect(bytes.indexOf(Buffer.from(LOOPBACK_CREDENTIALS.accessKeyId))).toBe(-1);
  });

  it('aws-secrets-manager: round trip; the secret never reaches the store', async () => {
    const path = tempStore();
    const secret = randomBytes(32);
    aws.putSecret('vecvault/wrap', { binary: secret });
    await roundTrip(
      path,
      { vault: { provider: 'aws-secrets-manager', secretId: 'vecvault/wrap', region: aws.region, endpoint: aws.endpoint, credentials: LOOPBACK_CREDENTIALS } },
      'vault',
    );
    expect(allBytes(path).indexOf(secret)).toBe(-1);
    expect((await catalogOf(path, 'notes')).provider).toBe('aws-secrets-manager');
  });

  it('disabled key and unreachable endpoint: KmsError with cause, nothing written', async () => {
    const path = tempStore();
    const arn = aws.createKey();
    aws.setKeyEnabled(arn, false);
    const port = await closedPort();
    const client = new Client({ path, kms: { off: kmsSlot(arn), down: kmsSlot(arn, `http://127.0.0.1:${port}`) } });
    await rejectsKms(client.createIndex({ indexName: 'x', kmsName: 'off', dimension: 2 }));
    await rejectsKms(client.createIndex({ indexName: 'y', kmsName: 'down', dimension: 2 }));
    expect(await client.listIndexes()).toEqual([]);
    await client.close();
    expect(readdirSync(join(path, 'heads'))).toEqual([]);

    // Disabled after create: the open fails, the index stays.
    const live = aws.createKey();
    const c2 = new Client({ path, kms: { aws: kmsSlot(live) } });
    await c2.createIndex({ indexName: 'z', kmsName: 'aws', dimension: 2 });
    await c2.close();
    aws.setKeyEnabled(live, false);
    const c3 = new Client({ path, kms: { aws: kmsSlot(live) } });
    await rejectsKms(c3.loadIndex({ indexName: 'z' }));
    aws.setKeyEnabled(live, true);
    expect((await c3.loadIndex({ indexName: 'z' })).getKeySource().provider).toBe('aws-kms');
    expect(await c3.listIndexes()).toEqual(['z']);
    await c3.close();
  }, 60_000);
});

const hsmUnavailable = softHsmUnavailable();
const skipHsm = hsmUnavailable !== undefined && process.env.CI !== 'true';
if (skipHsm) console.warn(`kms-client.test.ts pkcs11 cases skipped: ${hsmUnavailable}`);

describe.skipIf(skipHsm)('pkcs11 through Client (SoftHSM2)', () => {
  const TOKEN = 'vecvault-client';
  const PIN = '4321';
  const slot = (over: Record<string, string> = {}) =>
    ({ provider: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: TOKEN, pin: PIN, keyLabel: 'vecvault-kek', ...over }) as const;
  beforeAll(() => {
    const hsm = new SoftHsm();
    hsm.initToken(TOKEN, PIN);
    hsm.generateAesKey(TOKEN, PIN, 'vecvault-kek');
  });

  it('create, upsert, query, reopen; the PIN never reaches the store', async () => {
    const path = tempStore();
    await roundTrip(path, { hsm: slot() }, 'hsm');
    const client = new Client({ path, kms: { hsm: slot() } });
    const source = (await client.loadIndex({ indexName: 'notes' })).getKeySource();
    expect(source).toMatchObject({ provider: 'pkcs11', kmsName: 'hsm' });
    expect((source as { keyId?: string }).keyId).toContain('object=vecvault-kek');
    await client.close();
    expect(allBytes(path).indexOf(Buffer.from(`pin=${PIN}`))).toBe(-1);
  });

  it('a missing key or a wrong PIN: KmsError, nothing written', async () => {
    const path = tempStore();
    const client = new Client({ path, kms: { gone: slot({ keyLabel: 'no-such-key' }), pin: slot({ pin: '0000' }) } });
    await rejectsKms(client.createIndex({ indexName: 'x', kmsName: 'gone', dimension: 2 }), false);
    await rejectsKms(client.createIndex({ indexName: 'x', kmsName: 'pin', dimension: 2 }));
    expect(await client.listIndexes()).toEqual([]);
    await client.close();
  });
});
