/**
 * Key providers: where an index's key lives when the application does not
 * pass it in. A registry (`new Client({ kms })`) maps slot names to slots;
 * `openProvider(slotName, slot)` validates a slot and opens the provider
 * behind it, loading its SDK only then (the SDKs are optional peer
 * dependencies). Every provider wraps and unwraps a 32-byte key bound to a
 * context (see `context.ts`). Vecvault calls a provider once per index open or
 * key rotation, never per record.
 *
 * Not wired into `Client` yet: see docs/key-sources.md, "Next step".
 */
import { KmsError } from '../../errors.js';
import { validateKmsSlot } from './validate.js';

/** Static AWS credentials, or a function returning them (refreshed by the SDK when `expiration` passes). */
export interface AwsCredentialIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}
export type AwsCredentials = AwsCredentialIdentity | (() => Promise<AwsCredentialIdentity>);

/** An AES-256 key on a PKCS#11 token (an HSM, a smart card, SoftHSM2). */
export interface Pkcs11Slot {
  provider: 'pkcs11';
  /** Path of the PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`. */
  module: string;
  /** The token's label (as set at `--init-token`). */
  tokenLabel: string;
  /** The user PIN. */
  pin: string;
  /** The label of the AES-256 secret key (sensitive, not extractable), created on the token by its owner. */
  keyLabel: string;
}

/** An AWS KMS symmetric key: Encrypt/Decrypt with the context as EncryptionContext. */
export interface AwsKmsSlot {
  provider: 'aws-kms';
  /** Key id, key ARN, alias name or alias ARN. */
  keyId: string;
  region: string;
  /** Another endpoint than AWS's (a VPC endpoint, a test server). */
  endpoint?: string;
  /** Default: the SDK's credential chain (environment, profile, instance role, …). */
  credentials?: AwsCredentials;
}

/** A 32-byte wrap key held in AWS Secrets Manager; the key is AES-256-GCM-wrapped locally. */
export interface AwsSecretsManagerSlot {
  provider: 'aws-secrets-manager';
  /** Secret name or ARN. The secret is 32 raw bytes in SecretBinary (or 64 hex characters in SecretString). */
  secretId: string;
  region: string;
  endpoint?: string;
  credentials?: AwsCredentials;
}

/** The application's own key source (an OS keychain, Vault, a smart card). */
export interface CustomSlot {
  provider: 'custom';
  /** Wraps the 32-byte key, bound to `context`; returns the bytes to store (never secret). */
  wrapKey(key: Uint8Array, context: Uint8Array): Promise<Uint8Array>;
  /** Returns the 32-byte key for bytes `wrapKey` returned with the same context; throws otherwise. */
  unwrapKey(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array>;
  /** An identifier recorded in the envelope (never secret). */
  keyId?: string;
}

export type KmsSlot = Pkcs11Slot | AwsKmsSlot | AwsSecretsManagerSlot | CustomSlot;
export type KmsProviderName = KmsSlot['provider'];

/** The registry of `new Client({ path, kms })`: slot name → slot. */
export type KmsRegistry = Record<string, KmsSlot>;

/** What the envelope records about a key source: never a secret. */
export interface KeySourceInfo {
  provider: KmsProviderName;
  /** The slot's name in the registry. */
  kmsName: string;
  /** The key's identifier: a PKCS#11 URI, a KMS key ARN, a secret ARN, the custom slot's `keyId`. */
  keyId?: string;
  /** AWS providers only. */
  region?: string;
}

export interface WrapResult {
  /** The wrapped key: store it. */
  wrapped: Uint8Array;
  /** The key id the provider reports for this wrap (e.g. the KMS key ARN), when it knows one. */
  keyId?: string;
}

/** One open key source. Errors are `KmsError` with the provider's error as `cause`. */
export interface KeyProvider {
  /** Secret-free description of the source, for the envelope. */
  readonly source: KeySourceInfo;
  /** Wraps a 32-byte key, bound to `context` (see `kmsContext`). */
  wrap(key: Uint8Array, context: Uint8Array): Promise<WrapResult>;
  /** Unwraps bytes `wrap` returned with the same context: the 32-byte key, owned by the caller (wipe it). */
  unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array>;
  /** Releases the SDK client or PKCS#11 module; the provider is unusable afterwards. Idempotent. */
  close(): Promise<void>;
}

/** Options that are not part of a slot (tests set short timeouts). */
export interface ProviderOptions {
  /** Per request (connect and response) for AWS providers; default 10 000 ms. */
  timeoutMs?: number;
  /** AWS attempts per call, retries included; default 3. */
  maxAttempts?: number;
}

/**
 * Validates `slot` (`ValidationError` with path `kms.<slotName>.<field>`) and
 * opens its provider, loading the provider's SDK only now: a missing optional
 * package is a `KmsError` saying which one to install. Nothing is contacted
 * yet: the first `wrap`/`unwrap` reaches the KMS or token.
 */
export async function openProvider(slotName: string, slot: KmsSlot, options: ProviderOptions = {}): Promise<KeyProvider> {
  const checked = validateKmsSlot(slotName, slot);
  switch (checked.provider) {
    case 'pkcs11':
      return (await import('./pkcs11.js')).openPkcs11(slotName, checked);
    case 'aws-kms':
      return (await import('./aws-kms.js')).openAwsKms(slotName, checked, options);
    case 'aws-secrets-manager':
      return (await import('./aws-secrets-manager.js')).openAwsSecretsManager(slotName, checked, options);
    case 'custom':
      return (await import('./custom.js')).openCustom(slotName, checked);
  }
}

/** The slot named `kmsName` in the registry, or a `KmsError` naming the missing slot. */
export function resolveSlot(registry: KmsRegistry | undefined, kmsName: string): KmsSlot {
  const slot = registry !== undefined && Object.hasOwn(registry, kmsName) ? registry[kmsName] : undefined;
  if (slot === undefined) {
    const known = registry === undefined ? [] : Object.keys(registry);
    throw new KmsError(
      `No KMS slot named "${kmsName}" in this Client's registry (${known.length === 0 ? 'it has none' : `it has ${known.map((n) => `"${n}"`).join(', ')}`}). Pass it in new Client({ kms: { ${JSON.stringify(kmsName)}: … } }).`,
    );
  }
  return slot;
}
