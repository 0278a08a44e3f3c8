/**
 * The `custom` key provider (src/keys/kms/custom.ts): the application's own
 * wrapKey/unwrapKey, round trip through a context-binding AES-GCM, their
 * failures and malformed results mapped to KmsError with cause.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KmsError } from '../src/errors.js';
import { kmsContext } from '../src/keys/kms/context.js';
import { openProvider, type CustomSlot } from '../src/keys/kms/types.js';

const ctx = (dekGeneration = 1) => kmsContext({ format: 2, indexName: 'notes', indexId: Buffer.alloc(16, 3), dekGeneration });

/** What an application might do: AES-256-GCM under its own key, the context as AAD. */
function appSlot(appKey = randomBytes(32)): CustomSlot & { calls: string[] } {
  const calls: string[] = [];
  return {
    provider: 'custom',
    keyId: 'app-keychain:vecvault',
    calls,
    async wrapKey(key, context) {
      calls.push('wrap');
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', appKey, iv);
      cipher.setAAD(context);
      return Buffer.concat([iv, cipher.update(key), cipher.final(), cipher.getAuthTag()]);
    },
    async unwrapKey(wrapped, context) {
      calls.push('unwrap');
      const decipher = createDecipheriv('aes-256-gcm', appKey, wrapped.subarray(0, 12));
      decipher.setAAD(context);
      decipher.setAuthTag(wrapped.subarray(wrapped.byteLength - 16));
      return Buffer.concat([decipher.update(wrapped.subarray(12, wrapped.byteLength - 16)), decipher.final()]);
    },
  };
}

describe('custom provider', () => {
  it('round trip through the application, which sees copies and the context bytes', async () => {
    const slot = appSlot();
    const provider = await openProvider('mine', slot);
    expect(provider.source).toEqual({ provider: 'custom', kmsName: 'mine', keyId: 'app-keychain:vecvault' });
    const key = randomBytes(32);
    const { wrapped, keyId } = await provider.wrap(key, ctx());
    expect(keyId).toBe('app-keychain:vecvault');
    const back = await provider.unwrap(wrapped, ctx());
    expect(Buffer.from(back)).toEqual(key);
    expect(slot.calls).toEqual(['wrap', 'unwrap']);
    await provider.close();
    await expect(provider.wrap(key, ctx())).rejects.toBeInstanceOf(KmsError);
  });

  it("the application's errors become KmsError with the error as cause", async () => {
    const provider = await openProvider('mine', appSlot());
    const { wrapped } = await provider.wrap(randomBytes(32), ctx(1));
    const error = (await provider.unwrap(wrapped, ctx(2)).catch((e: unknown) => e)) as KmsError;
    expect(error).toBeInstanceOf(KmsError);
    expect(error.code).toBe('VECVAULT_KMS');
    expect(error.cause).toBeInstanceOf(Error);
    const boom = new Error('keychain locked');
    const failing = await openProvider('mine', {
      provider: 'custom',
      wrapKey: () => Promise.reject(boom),
      unwrapKey: () => {
        throw boom;
      },
    });
    await expect(failing.wrap(randomBytes(32), ctx())).rejects.toMatchObject({ code: 'VECVAULT_KMS', cause: boom });
    await expect(failing.unwrap(new Uint8Array(10), ctx())).rejects.toMatchObject({ code: 'VECVAULT_KMS', cause: boom });
  });

  it('malformed results are KmsError: not bytes, empty, the key itself, a key of the wrong length', async () => {
    const key = randomBytes(32);
    const returning = (wrap: unknown, unwrap: unknown): CustomSlot => ({
      provider: 'custom',
      wrapKey: async () => wrap as Uint8Array,
      unwrapKey: async () => unwrap as Uint8Array,
    });
    for (const bad of ['text', new Uint8Array(0), undefined, key, new Uint8Array(64 * 1024 + 1)]) {
      const provider = await openProvider('mine', returning(bad, key));
      await expect(provider.wrap(key, ctx())).rejects.toMatchObject({ code: 'VECVAULT_KMS' });
    }
    for (const bad of [new Uint8Array(31), new Uint8Array(33), 'k'.repeat(32), null]) {
      const provider = await openProvider('mine', returning(new Uint8Array(40), bad));
      await expect(provider.unwrap(new Uint8Array(40), ctx())).rejects.toMatchObject({ code: 'VECVAULT_KMS' });
    }
  });

  it("unwrapKey's returned buffer stays the application's (vecvault returns its own copy)", async () => {
    const appKey = new Uint8Array(32).fill(5);
    const provider = await openProvider('mine', { provider: 'custom', wrapKey: async () => new Uint8Array(40), unwrapKey: async () => appKey });
    const out = await provider.unwrap(new Uint8Array(40), ctx());
    out.fill(0);
    expect(appKey.every((b) => b === 5)).toBe(true);
  });
});
