/**
 * The `pkcs11` key provider (src/keys/kms/pkcs11.ts) against a real SoftHSM2
 * token: round trip, context binding, wrong PIN, missing token or key, a key
 * deleted or a PIN changed after the provider opened, an extractable key
 * refused, and the key's value never leaving the token. Skips with a printed
 * reason only when SoftHSM2 is not installed and CI is not set.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsError } from '../src/errors.js';
import { kmsContext } from '../src/keys/kms/context.js';
import { openProvider, type KeyProvider, type Pkcs11Slot } from '../src/keys/kms/types.js';
import { SOFTHSM_MODULE, SoftHsm, softHsmUnavailable } from './support/softhsm.js';
import { rejectsKmsError } from './support/helpers.js';

const unavailable = softHsmUnavailable();
if (unavailable !== undefined && process.env.CI !== 'true') console.warn(`kms-pkcs11.test.ts skipped: ${unavailable}`);
const skip = unavailable !== undefined && process.env.CI !== 'true';

const TOKEN = 'vecvault-test';
const PIN = '1234';
const ctx = (dekGeneration = 1, indexName = 'notes') => kmsContext({ format: 2, indexName, indexId: Buffer.alloc(16, 7), dekGeneration });

const rejectsKms = (promise: Promise<unknown>) => rejectsKmsError(promise);

describe.skipIf(skip)('pkcs11 provider on SoftHSM2', () => {
  let hsm: SoftHsm;
  const slot = (over: Partial<Pkcs11Slot> = {}): Pkcs11Slot => ({
    provider: 'pkcs11',
    module: SOFTHSM_MODULE,
    tokenLabel: TOKEN,
    pin: PIN,
    keyLabel: 'vecvault-kek',
    ...over,
  });
  const opened: KeyProvider[] = [];
  const open = async (over: Partial<Pkcs11Slot> = {}): Promise<KeyProvider> => {
    const provider = await openProvider('hsm', slot(over));
    opened.push(provider);
    return provider;
  };

  beforeAll(() => {
    hsm = new SoftHsm();
    hsm.initToken(TOKEN, PIN);
    hsm.generateAesKey(TOKEN, PIN, 'vecvault-kek');
    hsm.generateAesKey(TOKEN, PIN, 'other-kek');
    hsm.generateAesKey(TOKEN, PIN, 'doomed-kek');
    hsm.generateAesKey(TOKEN, PIN, 'exportable-kek', { extractable: true });
    hsm.initToken('pin-change', PIN);
    hsm.generateAesKey('pin-change', PIN, 'vecvault-kek');
  });

  afterAll(async () => {
    for (const provider of opened) await provider.close();
    hsm?.cleanup();
  });

  it('wraps and unwraps a 32-byte key on the token', async () => {
    const provider = await open();
    const key = randomBytes(32);
    const { wrapped, keyId } = await provider.wrap(key, ctx());
    expect(keyId).toBeUndefined();
    expect(provider.source).toEqual({ provider: 'pkcs11', kmsName: 'hsm', keyId: 'pkcs11:token=vecvault-test;object=vecvault-kek;type=secret-key' });
    expect(wrapped.byteLength).toBe(61);
    expect(Buffer.from(wrapped).includes(key)).toBe(false);
    expect(Buffer.from(await provider.unwrap(wrapped, ctx()))).toEqual(key);
    // A fresh IV per wrap.
    expect(Buffer.from((await provider.wrap(key, ctx())).wrapped)).not.toEqual(Buffer.from(wrapped));
    // A second provider on the same module and token opens it too.
    const again = await open();
    expect(Buffer.from(await again.unwrap(wrapped, ctx()))).toEqual(key);
  });

  it('refuses a wrap under another context, another key, or altered bytes', async () => {
    const provider = await open();
    const { wrapped } = await provider.wrap(randomBytes(32), ctx(1));
    await rejectsKms(provider.unwrap(wrapped, ctx(2)));
    await rejectsKms(provider.unwrap(wrapped, ctx(1, 'other')));
    const other = await open({ keyLabel: 'other-kek' });
    const error = await rejectsKms(other.unwrap(wrapped, ctx(1)));
    expect(error.cause).toBeDefined();
    const flipped = new Uint8Array(wrapped);
    flipped[20]! ^= 1;
    await rejectsKms(provider.unwrap(flipped, ctx(1)));
    await rejectsKms(provider.unwrap(wrapped.subarray(0, 40), ctx(1)));
  });

  it('a wrong PIN, a missing token or a missing key is a KmsError with cause', async () => {
    const wrongPin = await rejectsKms((await open({ pin: '9999' })).wrap(randomBytes(32), ctx()));
    expect(wrongPin.cause).toMatchObject({ message: 'CKR_PIN_INCORRECT' });
    expect(wrongPin.message).not.toContain('9999');
    await rejectsKms((await open({ tokenLabel: 'no-such-token' })).wrap(randomBytes(32), ctx()));
    await rejectsKms((await open({ keyLabel: 'no-such-key' })).wrap(randomBytes(32), ctx()));
    const badModule = await openProvider('hsm', slot({ module: '/nonexistent/libpkcs11.so' })).catch((e: unknown) => e);
    expect(badModule).toBeInstanceOf(KmsError);
    expect((badModule as KmsError).cause).toBeDefined();
  });

  it('a key deleted after the provider opened: KmsError on the next call', async () => {
    const provider = await open({ keyLabel: 'doomed-kek' });
    const { wrapped } = await provider.wrap(randomBytes(32), ctx());
    hsm.deleteKey(TOKEN, PIN, 'doomed-kek');
    const error = await rejectsKms(provider.unwrap(wrapped, ctx()));
    expect(error.message).toContain('no secret key labelled');
  });

  it('holds no login between calls: a token logged out in between is logged in again', async () => {
    const provider = await open();
    const key = randomBytes(32);
    const { wrapped } = await provider.wrap(key, ctx());
    const pk = (await import('pkcs11js')).default;
    const probe = new pk.PKCS11();
    probe.load(SOFTHSM_MODULE);
    try {
      probe.C_Initialize();
    } catch (e) {
      expect((e as { code?: number }).code).toBe(pk.CKR_CRYPTOKI_ALREADY_INITIALIZED);
    }
    const tokenSlot = probe.C_GetSlotList(true).find((s) => probe.C_GetTokenInfo(s).label.trimEnd() === TOKEN)!;
    const session = probe.C_OpenSession(tokenSlot, pk.CKF_SERIAL_SESSION);
    expect(probe.C_GetSessionInfo(session).state).toBe(0); // CKS_RO_PUBLIC_SESSION: nobody is logged in
    probe.C_Login(session, pk.CKU_USER, PIN);
    probe.C_Logout(session);
    probe.C_CloseSession(session);
    expect(Buffer.from(await provider.unwrap(wrapped, ctx()))).toEqual(key);
  });

  it('refuses an extractable key, and the key it uses never leaves the token', async () => {
    await rejectsKms((await open({ keyLabel: 'exportable-kek' })).wrap(randomBytes(32), ctx()));
    const read = hsm.readKeyValue(TOKEN, PIN, 'vecvault-kek');
    expect(read.ok).toBe(false);
    expect(read.output).toMatch(/CKR_ATTRIBUTE_SENSITIVE|sensitive|failed/i);
    const control = hsm.readKeyValue(TOKEN, PIN, 'exportable-kek');
    expect(control.ok).toBe(true);
  });

  it('close() is idempotent and a closed provider refuses calls', async () => {
    const provider = await openProvider('hsm', slot());
    const { wrapped } = await provider.wrap(randomBytes(32), ctx());
    await provider.close();
    await provider.close();
    await rejectsKms(provider.unwrap(wrapped, ctx()));
  });
});
