/**
 * Shape checks of the KMS registry and its slots. Every failure is a
 * `ValidationError` whose `path` names the field: `kms.<slot>.<field>`.
 * Unknown fields are refused too (a misspelt `keyID` would otherwise be
 * ignored). Messages never contain a PIN or a credential.
 */
import { ValidationError } from '../../errors.js';
import type { AwsKmsSlot, AwsSecretsManagerSlot, CustomSlot, KmsRegistry, KmsSlot, Pkcs11Slot } from './types.js';

export const KMS_PROVIDERS = ['pkcs11', 'aws-kms', 'aws-secrets-manager', 'custom'] as const;

const FIELDS: Record<KmsSlot['provider'], { required: readonly string[]; optional: readonly string[] }> = {
  pkcs11: { required: ['module', 'tokenLabel', 'pin', 'keyLabel'], optional: [] },
  'aws-kms': { required: ['keyId', 'region'], optional: ['endpoint', 'credentials'] },
  'aws-secrets-manager': { required: ['secretId', 'region'], optional: ['endpoint', 'credentials'] },
  custom: { required: ['wrapKey', 'unwrapKey'], optional: ['keyId'] },
};

/** Longest slot name accepted. */
const MAX_SLOT_NAME = 128;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function checkSlotName(slotName: unknown): asserts slotName is string {
  if (typeof slotName !== 'string' || slotName.length === 0 || slotName.length > MAX_SLOT_NAME) {
    throw new ValidationError(`A KMS slot name must be a string of 1 to ${MAX_SLOT_NAME} characters.`, { path: 'kms' });
  }
}

function text(slot: Record<string, unknown>, at: string, field: string, what: string): string {
  const value = slot[field];
  if (typeof value !== 'string' || value.length === 0) {
    throw new ValidationError(`${at}.${field} must be a non-empty string (${what}).`, { path: `${at}.${field}` });
  }
  return value;
}

function optionalText(slot: Record<string, unknown>, at: string, field: string, what: string): string | undefined {
  return slot[field] === undefined ? undefined : text(slot, at, field, what);
}

function endpoint(slot: Record<string, unknown>, at: string): string | undefined {
  const value = optionalText(slot, at, 'endpoint', 'an http:// or https:// URL');
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch (cause) {
    throw new ValidationError(`${at}.endpoint must be an http:// or https:// URL.`, { path: `${at}.endpoint`, cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ValidationError(`${at}.endpoint must be an http:// or https:// URL.`, { path: `${at}.endpoint` });
  }
  return value;
}

function credentials(slot: Record<string, unknown>, at: string): AwsKmsSlot['credentials'] {
  const value = slot.credentials;
  if (value === undefined || typeof value === 'function') return value as AwsKmsSlot['credentials'];
  const path = `${at}.credentials`;
  if (!isPlainObject(value)) {
    throw new ValidationError(`${path} must be { accessKeyId, secretAccessKey, sessionToken? } or a function returning it.`, { path });
  }
  text(value, path, 'accessKeyId', 'the AWS access key id');
  text(value, path, 'secretAccessKey', 'the AWS secret access key');
  optionalText(value, path, 'sessionToken', 'the AWS session token');
  if (value.expiration !== undefined && !(value.expiration instanceof Date)) {
    throw new ValidationError(`${path}.expiration must be a Date.`, { path: `${path}.expiration` });
  }
  // Passed on whole: credential objects from the SDK's providers carry more fields (accountId, credentialScope, $source).
  return value as unknown as AwsKmsSlot['credentials'];
}

function fn<T>(slot: Record<string, unknown>, at: string, field: string): T {
  const value = slot[field];
  if (typeof value !== 'function') throw new ValidationError(`${at}.${field} must be an async function.`, { path: `${at}.${field}` });
  return (value as (...args: unknown[]) => unknown).bind(slot) as T;
}

/**
 * Checks one slot and returns a copy of it (later edits to the caller's object
 * do not reach the provider). `slotName` is the slot's key in the registry.
 */
export function validateKmsSlot(slotName: string, input: unknown): KmsSlot {
  checkSlotName(slotName);
  const slot = input as Record<string, unknown>;
  const at = `kms.${slotName}`;
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new ValidationError(`${at} must be an object with a provider field.`, { path: at });
  const provider = slot.provider;
  if (typeof provider !== 'string' || !(KMS_PROVIDERS as readonly string[]).includes(provider)) {
    throw new ValidationError(`${at}.provider must be one of ${KMS_PROVIDERS.map((p) => `'${p}'`).join(', ')}.`, { path: `${at}.provider` });
  }
  const known = FIELDS[provider as KmsSlot['provider']];
  // A custom slot may be the application's own object (a class instance with state); the others are plain data, checked field by field.
  if (provider !== 'custom' && !isPlainObject(slot)) throw new ValidationError(`${at} must be a plain object.`, { path: at });
  for (const key of provider === 'custom' ? [] : Object.keys(slot)) {
    if (key !== 'provider' && !known.required.includes(key) && !known.optional.includes(key)) {
      throw new ValidationError(`${at}.${key} is not a field of a '${provider}' slot (fields: ${[...known.required, ...known.optional].join(', ')}).`, {
        path: `${at}.${key}`,
      });
    }
  }
  switch (provider as KmsSlot['provider']) {
    case 'pkcs11': {
      const out: Pkcs11Slot = {
        provider: 'pkcs11',
        module: text(slot, at, 'module', 'the path of the PKCS#11 module'),
        tokenLabel: text(slot, at, 'tokenLabel', "the token's label"),
        pin: text(slot, at, 'pin', 'the user PIN'),
        keyLabel: text(slot, at, 'keyLabel', "the AES key's label"),
      };
      if (out.tokenLabel.length > 32) throw new ValidationError(`${at}.tokenLabel is longer than 32 characters.`, { path: `${at}.tokenLabel` });
      return out;
    }
    case 'aws-kms': {
      const out: AwsKmsSlot = {
        provider: 'aws-kms',
        keyId: text(slot, at, 'keyId', 'a KMS key id, key ARN or alias'),
        region: text(slot, at, 'region', 'an AWS region'),
      };
      return withAwsConnection(out, slot, at);
    }
    case 'aws-secrets-manager': {
      const out: AwsSecretsManagerSlot = {
        provider: 'aws-secrets-manager',
        secretId: text(slot, at, 'secretId', 'a secret name or ARN'),
        region: text(slot, at, 'region', 'an AWS region'),
      };
      return withAwsConnection(out, slot, at);
    }
    case 'custom': {
      const out: CustomSlot = {
        provider: 'custom',
        wrapKey: fn<CustomSlot['wrapKey']>(slot, at, 'wrapKey'),
        unwrapKey: fn<CustomSlot['unwrapKey']>(slot, at, 'unwrapKey'),
      };
      const keyId = optionalText(slot, at, 'keyId', 'an identifier, never a secret');
      if (keyId !== undefined) out.keyId = keyId;
      return out;
    }
  }
}

/** Adds an AWS slot's optional `endpoint` and `credentials`, checked, to `out`. */
function withAwsConnection<T extends AwsKmsSlot | AwsSecretsManagerSlot>(out: T, slot: Record<string, unknown>, at: string): T {
  const url = endpoint(slot, at);
  const creds = credentials(slot, at);
  if (url !== undefined) out.endpoint = url;
  if (creds !== undefined) out.credentials = creds;
  return out;
}

/** Checks a whole registry (`new Client({ kms })`); returns a copy with each slot checked. */
export function validateKmsRegistry(registry: unknown): KmsRegistry {
  if (!isPlainObject(registry)) throw new ValidationError('kms must be an object mapping slot names to slots.', { path: 'kms' });
  const out: KmsRegistry = Object.create(null) as KmsRegistry;
  for (const [name, slot] of Object.entries(registry)) out[name] = validateKmsSlot(name, slot);
  return out;
}
