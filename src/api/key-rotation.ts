/**
 * The keys/ side of `rotateKey` and `rotateDataKey` (core/rotation.ts does
 * the storage side): checking the new key source, KMS wraps bound to the
 * right context, and the catalog entries that record them.
 */
import { randomBytes } from 'node:crypto';
import type { RootKeys } from '../core/index-state.js';
import type { RotationKeys } from '../core/rotation.js';
import { KmsError, NotSupportedError, ValidationError } from '../errors.js';
import { deriveIndexKeys, FORMAT_VERSION, KMS_FORMAT_VERSION, sealEnvelope, usersIdOf, type CatalogEntry, type KeySourceRecord } from '../keys/envelope.js';
import { checkIndexKey } from '../keys/index-key.js';
import { rootUserKeys } from '../keys/users.js';
import { kmsContext } from '../keys/kms/context.js';
import { openProvider, resolveSlot, type KmsProviderName, type KmsRegistry } from '../keys/kms/types.js';
import type { KeySource } from './types.js';
import { isPlainObject } from './validate.js';

/** The key source an index's catalog entry names (`index.getKeySource()`): never a secret. */
export function keySourceOf(entry: CatalogEntry): KeySource {
  if (entry.provider === 'none') return { provider: 'none' };
  const out: { provider: KmsProviderName; kmsName: string; keyId?: string } = { provider: entry.provider as KmsProviderName, kmsName: entry.kmsName ?? '' };
  if (entry.keyId !== null) out.keyId = entry.keyId;
  return out;
}

/** `rotateKey`'s argument: exactly one of `indexKey` (a checked copy, the caller wipes it) or `kmsName`. */
export function checkRotateKeyParams(params: unknown): { key: Buffer } | { kmsName: string } {
  if (!isPlainObject(params)) throw new ValidationError('Pass { indexKey } or { kmsName }: the new key source.', { path: 'params' });
  const { indexKey, kmsName } = params as { indexKey?: unknown; kmsName?: unknown };
  for (const key of Object.keys(params)) {
    if (key !== 'indexKey' && key !== 'kmsName') throw new ValidationError(`rotateKey takes { indexKey } or { kmsName }, not ${key}.`, { path: key });
  }
  if ((indexKey === undefined) === (kmsName === undefined)) {
    throw new ValidationError('Pass exactly one of indexKey (a new 32-byte key) or kmsName (a slot of new Client({ kms })).', { path: 'indexKey' });
  }
  if (kmsName !== undefined) {
    if (typeof kmsName !== 'string' || kmsName.length === 0)
      throw new ValidationError('kmsName must be the name of a slot in new Client({ kms }).', { path: 'kmsName' });
    return { kmsName };
  }
  return { key: checkIndexKey(indexKey) };
}

/**
 * Wraps `kek` with KMS slot `kmsName` under the context of (`indexName`,
 * `indexId`, `dekGeneration`), and returns the key source a format-3 entry
 * records. One KMS call; the provider is closed afterwards.
 */
async function kmsSource(
  registry: KmsRegistry | undefined,
  kmsName: string,
  kek: Uint8Array,
  indexName: string,
  indexId: Uint8Array,
  dekGeneration: number,
): Promise<KeySourceRecord> {
  const slot = resolveSlot(registry, kmsName);
  const provider = await openProvider(kmsName, slot);
  try {
    const context = kmsContext({ format: KMS_FORMAT_VERSION, indexName, indexId, dekGeneration });
    const { wrapped, keyId } = await provider.wrap(kek, context);
    return {
      provider: slot.provider,
      keyId: keyId ?? provider.source.keyId ?? null,
      kmsName,
      region: provider.source.region ?? null,
      wrappedKek: new Uint8Array(wrapped),
    };
  } finally {
    await provider.close();
  }
}

/**
 * The entry `rotateKey` writes: the held DEK (same index id and generation)
 * under the new key source, and the new KEK for the handle to hold. For
 * `{ kmsName }` a random KEK is wrapped by that slot first.
 */
export async function rotatedKeyEntry(
  registry: KmsRegistry | undefined,
  indexName: string,
  root: RootKeys,
  choice: { key: Buffer } | { kmsName: string },
): Promise<{ entry: CatalogEntry; kek: Buffer }> {
  const { indexId, dekGeneration, format } = root.entry;
  // A signed index stays signed: the flag (and the users id) is bound into the wrap's AAD, and users and signatures do not change.
  const target = { indexId, dek: root.dek, dekGeneration, signed: root.entry.signed === true, usersId: usersIdOf(root.entry) };
  if ('key' in choice) {
    const kek = Buffer.from(choice.key);
    // Format 1 derives its subkeys its own way: it stays format 1 (rotateDataKey upgrades it).
    return { entry: sealEnvelope(kek, indexName, { provider: 'none', keyId: null }, { ...target, format: format === 1 ? 1 : FORMAT_VERSION }), kek };
  }
  if (format === 1) {
    throw new NotSupportedError(
      `Index "${indexName}" has storage format 1, which cannot record a KMS key source. Run index.rotateDataKey() first (it rewrites the index in the current format), then rotateKey({ kmsName }).`,
    );
  }
  const kek = randomBytes(32);
  try {
    const source = await kmsSource(registry, choice.kmsName, kek, indexName, indexId, dekGeneration);
    return { entry: sealEnvelope(kek, indexName, source, target), kek };
  } catch (error) {
    kek.fill(0);
    throw error;
  }
}

/** What `rotateDataKey` needs from keys/: the new generation's entry wraps the new DEK under the held KEK. */
export function rotationKeys(registry: KmsRegistry | undefined, indexName: string): RotationKeys {
  return {
    random: (bytes) => randomBytes(bytes),
    // A signed index's new generation also gets the root's admin and record-auth keys of the new DEK.
    deriveKeys: (dek, indexId, format, signed) => ({ ...deriveIndexKeys(dek, indexId, format), ...(signed ? rootUserKeys(dek, indexId) : {}) }),
    async entryFor(root, targetId, dek, dekGeneration) {
      // The new index id, the same users id: every user's wrap and slot stay valid (keys/users.ts).
      const target = { indexId: targetId, dek, dekGeneration, signed: root.entry.signed === true, usersId: usersIdOf(root.entry) };
      if (root.entry.provider === 'none') return sealEnvelope(root.kek, indexName, { provider: 'none', keyId: null }, target);
      const slotName = root.entry.kmsName ?? '';
      const slot = resolveSlot(registry, slotName);
      if (slot.provider !== root.entry.provider) {
        throw new KmsError(
          `KMS slot "${slotName}" is a ${slot.provider} slot, but index "${indexName}" is held by a ${root.entry.provider} slot of that name.`,
        );
      }
      return sealEnvelope(root.kek, indexName, await kmsSource(registry, slotName, root.kek, indexName, targetId, dekGeneration), target);
    },
  };
}
