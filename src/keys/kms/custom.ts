/**
 * `custom`: the application's own `wrapKey`/`unwrapKey` (an OS keychain,
 * Vault's transit engine, a smart card). Their results are checked and their
 * failures become `KmsError` with the application's error as `cause`.
 */
import { KmsError } from '../../errors.js';
import type { CustomSlot, KeyProvider, WrapResult } from './types.js';

/** Largest wrapped key accepted from `wrapKey` (it is stored in the catalog). */
export const MAX_WRAPPED_BYTES = 64 * 1024;

export function openCustom(slotName: string, slot: CustomSlot): KeyProvider {
  let closed = false;
  const source = { provider: 'custom' as const, kmsName: slotName, ...(slot.keyId === undefined ? {} : { keyId: slot.keyId }) };
  const live = (): void => {
    if (closed) throw new KmsError(`KMS slot "${slotName}" was closed.`);
  };
  return {
    source,
    async wrap(key: Uint8Array, context: Uint8Array): Promise<WrapResult> {
      live();
      let wrapped: unknown;
      try {
        // Copies: the application never holds a reference to vecvault's buffers.
        wrapped = await slot.wrapKey(new Uint8Array(key), new Uint8Array(context));
      } catch (cause) {
        throw new KmsError(`KMS slot "${slotName}" (custom): wrapKey failed.`, { cause });
      }
      if (!(wrapped instanceof Uint8Array) || wrapped.byteLength === 0 || wrapped.byteLength > MAX_WRAPPED_BYTES) {
        throw new KmsError(`KMS slot "${slotName}" (custom): wrapKey must resolve to a Uint8Array of 1 to ${MAX_WRAPPED_BYTES} bytes.`);
      }
      if (wrapped.byteLength === key.byteLength && Buffer.from(wrapped).equals(Buffer.from(key))) {
        throw new KmsError(`KMS slot "${slotName}" (custom): wrapKey returned the key itself; it must return a wrap of it.`);
      }
      return { wrapped: new Uint8Array(wrapped), ...(slot.keyId === undefined ? {} : { keyId: slot.keyId }) };
    },
    async unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
      live();
      let key: unknown;
      try {
        key = await slot.unwrapKey(new Uint8Array(wrapped), new Uint8Array(context));
      } catch (cause) {
        throw new KmsError(`KMS slot "${slotName}" (custom): unwrapKey failed.`, { cause });
      }
      if (!(key instanceof Uint8Array) || key.byteLength !== 32) {
        throw new KmsError(`KMS slot "${slotName}" (custom): unwrapKey must resolve to a 32-byte Uint8Array.`);
      }
      // A copy: the application's buffer stays the application's (vecvault wipes its own).
      return new Uint8Array(key);
    },
    async close(): Promise<void> {
      closed = true;
    },
  };
}
