/**
 * The per-index key envelope, stored in the catalog beside the index name:
 * a verifier of the KEK (HMAC under an HKDF-salted key, never the key or a
 * plain hash) and the random DEK wrapped under the KEK with AES-256-GCM. The
 * wrap's AAD binds format version, index name and id, DEK generation and the
 * key provider, so no field can be swapped or edited unnoticed.
 */
import { randomBytes } from 'node:crypto';
import { KEY_BYTES, open, seal } from '../crypto/aead.js';
import { constantTimeEqual, deriveKey, frame, hmac, u64 } from '../crypto/kdf.js';
import { IntegrityError, InvalidKeyError } from '../errors.js';

export const FORMAT_VERSION = 1;

/** Who holds the KEK: `none` = the application passes it in; KMS providers later. */
export interface KeyProvider {
  provider: 'none' | string;
  /** KMS key id / slot; null for `none`. */
  keyId: string | null;
}

export interface CatalogEntry extends KeyProvider {
  format: number;
  indexId: Uint8Array;
  salt: Uint8Array;
  verifier: Uint8Array;
  dekGeneration: number;
  wrappedDek: Uint8Array;
  createdAt: number;
}

function verifierOf(kek: Uint8Array, salt: Uint8Array, indexName: string, indexId: Uint8Array): Buffer {
  return hmac(deriveKey(kek, salt, 'verifier'), frame('verifier', indexName, indexId));
}

function wrapAad(entry: Omit<CatalogEntry, 'wrappedDek' | 'verifier' | 'createdAt' | 'salt'>, indexName: string): Buffer {
  return frame('dek', u64(entry.format), indexName, entry.indexId, u64(entry.dekGeneration), entry.provider, entry.keyId ?? '');
}

/** A fresh index: random id, salt and DEK; returns the entry to store and the DEK to use. */
export function createEnvelope(kek: Uint8Array, indexName: string, provider: KeyProvider): { entry: CatalogEntry; dek: Buffer } {
  const indexId = randomBytes(16);
  const salt = randomBytes(32);
  const dek = randomBytes(KEY_BYTES);
  const base = { format: FORMAT_VERSION, indexId, dekGeneration: 1, ...provider };
  const wrappedDek = seal(deriveKey(kek, salt, 'wrap'), dek, wrapAad(base, indexName));
  const entry: CatalogEntry = { ...base, salt, verifier: verifierOf(kek, salt, indexName, indexId), wrappedDek, createdAt: Date.now() };
  return { entry, dek };
}

/**
 * Checks the KEK against the verifier (constant time) before touching
 * anything else, then unwraps the DEK.
 */
export function openEnvelope(kek: Uint8Array, indexName: string, entry: CatalogEntry): Buffer {
  if (entry.format !== FORMAT_VERSION) {
    throw new IntegrityError(`Index "${indexName}" has storage format ${entry.format}; this vecvault reads format ${FORMAT_VERSION}. Upgrade vecvault.`);
  }
  if (!constantTimeEqual(verifierOf(kek, entry.salt, indexName, entry.indexId), entry.verifier)) {
    throw new InvalidKeyError(`The key does not open index "${indexName}". Pass the key the index was created with.`);
  }
  const dek = open(deriveKey(kek, entry.salt, 'wrap'), entry.wrappedDek, wrapAad(entry, indexName), `The key envelope of index "${indexName}"`);
  if (dek.byteLength !== KEY_BYTES) throw new IntegrityError(`The key envelope of index "${indexName}" is malformed.`);
  return dek;
}

/** Labelled subkeys of the DEK, one per purpose. */
export interface IndexKeys {
  records: Buffer;
  graph: Buffer;
  ids: Buffer;
  manifest: Buffer;
}

export function deriveIndexKeys(dek: Uint8Array, indexId: Uint8Array): IndexKeys {
  return {
    records: deriveKey(dek, indexId, 'records'),
    graph: deriveKey(dek, indexId, 'graph'),
    ids: deriveKey(dek, indexId, 'ids'),
    manifest: deriveKey(dek, indexId, 'manifest'),
  };
}
