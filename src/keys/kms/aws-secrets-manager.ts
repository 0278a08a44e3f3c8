/**
 * `aws-secrets-manager`: a 32-byte wrap key held in AWS Secrets Manager (32
 * raw bytes in SecretBinary, or 64 hex characters in SecretString). The key is
 * wrapped locally with AES-256-GCM (`crypto/aead.ts`) under
 * HKDF(secret, 'aws-secrets-manager-wrap'), with AAD binding the secret's
 * VersionId and the context. The stored bytes are
 * `0x01 || u16 length || VersionId || nonce || ciphertext || tag`: unwrap
 * fetches that version of the secret, so rotating the secret in Secrets
 * Manager does not strand existing wraps (while AWS keeps the old version).
 */
import type * as SecretsManager from '@aws-sdk/client-secrets-manager';
import { KEY_BYTES, open, seal } from '../../crypto/aead.js';
import { deriveKey, frame } from '../../crypto/kdf.js';
import { KmsError } from '../../errors.js';
import { awsFailure, clientSettings, deadline } from './aws-common.js';
import { importOptional } from './optional.js';
import type { AwsSecretsManagerSlot, KeyProvider, ProviderOptions, WrapResult } from './types.js';

const WRAP_VERSION = 1;
const WRAP_LABEL = 'aws-secrets-manager-wrap';

export async function openAwsSecretsManager(slotName: string, slot: AwsSecretsManagerSlot, options: ProviderOptions): Promise<KeyProvider> {
  const sdk: typeof SecretsManager = await importOptional(
    '@aws-sdk/client-secrets-manager',
    slotName,
    'aws-secrets-manager',
    () => import('@aws-sdk/client-secrets-manager'),
  );
  const what = `KMS slot "${slotName}" (aws-secrets-manager, secret ${slot.secretId})`;
  const client = new sdk.SecretsManagerClient(clientSettings(slot, options));
  let closed = false;

  /** The wrap key of one version of the secret (the current one without `versionId`); the caller wipes it. */
  async function wrapKeyOf(versionId?: string): Promise<{ key: Buffer; versionId: string; arn?: string }> {
    if (closed) throw new KmsError(`KMS slot "${slotName}" was closed.`);
    let out: SecretsManager.GetSecretValueCommandOutput;
    try {
      out = await client.send(new sdk.GetSecretValueCommand({ SecretId: slot.secretId, ...(versionId === undefined ? {} : { VersionId: versionId }) }), {
        abortSignal: deadline(options),
      });
    } catch (cause) {
      throw awsFailure(what, 'GetSecretValue', cause);
    }
    let secret: Buffer | undefined;
    if (out.SecretBinary instanceof Uint8Array && out.SecretBinary.byteLength === KEY_BYTES) secret = Buffer.from(out.SecretBinary);
    else if (out.SecretBinary === undefined && typeof out.SecretString === 'string' && /^[0-9a-fA-F]{64}$/.test(out.SecretString)) {
      secret = Buffer.from(out.SecretString, 'hex');
    }
    out.SecretBinary?.fill(0);
    if (secret === undefined) {
      throw new KmsError(`${what}: the secret must be 32 raw bytes in SecretBinary, or 64 hex characters in SecretString.`);
    }
    if (typeof out.VersionId !== 'string' || out.VersionId.length === 0 || Buffer.byteLength(out.VersionId) > 0xffff) {
      secret.fill(0);
      throw new KmsError(`${what}: GetSecretValue returned no VersionId.`);
    }
    try {
      return { key: deriveKey(secret, Buffer.alloc(0), WRAP_LABEL), versionId: out.VersionId, ...(out.ARN === undefined ? {} : { arn: out.ARN }) };
    } finally {
      secret.fill(0);
    }
  }

  const aad = (versionId: string, context: Uint8Array): Buffer => frame('vecvault/aws-secrets-manager/v1', versionId, context);

  return {
    source: { provider: 'aws-secrets-manager', kmsName: slotName, keyId: slot.secretId, region: slot.region },
    async wrap(key: Uint8Array, context: Uint8Array): Promise<WrapResult> {
      if (key.byteLength !== KEY_BYTES) throw new KmsError(`${what}: only 32-byte keys are wrapped.`);
      const secret = await wrapKeyOf();
      try {
        const version = Buffer.from(secret.versionId, 'utf8');
        const length = Buffer.alloc(2);
        length.writeUInt16BE(version.byteLength);
        const sealed = seal(secret.key, key, aad(secret.versionId, context));
        return {
          wrapped: new Uint8Array(Buffer.concat([Buffer.of(WRAP_VERSION), length, version, sealed])),
          ...(secret.arn === undefined ? {} : { keyId: secret.arn }),
        };
      } finally {
        secret.key.fill(0);
      }
    },
    async unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
      const bytes = Buffer.from(wrapped);
      const length = bytes.byteLength >= 3 ? bytes.readUInt16BE(1) : -1;
      if (bytes[0] !== WRAP_VERSION || length <= 0 || bytes.byteLength < 3 + length) {
        throw new KmsError(`${what}: the wrapped key is not a Secrets Manager wrap of this version.`);
      }
      const versionId = bytes.subarray(3, 3 + length).toString('utf8');
      const secret = await wrapKeyOf(versionId);
      try {
        const key = open(secret.key, bytes.subarray(3 + length), aad(versionId, context), 'The Secrets Manager wrap');
        if (key.byteLength !== KEY_BYTES) {
          key.fill(0);
          throw new KmsError(`${what}: the unwrapped key is not 32 bytes.`);
        }
        const out = new Uint8Array(key);
        key.fill(0);
        return out;
      } catch (cause) {
        if (cause instanceof KmsError) throw cause;
        throw new KmsError(`${what}: the wrap does not open under this secret: it belongs to another index, DEK generation or secret.`, { cause });
      } finally {
        secret.key.fill(0);
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      client.destroy();
    },
  };
}
