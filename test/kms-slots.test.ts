/**
 * The KMS registry's shape checks (src/keys/kms/validate.ts), the context
 * bytes and their AWS EncryptionContext form (context.ts), slot lookup and
 * the optional-SDK loader (types.ts, optional.ts).
 */
import { describe, expect, it } from 'vitest';
import { KmsError, ValidationError } from '../src/errors.js';
import { awsEncryptionContext, kmsContext, parseKmsContext } from '../src/keys/kms/context.js';
import { importOptional } from '../src/keys/kms/optional.js';
import { openProvider, resolveSlot, type KmsSlot } from '../src/keys/kms/types.js';
import { validateKmsRegistry, validateKmsSlot } from '../src/keys/kms/validate.js';

const pathOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as ValidationError).code).toBe('VECVAULT_VALIDATION');
    return (e as ValidationError).path;
  }
  throw new Error('expected a ValidationError');
};

const hsm = { provider: 'pkcs11', module: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'vecvault', pin: '1234', keyLabel: 'vecvault-kek' };
const aws = { provider: 'aws-kms', keyId: 'arn:aws:kms:eu-west-1:111122223333:key/x', region: 'eu-west-1' };
const vault = { provider: 'aws-secrets-manager', secretId: 'vecvault/kek', region: 'eu-west-1' };
const mine = { provider: 'custom', wrapKey: async (k: Uint8Array) => k, unwrapKey: async (w: Uint8Array) => w };

describe('slot validation', () => {
  it('accepts the four slot shapes of DESIGN §7, with optional fields', () => {
    const registry = validateKmsRegistry({
      hsm,
      aws: { ...aws, endpoint: 'https://kms.eu-west-1.amazonaws.com', credentials: { accessKeyId: 'AKID', secretAccessKey: 's', sessionToken: 't' } },
      vault: { ...vault, credentials: async () => ({ accessKeyId: 'AKID', secretAccessKey: 's' }) },
      mine: { ...mine, keyId: 'keychain' },
    });
    expect(Object.keys(registry)).toEqual(['hsm', 'aws', 'vault', 'mine']);
    expect(registry.hsm).toEqual(hsm);
    // A custom slot may be the application's own object, with state and prototype methods.
    class Keychain {
      readonly provider = 'custom';
      readonly cache = new Map<string, Uint8Array>();
      async wrapKey(key: Uint8Array): Promise<Uint8Array> {
        return key;
      }
      async unwrapKey(wrapped: Uint8Array): Promise<Uint8Array> {
        return wrapped;
      }
    }
    expect(validateKmsSlot('kc', new Keychain()).provider).toBe('custom');
  });

  it('names the offending field as kms.<slot>.<field>', () => {
    expect(pathOf(() => validateKmsRegistry(null))).toBe('kms');
    expect(pathOf(() => validateKmsRegistry({ x: 'nope' }))).toBe('kms.x');
    expect(pathOf(() => validateKmsSlot('x', { provider: 'gcp-kms' }))).toBe('kms.x.provider');
    expect(pathOf(() => validateKmsSlot('x', {}))).toBe('kms.x.provider');
    expect(pathOf(() => validateKmsSlot('hsm', { ...hsm, pin: undefined }))).toBe('kms.hsm.pin');
    expect(pathOf(() => validateKmsSlot('hsm', { ...hsm, module: '' }))).toBe('kms.hsm.module');
    expect(pathOf(() => validateKmsSlot('hsm', { ...hsm, tokenLabel: 'x'.repeat(33) }))).toBe('kms.hsm.tokenLabel');
    expect(pathOf(() => validateKmsSlot('hsm', { ...hsm, keyID: 'typo' }))).toBe('kms.hsm.keyID');
    expect(pathOf(() => validateKmsSlot('aws', { ...aws, region: 3 }))).toBe('kms.aws.region');
    expect(pathOf(() => validateKmsSlot('aws', { ...aws, keyId: undefined }))).toBe('kms.aws.keyId');
    expect(pathOf(() => validateKmsSlot('aws', { ...aws, endpoint: 'ftp://x' }))).toBe('kms.aws.endpoint');
    expect(pathOf(() => validateKmsSlot('aws', { ...aws, endpoint: 'not a url' }))).toBe('kms.aws.endpoint');
    expect(pathOf(() => validateKmsSlot('aws', { ...aws, credentials: { accessKeyId: 'a' } }))).toBe('kms.aws.credentials.secretAccessKey');
    expect(pathOf(() => validateKmsSlot('aws', { ...aws, credentials: 'AKID:secret' }))).toBe('kms.aws.credentials');
    expect(pathOf(() => validateKmsSlot('vault', { ...vault, secretId: '' }))).toBe('kms.vault.secretId');
    expect(pathOf(() => validateKmsSlot('vault', { ...vault, keyId: 'x' }))).toBe('kms.vault.keyId');
    expect(pathOf(() => validateKmsSlot('mine', { ...mine, wrapKey: 'f' }))).toBe('kms.mine.wrapKey');
    expect(pathOf(() => validateKmsSlot('mine', { ...mine, keyId: 7 }))).toBe('kms.mine.keyId');
    expect(pathOf(() => validateKmsSlot('hsm', Object.assign(Object.create({ inherited: true }) as object, hsm)))).toBe('kms.hsm');
    expect(pathOf(() => validateKmsSlot('', hsm))).toBe('kms');
  });

  it('never puts the PIN or a secret key in a message', () => {
    for (const slot of [
      { ...hsm, pin: 'secret-pin', extra: 1 },
      { ...aws, credentials: { accessKeyId: 'AKID', secretAccessKey: 'very-secret', bad: 1, expiration: 'soon' } },
    ]) {
      try {
        validateKmsSlot('s', slot);
      } catch (e) {
        expect((e as Error).message).not.toMatch(/secret-pin|very-secret/);
        continue;
      }
      throw new Error('expected a ValidationError');
    }
  });

  it('openProvider validates before loading anything', async () => {
    await expect(openProvider('hsm', { ...hsm, pin: '' } as KmsSlot)).rejects.toMatchObject({ code: 'VECVAULT_VALIDATION', path: 'kms.hsm.pin' });
  });
});

describe('context', () => {
  const fields = { format: 2, indexName: 'notes', indexId: Buffer.alloc(16, 1), dekGeneration: 1 };

  it('is stable, distinct per field, and parses back', () => {
    const bytes = kmsContext(fields);
    expect(Buffer.from(bytes).toString('hex')).toBe(Buffer.from(kmsContext({ ...fields })).toString('hex'));
    const variants = [
      kmsContext({ ...fields, format: 1 }),
      kmsContext({ ...fields, indexName: 'notes2' }),
      kmsContext({ ...fields, indexId: Buffer.alloc(16, 2) }),
      kmsContext({ ...fields, dekGeneration: 2 }),
    ];
    for (const v of variants) expect(Buffer.from(v).equals(Buffer.from(bytes))).toBe(false);
    expect(parseKmsContext(bytes)).toEqual({ ...fields, indexId: new Uint8Array(fields.indexId) });
    expect(parseKmsContext(new Uint8Array([1, 2, 3]))).toBeUndefined();
    // The framing: a 4-byte length before each field, so fields cannot run into each other.
    expect(Buffer.from(bytes).subarray(0, 4).readUInt32BE()).toBe('vecvault/kms-context/v1'.length);
  });

  it('has a readable AWS EncryptionContext form; other bytes are bound whole', () => {
    expect(awsEncryptionContext(kmsContext(fields))).toEqual({
      'vecvault:format': '2',
      'vecvault:index-name': 'notes',
      'vecvault:index-id': '01'.repeat(16),
      'vecvault:dek-generation': '1',
    });
    expect(awsEncryptionContext(fields)).toEqual(awsEncryptionContext(kmsContext(fields)));
    expect(awsEncryptionContext(new Uint8Array([1, 2, 3]))).toEqual({ 'vecvault:context': 'AQID' });
  });

  it('refuses fields that cannot be bound', () => {
    expect(() => kmsContext({ ...fields, indexName: '' })).toThrow(ValidationError);
    expect(() => kmsContext({ ...fields, dekGeneration: 0 })).toThrow(ValidationError);
    expect(() => kmsContext({ ...fields, format: 1.5 })).toThrow(ValidationError);
    expect(() => kmsContext({ ...fields, indexId: new Uint8Array(0) })).toThrow(ValidationError);
  });
});

describe('registry lookup and optional SDKs', () => {
  it('a slot missing from the registry is a KmsError naming it', () => {
    expect(resolveSlot({ hsm } as Record<string, KmsSlot>, 'hsm')).toBe(hsm);
    const error = (() => {
      try {
        resolveSlot({ hsm } as Record<string, KmsSlot>, 'aws');
      } catch (e) {
        return e as KmsError;
      }
      throw new Error('expected a KmsError');
    })();
    expect(error).toBeInstanceOf(KmsError);
    expect(error.message).toContain('"aws"');
    expect(() => resolveSlot(undefined, 'aws')).toThrow(KmsError);
    expect(() => resolveSlot({} as Record<string, KmsSlot>, 'toString')).toThrow(KmsError);
  });

  it('a missing optional package is a KmsError that says what to install', async () => {
    const pkg = 'vecvault-no-such-kms-sdk';
    const error = (await importOptional(pkg, 'aws', 'aws-kms', () => import(pkg)).catch((e: unknown) => e)) as KmsError;
    expect(error).toBeInstanceOf(KmsError);
    expect(error.message).toContain(`npm install ${pkg}`);
    expect(error.message).toContain('"aws"');
    expect(error.cause).toBeDefined();
    const broken = (await importOptional('pkcs11js', 'hsm', 'pkcs11', () => Promise.reject(new Error('wrong ABI'))).catch((e: unknown) => e)) as KmsError;
    expect(broken).toBeInstanceOf(KmsError);
    expect(broken.message).toContain('failed to load');
  });
});
