/**
 * `pkcs11`: an AES-256 key on a PKCS#11 token (an HSM, a smart card,
 * SoftHSM2) through `pkcs11js`. The key is created on the token by its owner
 * (sensitive, not extractable) and found by label; vecvault never sees it.
 *
 * wrap = CKM_AES_GCM on the token with a random 12-byte IV and the context as
 * AAD; the stored bytes are `0x01 || iv(12) || ciphertext(32) || tag(16)`.
 * Each wrap/unwrap finds the token by label, opens a session, logs in, finds
 * the key, runs one operation and closes the session (closing an
 * application's last session ends its login), so a provider holds no session
 * between calls and a token that was removed or re-initialised is noticed.
 * The module is loaded and C_Initialize'd once per path in this process,
 * shared by the providers that use it, and finalised when the last closes.
 * Every PKCS#11 failure is a `KmsError` with the pkcs11js error as `cause`.
 */
import { randomBytes } from 'node:crypto';
import type * as Pkcs11js from 'pkcs11js';
import { KmsError } from '../../errors.js';
import { importOptional } from './optional.js';
import type { KeyProvider, Pkcs11Slot, WrapResult } from './types.js';

type Pkcs11Module = typeof Pkcs11js;

const WRAP_VERSION = 1;
const IV_BYTES = 12;
const KEY_BYTES = 32;
const TAG_BYTES = 16;
const WRAPPED_BYTES = 1 + IV_BYTES + KEY_BYTES + TAG_BYTES;

interface LoadedModule {
  lib: Pkcs11js.PKCS11;
  refs: number;
  /** False when something else in this process had initialised the module: then it is not finalised here. */
  owned: boolean;
}

/** One loaded module per path in this process (C_Initialize is per process). */
const modules = new Map<string, LoadedModule>();

function describe(error: unknown): string {
  const e = error as { message?: unknown; method?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message.split('\n')[0] : String(error);
  return typeof e?.method === 'string' && e.method !== '' ? `${e.method}: ${message}` : (message ?? 'unknown error');
}

function acquire(pk: Pkcs11Module, slotName: string, path: string): LoadedModule {
  const known = modules.get(path);
  if (known !== undefined) {
    known.refs += 1;
    return known;
  }
  const lib = new pk.PKCS11();
  try {
    lib.load(path);
  } catch (cause) {
    throw new KmsError(`KMS slot "${slotName}" (pkcs11): the module ${path} does not load (${describe(cause)}).`, { cause });
  }
  let owned = true;
  try {
    lib.C_Initialize();
  } catch (cause) {
    if ((cause as { code?: unknown }).code === pk.CKR_CRYPTOKI_ALREADY_INITIALIZED) owned = false;
    else {
      lib.close();
      throw new KmsError(`KMS slot "${slotName}" (pkcs11): C_Initialize of ${path} failed (${describe(cause)}).`, { cause });
    }
  }
  const loaded = { lib, refs: 1, owned };
  modules.set(path, loaded);
  return loaded;
}

function release(path: string, loaded: LoadedModule): void {
  loaded.refs -= 1;
  if (loaded.refs > 0) return;
  modules.delete(path);
  try {
    if (loaded.owned) loaded.lib.C_Finalize();
  } finally {
    loaded.lib.close();
  }
}

const boolOf = (value: Buffer | undefined): boolean | undefined => (value === undefined || value.byteLength === 0 ? undefined : value[0] !== 0);
const ulongOf = (value: Buffer | undefined): number | undefined =>
  value === undefined || value.byteLength === 0 ? undefined : value.byteLength >= 8 ? Number(value.readBigUInt64LE()) : value.readUInt32LE();

export async function openPkcs11(slotName: string, slot: Pkcs11Slot): Promise<KeyProvider> {
  const imported = await importOptional('pkcs11js', slotName, 'pkcs11', () => import('pkcs11js'));
  const pk = ((imported as { default?: Pkcs11Module }).default ?? imported) as Pkcs11Module;
  const loaded = acquire(pk, slotName, slot.module);
  const { lib } = loaded;
  const what = `KMS slot "${slotName}" (pkcs11, token "${slot.tokenLabel}", key "${slot.keyLabel}")`;
  let closed = false;

  const fail = (step: string, cause?: unknown): KmsError =>
    new KmsError(`${what}: ${step}${cause === undefined ? '' : ` (${describe(cause)})`}.`, cause === undefined ? undefined : { cause });

  /** One session: find the token, log in, find the key, run `op`. Synchronous, so concurrent calls never interleave. */
  function withKey<T>(op: (session: Pkcs11js.Handle, key: Pkcs11js.Handle) => T): T {
    if (closed) throw new KmsError(`KMS slot "${slotName}" was closed.`);
    let tokenSlot: Pkcs11js.Handle | undefined;
    try {
      for (const candidate of lib.C_GetSlotList(true)) {
        if (lib.C_GetTokenInfo(candidate).label.trimEnd() === slot.tokenLabel) {
          tokenSlot = candidate;
          break;
        }
      }
    } catch (cause) {
      throw fail('listing the tokens failed', cause);
    }
    if (tokenSlot === undefined) throw fail(`no token labelled "${slot.tokenLabel}" is present`);
    let session: Pkcs11js.Handle;
    try {
      session = lib.C_OpenSession(tokenSlot, pk.CKF_SERIAL_SESSION);
    } catch (cause) {
      throw fail('opening a session failed', cause);
    }
    try {
      try {
        lib.C_Login(session, pk.CKU_USER, slot.pin);
      } catch (cause) {
        if ((cause as { code?: unknown }).code !== pk.CKR_USER_ALREADY_LOGGED_IN) throw fail('login failed (check the PIN)', cause);
      }
      let handles: Pkcs11js.Handle[];
      try {
        lib.C_FindObjectsInit(session, [
          { type: pk.CKA_CLASS, value: pk.CKO_SECRET_KEY },
          { type: pk.CKA_LABEL, value: slot.keyLabel },
        ]);
        try {
          handles = lib.C_FindObjects(session, 2);
        } finally {
          lib.C_FindObjectsFinal(session);
        }
      } catch (cause) {
        throw fail('searching the key failed', cause);
      }
      if (handles.length === 0) throw fail(`no secret key labelled "${slot.keyLabel}" on the token`);
      if (handles.length > 1) throw fail(`more than one secret key is labelled "${slot.keyLabel}"`);
      const key = handles[0]!;
      let attrs: Pkcs11js.Attribute[];
      try {
        attrs = lib.C_GetAttributeValue(session, key, [
          { type: pk.CKA_KEY_TYPE },
          { type: pk.CKA_VALUE_LEN },
          { type: pk.CKA_SENSITIVE },
          { type: pk.CKA_EXTRACTABLE },
        ]);
      } catch (cause) {
        throw fail("reading the key's attributes failed", cause);
      }
      const value = (type: number): Buffer | undefined => attrs.find((a) => a.type === type)?.value as Buffer | undefined;
      if (ulongOf(value(pk.CKA_KEY_TYPE)) !== pk.CKK_AES || ulongOf(value(pk.CKA_VALUE_LEN)) !== KEY_BYTES) {
        throw fail('the key is not an AES-256 key');
      }
      if (boolOf(value(pk.CKA_SENSITIVE)) !== true || boolOf(value(pk.CKA_EXTRACTABLE)) !== false) {
        throw fail('the key must be sensitive and not extractable (create it with pkcs11-tool --keygen --key-type AES:32 --sensitive)');
      }
      return op(session, key);
    } finally {
      try {
        lib.C_CloseSession(session);
      } catch {
        // The token went away mid-call: the session is gone with it.
      }
    }
  }

  const gcm = (iv: Buffer, context: Uint8Array): Pkcs11js.Mechanism => ({
    mechanism: pk.CKM_AES_GCM,
    parameter: { type: pk.CK_PARAMS_AES_GCM, iv, aad: Buffer.from(context), ivBits: IV_BYTES * 8, tagBits: TAG_BYTES * 8 } as Pkcs11js.AesGCM,
  });

  return {
    source: {
      provider: 'pkcs11',
      kmsName: slotName,
      keyId: `pkcs11:token=${encodeURIComponent(slot.tokenLabel)};object=${encodeURIComponent(slot.keyLabel)};type=secret-key`,
    },
    async wrap(key: Uint8Array, context: Uint8Array): Promise<WrapResult> {
      if (key.byteLength !== KEY_BYTES) throw new KmsError(`${what}: only 32-byte keys are wrapped.`);
      const iv = randomBytes(IV_BYTES);
      const plain = Buffer.from(key);
      try {
        const body = withKey((session, handle) => {
          try {
            lib.C_EncryptInit(session, gcm(iv, context), handle);
            return Buffer.from(lib.C_Encrypt(session, plain, Buffer.alloc(KEY_BYTES + TAG_BYTES + 16)));
          } catch (cause) {
            throw fail('AES-GCM encryption on the token failed', cause);
          }
        });
        if (body.byteLength !== KEY_BYTES + TAG_BYTES) throw fail('the token returned a wrap of the wrong length');
        return { wrapped: new Uint8Array(Buffer.concat([Buffer.of(WRAP_VERSION), iv, body])) };
      } finally {
        plain.fill(0);
      }
    },
    async unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
      if (wrapped.byteLength !== WRAPPED_BYTES || wrapped[0] !== WRAP_VERSION) throw fail('the wrapped key is not a PKCS#11 AES-GCM wrap of this version');
      const bytes = Buffer.from(wrapped);
      const iv = bytes.subarray(1, 1 + IV_BYTES);
      const body = bytes.subarray(1 + IV_BYTES);
      const out = Buffer.alloc(body.byteLength + 16);
      try {
        const plain = withKey((session, handle) => {
          try {
            lib.C_DecryptInit(session, gcm(iv, context), handle);
            return lib.C_Decrypt(session, body, out);
          } catch (cause) {
            throw fail('AES-GCM decryption on the token failed: the wrap does not belong to this index, DEK generation or key', cause);
          }
        });
        if (plain.byteLength !== KEY_BYTES) throw fail('the unwrapped key is not 32 bytes');
        return new Uint8Array(plain);
      } finally {
        out.fill(0);
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      try {
        release(slot.module, loaded);
      } catch (cause) {
        throw fail('finalising the module failed', cause);
      }
    },
  };
}
