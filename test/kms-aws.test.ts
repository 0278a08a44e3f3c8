/**
 * The `aws-kms` and `aws-secrets-manager` key providers
 * (src/keys/kms/aws-kms.ts, aws-secrets-manager.ts) driven through the
 * official SDK clients against the loopback AWS JSON 1.1 server in
 * test/support/aws-loopback.ts, which binds EncryptionContext into its own
 * AES-GCM: round trips, wrong context, disabled key, bad credentials, a
 * closed port and a server that never answers (bounded by timeouts).
 */
import { randomBytes } from 'node:crypto';
import { CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, GenerateDataKeyCommand, DecryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsError } from '../src/errors.js';
import { awsEncryptionContext, kmsContext } from '../src/keys/kms/context.js';
import { openProvider, type AwsKmsSlot, type AwsSecretsManagerSlot, type KeyProvider, type ProviderOptions } from '../src/keys/kms/types.js';
import { AwsLoopback, LOOPBACK_CREDENTIALS, closedPort } from './support/aws-loopback.js';
import { rejectsKmsError } from './support/helpers.js';

const FAST: ProviderOptions = { timeoutMs: 500, maxAttempts: 1 };
const ctx = (dekGeneration = 1, indexName = 'notes') => kmsContext({ format: 2, indexName, indexId: Buffer.alloc(16, 9), dekGeneration });

const rejectsKms = (promise: Promise<unknown>, causeName?: string) => rejectsKmsError(promise, causeName ?? true);

let aws: AwsLoopback;
const opened: KeyProvider[] = [];
async function open(slotName: string, slot: AwsKmsSlot | AwsSecretsManagerSlot, options: ProviderOptions = FAST): Promise<KeyProvider> {
  const provider = await openProvider(slotName, slot, options);
  opened.push(provider);
  return provider;
}

beforeAll(async () => {
  aws = await new AwsLoopback('eu-west-1').start();
});
afterAll(async () => {
  for (const provider of opened) await provider.close();
  await aws?.close();
});

describe('aws-kms provider (official @aws-sdk/client-kms on loopback)', () => {
  const sdkClient = () => new KMSClient({ region: aws.region, endpoint: aws.endpoint, credentials: LOOPBACK_CREDENTIALS, maxAttempts: 1 });
  const slot = (keyId: string, over: Partial<AwsKmsSlot> = {}): AwsKmsSlot => ({
    provider: 'aws-kms',
    keyId,
    region: aws.region,
    endpoint: aws.endpoint,
    credentials: LOOPBACK_CREDENTIALS,
    ...over,
  });

  it('wraps with Encrypt and unwraps with Decrypt, one KMS call each', async () => {
    const client = sdkClient();
    const created = await client.send(new CreateKeyCommand({ Description: 'vecvault test' }));
    client.destroy();
    const arn = created.KeyMetadata!.Arn!;
    const provider = await open('aws', slot(created.KeyMetadata!.KeyId!));
    expect(provider.source).toEqual({ provider: 'aws-kms', kmsName: 'aws', keyId: created.KeyMetadata!.KeyId, region: 'eu-west-1' });
    const key = randomBytes(32);
    const before = aws.calls.length;
    const { wrapped, keyId } = await provider.wrap(key, ctx());
    expect(keyId).toBe(arn);
    expect(Buffer.from(wrapped).includes(key)).toBe(false);
    expect(Buffer.from(await provider.unwrap(wrapped, ctx()))).toEqual(key);
    expect(aws.calls.slice(before)).toEqual(['TrentService.Encrypt', 'TrentService.Decrypt']);
    // The ARN names the key as well as its id.
    const byArn = await open('aws-arn', slot(arn));
    expect(Buffer.from(await byArn.unwrap(wrapped, ctx()))).toEqual(key);
  });

  it('binds the context: another index, DEK generation or key fails Decrypt', async () => {
    const provider = await open('aws', slot(aws.createKey()));
    const { wrapped } = await provider.wrap(randomBytes(32), ctx(1));
    await rejectsKms(provider.unwrap(wrapped, ctx(2)), 'InvalidCiphertextException');
    await rejectsKms(provider.unwrap(wrapped, ctx(1, 'other')), 'InvalidCiphertextException');
    const other = await open('aws2', slot(aws.createKey()));
    await rejectsKms(other.unwrap(wrapped, ctx(1)), 'IncorrectKeyException');
    // The loopback really binds EncryptionContext: the SDK's own Decrypt with the right map opens it, a wrong map does not.
    const client = sdkClient();
    const right = await client.send(new DecryptCommand({ CiphertextBlob: wrapped, EncryptionContext: awsEncryptionContext(ctx(1)) }));
    expect(right.Plaintext?.byteLength).toBe(32);
    await expect(client.send(new DecryptCommand({ CiphertextBlob: wrapped, EncryptionContext: {} }))).rejects.toMatchObject({
      name: 'InvalidCiphertextException',
    });
    const data = await client.send(new GenerateDataKeyCommand({ KeyId: aws.createKey(), KeySpec: 'AES_256', EncryptionContext: { a: 'b' } }));
    expect(data.Plaintext?.byteLength).toBe(32);
    client.destroy();
  });

  it('a disabled key is a KmsError for wrap and unwrap, and works again once enabled', async () => {
    const keyId = aws.createKey();
    const provider = await open('aws', slot(keyId));
    const { wrapped } = await provider.wrap(randomBytes(32), ctx());
    const client = sdkClient();
    await client.send(new DisableKeyCommand({ KeyId: keyId }));
    await rejectsKms(provider.wrap(randomBytes(32), ctx()), 'DisabledException');
    await rejectsKms(provider.unwrap(wrapped, ctx()), 'DisabledException');
    await client.send(new EnableKeyCommand({ KeyId: keyId }));
    client.destroy();
    expect((await provider.unwrap(wrapped, ctx())).byteLength).toBe(32);
  });

  it('a missing key or unknown credentials is a KmsError', async () => {
    await rejectsKms(
      (await open('aws', slot('arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000'))).wrap(randomBytes(32), ctx()),
      'NotFoundException',
    );
    const stranger = await open('aws', slot(aws.createKey(), { credentials: { accessKeyId: 'AKIDSOMEONEELSE00000', secretAccessKey: 'x' } }));
    await rejectsKms(stranger.wrap(randomBytes(32), ctx()), 'UnrecognizedClientException');
  });

  it('an unreachable endpoint (closed port) is a KmsError, quickly, even with retries', async () => {
    const port = await closedPort();
    const started = Date.now();
    const provider = await open('aws', slot(aws.createKey(), { endpoint: `http://127.0.0.1:${port}` }), { timeoutMs: 500, maxAttempts: 2 });
    const error = await rejectsKms(provider.wrap(randomBytes(32), ctx()));
    expect(error.message).toContain('ECONNREFUSED');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a server that never answers is a KmsError after the timeout: nothing hangs', async () => {
    const provider = await open('aws', slot(aws.createKey()), { timeoutMs: 300, maxAttempts: 1 });
    aws.stall = true;
    const started = Date.now();
    try {
      await rejectsKms(provider.wrap(randomBytes(32), ctx()));
    } finally {
      aws.stall = false;
    }
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('aws-secrets-manager provider (official @aws-sdk/client-secrets-manager on loopback)', () => {
  const slot = (secretId: string, over: Partial<AwsSecretsManagerSlot> = {}): AwsSecretsManagerSlot => ({
    provider: 'aws-secrets-manager',
    secretId,
    region: aws.region,
    endpoint: aws.endpoint,
    credentials: LOOPBACK_CREDENTIALS,
    ...over,
  });

  it('wraps locally under the secret (SecretBinary), one GetSecretValue per call', async () => {
    aws.putSecret('vecvault/bin', { binary: randomBytes(32) });
    const provider = await open('vault', slot('vecvault/bin'));
    expect(provider.source).toEqual({ provider: 'aws-secrets-manager', kmsName: 'vault', keyId: 'vecvault/bin', region: 'eu-west-1' });
    const key = randomBytes(32);
    const before = aws.calls.length;
    const { wrapped, keyId } = await provider.wrap(key, ctx());
    expect(keyId).toMatch(/^arn:aws:secretsmanager:eu-west-1:111122223333:secret:vecvault\/bin-/);
    expect(Buffer.from(wrapped).includes(key)).toBe(false);
    expect(Buffer.from(await provider.unwrap(wrapped, ctx()))).toEqual(key);
    expect(aws.calls.slice(before)).toEqual(['secretsmanager.GetSecretValue', 'secretsmanager.GetSecretValue']);
  });

  it('accepts 64 hex characters in SecretString, and binds the context', async () => {
    aws.putSecret('vecvault/hex', { string: randomBytes(32).toString('hex') });
    const provider = await open('vault', slot('vecvault/hex'));
    const key = randomBytes(32);
    const { wrapped } = await provider.wrap(key, ctx(3));
    expect(Buffer.from(await provider.unwrap(wrapped, ctx(3)))).toEqual(key);
    await rejectsKms(provider.unwrap(wrapped, ctx(4)));
    await rejectsKms(provider.unwrap(wrapped, ctx(3, 'other')));
    const flipped = new Uint8Array(wrapped);
    flipped[flipped.byteLength - 1]! ^= 1;
    await rejectsKms(provider.unwrap(flipped, ctx(3)));
  });

  it('a rotated secret still unwraps older wraps (by VersionId); new wraps use the new version', async () => {
    aws.putSecret('vecvault/rot', { binary: randomBytes(32) });
    const provider = await open('vault', slot('vecvault/rot'));
    const key = randomBytes(32);
    const old = await provider.wrap(key, ctx());
    aws.putSecret('vecvault/rot', { binary: randomBytes(32) });
    const fresh = await provider.wrap(key, ctx());
    expect(Buffer.from(fresh.wrapped).subarray(0, 40)).not.toEqual(Buffer.from(old.wrapped).subarray(0, 40));
    expect(Buffer.from(await provider.unwrap(old.wrapped, ctx()))).toEqual(key);
    expect(Buffer.from(await provider.unwrap(fresh.wrapped, ctx()))).toEqual(key);
  });

  it('a secret of the wrong shape, a missing secret or a closed port is a KmsError', async () => {
    aws.putSecret('vecvault/short', { binary: randomBytes(16) });
    const short = (await open('vault', slot('vecvault/short'))).wrap(randomBytes(32), ctx());
    await expect(short).rejects.toMatchObject({ code: 'VECVAULT_KMS', message: expect.stringContaining('32 raw bytes') });
    aws.putSecret('vecvault/text', { string: 'not a key' });
    await expect((await open('vault', slot('vecvault/text'))).wrap(randomBytes(32), ctx())).rejects.toBeInstanceOf(KmsError);
    await rejectsKms((await open('vault', slot('vecvault/none'))).wrap(randomBytes(32), ctx()), 'ResourceNotFoundException');
    const port = await closedPort();
    await rejectsKms((await open('vault', slot('vecvault/bin', { endpoint: `http://127.0.0.1:${port}` }))).wrap(randomBytes(32), ctx()));
  });
});
