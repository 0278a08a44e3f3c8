import { createDecipheriv } from 'node:crypto';
import { statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { gcm } from '@noble/ciphers/aes.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { open, seal } from '../src/crypto/aead.js';
import { createEnvelope, openEnvelope } from '../src/keys/envelope.js';
import { Client, generateKey } from '../src/index.js';
import { openFresh, reopen } from './support/fixtures.js';
import { rejectsWithCode, tempStore } from './support/helpers.js';

const hex = (s: string) => Buffer.from(s, 'hex');
// GCM spec (McGrew & Viega), test case 16: AES-256, 60-byte plaintext, 20-byte AAD.
const KAT = {
  key: hex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308'),
  iv: hex('cafebabefacedbaddecaf888'),
  pt: hex('d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39'),
  aad: hex('feedfacedeadbeeffeedfacedeadbeefabaddad2'),
  ct: hex('522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662'),
  tag: hex('76fc6ece0f4e1768cddf8853bb2d551b'),
};

describe('AES-256-GCM', () => {
  it('opens the published test vector, and noble agrees', () => {
    const sealed = Buffer.concat([KAT.iv, KAT.ct, KAT.tag]);
    expect(open(KAT.key, sealed, KAT.aad, 'kat')).toEqual(KAT.pt);
    expect(Buffer.from(gcm(KAT.key, KAT.iv, KAT.aad).encrypt(KAT.pt))).toEqual(Buffer.concat([KAT.ct, KAT.tag]));
  });

  it('interoperates with @noble/ciphers both ways on random inputs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 64 }), (key, pt, aad) => {
        const sealed = seal(key, pt, aad);
        const noble = gcm(key, sealed.subarray(0, 12), aad).decrypt(sealed.subarray(12));
        expect(Buffer.from(noble)).toEqual(Buffer.from(pt));
        const nonce = new Uint8Array(12).fill(7);
        const byNoble = Buffer.concat([nonce, gcm(key, nonce, aad).encrypt(pt)]);
        expect(open(key, byNoble, aad, 'x')).toEqual(Buffer.from(pt));
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a truncated tag (negative control: plain Node 20 decipher accepts it)', () => {
    const truncated = Buffer.concat([KAT.iv, KAT.ct, KAT.tag.subarray(0, 4)]);
    expect(() => open(KAT.key, truncated, KAT.aad, 'kat')).toThrow(expect.objectContaining({ code: 'VECVAULT_INTEGRITY' }));
    // Without { authTagLength: 16 }, Node verifies only the 4 bytes given.
    const loose = createDecipheriv('aes-256-gcm', KAT.key, KAT.iv);
    loose.setAAD(KAT.aad);
    loose.setAuthTag(KAT.tag.subarray(0, 4));
    expect(Buffer.concat([loose.update(KAT.ct), loose.final()])).toEqual(KAT.pt);
  });

  it('never reuses a nonce across seals of the same plaintext', () => {
    const key = new Uint8Array(32);
    const nonces = new Set(Array.from({ length: 1000 }, () => seal(key, Buffer.from('same'), Buffer.alloc(0)).subarray(0, 12).toString('hex')));
    expect(nonces.size).toBe(1000);
  });
});

describe('key envelope', () => {
  it('verifier differs across indexes with the same KEK and holds no key bytes', () => {
    const kek = generateKey();
    const a = createEnvelope(kek, 'a', { provider: 'none', keyId: null });
    const b = createEnvelope(kek, 'a', { provider: 'none', keyId: null });
    expect(Buffer.from(a.entry.verifier)).not.toEqual(Buffer.from(b.entry.verifier));
    expect(a.entry.provider).toBe('none');
    const stored = Buffer.concat([a.entry.verifier, a.entry.salt, a.entry.wrappedDek, a.entry.indexId]);
    expect(stored.includes(Buffer.from(kek).subarray(0, 8))).toBe(false);
    expect(stored.includes(a.dek.subarray(0, 8))).toBe(false);
    expect(openEnvelope(kek, 'a', a.entry)).toEqual(a.dek);
  });

  it('wrong key → InvalidKeyError; edited envelope fields → IntegrityError', () => {
    const kek = generateKey();
    const { entry } = createEnvelope(kek, 'a', { provider: 'none', keyId: null });
    expect(() => openEnvelope(generateKey(), 'a', entry)).toThrow(expect.objectContaining({ code: 'VECVAULT_INVALID_KEY' }));
    expect(() => openEnvelope(kek, 'other-name', entry)).toThrow(expect.objectContaining({ code: 'VECVAULT_INVALID_KEY' }));
    expect(() => openEnvelope(kek, 'a', { ...entry, dekGeneration: 2 })).toThrow(expect.objectContaining({ code: 'VECVAULT_INTEGRITY' }));
    expect(() => openEnvelope(kek, 'a', { ...entry, provider: 'aws-kms' })).toThrow(expect.objectContaining({ code: 'VECVAULT_INTEGRITY' }));
  });
});

describe('generateKey', () => {
  it('returns 32 fresh random bytes', () => {
    const a = Client.generateKey();
    expect(a).toBeInstanceOf(Uint8Array);
    expect(a.byteLength).toBe(32);
    expect(Buffer.from(a)).not.toEqual(Buffer.from(Client.generateKey()));
  });

  it('save: true caches the key with mode 0600 in a 0700 directory and returns it later', () => {
    const path = join(tempStore(), 'keys', 'index_key');
    const first = generateKey({ save: true, path });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(path, '..')).mode & 0o777).toBe(0o700);
    expect(generateKey({ save: true, path })).toEqual(first);
    chmodSync(path, 0o644);
    expect(() => generateKey({ save: true, path })).toThrow(expect.objectContaining({ code: 'VECVAULT_KEY_CACHE' }));
    chmodSync(path, 0o600);
    writeFileSync(path, Buffer.alloc(5));
    expect(() => generateKey({ save: true, path })).toThrow(expect.objectContaining({ code: 'VECVAULT_KEY_CACHE' }));
  });

  it('a cached key opens what it created', async () => {
    const dir = tempStore();
    const path = join(dir, 'k');
    const { client } = await openFresh({ path: join(dir, 'store'), indexName: 'x', indexKey: generateKey({ save: true, path }) });
    await client.close();
    const again = await reopen(join(dir, 'store'), generateKey({ save: true, path }), 'x');
    await rejectsWithCode(again.client.loadIndex({ indexName: 'x', indexKey: generateKey() }), 'VECVAULT_INVALID_KEY');
  });
});
