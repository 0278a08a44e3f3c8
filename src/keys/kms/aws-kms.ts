/**
 * `aws-kms`: an AWS KMS symmetric key. wrap = Encrypt of the 32-byte key with
 * the context as EncryptionContext (`awsEncryptionContext`); the stored bytes
 * are KMS's CiphertextBlob. unwrap = Decrypt with the same EncryptionContext
 * and the slot's KeyId, so a wrap made for another index, another DEK
 * generation or another key fails. A disabled or deleted key, a refusal, or an
 * unreachable endpoint is a `KmsError` with the SDK's error as `cause`.
 */
import type * as Kms from '@aws-sdk/client-kms';
import { KmsError } from '../../errors.js';
import { awsEncryptionContext } from './context.js';
import { awsFailure, clientSettings, deadline } from './aws-common.js';
import { importOptional } from './optional.js';
import type { AwsKmsSlot, KeyProvider, ProviderOptions, WrapResult } from './types.js';

const KEY_BYTES = 32;

export async function openAwsKms(slotName: string, slot: AwsKmsSlot, options: ProviderOptions): Promise<KeyProvider> {
  const sdk: typeof Kms = await importOptional('@aws-sdk/client-kms', slotName, 'aws-kms', () => import('@aws-sdk/client-kms'));
  const what = `KMS slot "${slotName}" (aws-kms, key ${slot.keyId})`;
  const client = new sdk.KMSClient(clientSettings(slot, options));
  let closed = false;
  const live = (): void => {
    if (closed) throw new KmsError(`KMS slot "${slotName}" was closed.`);
  };
  return {
    source: { provider: 'aws-kms', kmsName: slotName, keyId: slot.keyId, region: slot.region },
    async wrap(key: Uint8Array, context: Uint8Array): Promise<WrapResult> {
      live();
      if (key.byteLength !== KEY_BYTES) throw new KmsError(`${what}: only 32-byte keys are wrapped.`);
      const plaintext = new Uint8Array(key);
      try {
        const out = await client.send(new sdk.EncryptCommand({ KeyId: slot.keyId, Plaintext: plaintext, EncryptionContext: awsEncryptionContext(context) }), {
          abortSignal: deadline(options),
        });
        if (!(out.CiphertextBlob instanceof Uint8Array) || out.CiphertextBlob.byteLength === 0) throw new KmsError(`${what}: Encrypt returned no ciphertext.`);
        return { wrapped: new Uint8Array(out.CiphertextBlob), ...(out.KeyId === undefined ? {} : { keyId: out.KeyId }) };
      } catch (cause) {
        if (cause instanceof KmsError) throw cause;
        throw awsFailure(what, 'Encrypt', cause);
      } finally {
        plaintext.fill(0);
      }
    },
    async unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
      live();
      let plain: Uint8Array | undefined;
      try {
        const out = await client.send(
          new sdk.DecryptCommand({ KeyId: slot.keyId, CiphertextBlob: new Uint8Array(wrapped), EncryptionContext: awsEncryptionContext(context) }),
          { abortSignal: deadline(options) },
        );
        plain = out.Plaintext;
      } catch (cause) {
        throw awsFailure(what, 'Decrypt', cause);
      }
      if (!(plain instanceof Uint8Array) || plain.byteLength !== KEY_BYTES) {
        plain?.fill(0);
        throw new KmsError(`${what}: Decrypt did not return a 32-byte key.`);
      }
      const key = new Uint8Array(plain);
      plain.fill(0);
      return key;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      client.destroy();
    },
  };
}
