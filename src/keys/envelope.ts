/**
 * The per-index key envelope, stored in the catalog beside the index name:
 * a verifier of the KEK (HMAC under an HKDF-salted key, never the key or a
 * plain hash) and the random DEK wrapped under the KEK with AES-256-GCM. The
 * wrap's AAD binds format version, index name and id, DEK generation and the
 * key provider, so no field can be swapped or edited unnoticed.
 *
 * Formats: 1 (the first release) kept a plaintext `createdAt` in the entry and
 * used the manifest subkey also for the commit head and the digest terms; 2
 * (new indexes) has no `createdAt` and one subkey per purpose. Both are read.
 * Derived keys that only this module uses are wiped after use.
 */
import { randomBytes } from 'node:crypto';
import { KEY_BYTES, open, seal } from '../crypto/aead.js';
import { constantTimeEqual, deriveKey, frame, hmac, u64 } from '../crypto/kdf.js';
import { IntegrityError, InvalidKeyError } from '../errors.js';

/** The catalog format new indexes are written with. */
export const FORMAT_VERSION = 2;
/** Every catalog format this code reads. */
const READABLE_FORMATS: readonly number[] = [1, 2];

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
  /** Format 1 only: creation time in the clear (milliseconds). Never written now; ignored when read. */
  createdAt?: number;
}

function verifierOf(kek: Uint8Array, salt: Uint8Array, indexName: string, indexId: Uint8Array): Buffer {
  const key = deriveKey(kek, salt, 'verifier');
  try {
    return hmac(key, frame('verifier', indexName, indexId));
  } finally {
    key.fill(0);
  }
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
  const wrapKey = deriveKey(kek, salt, 'wrap');
  let wrappedDek: Buffer;
  try {
    wrappedDek = seal(wrapKey, dek, wrapAad(base, indexName));
  } finally {
    wrapKey.fill(0);
  }
  const entry: CatalogEntry = { ...base, salt, verifier: verifierOf(kek, salt, indexName, indexId), wrappedDek };
  return { entry, dek };
}

/**
 * Checks the KEK against the verifier (constant time) before touching
 * anything else, then unwraps the DEK. A verifier mismatch is a wrong key
 * (InvalidKeyError) unless the wrapped DEK authenticates under the key: then
 * the key is right and the verifier was altered (IntegrityError). The caller
 * owns the returned DEK and wipes it once its subkeys are derived.
 */
export function openEnvelope(kek: Uint8Array, indexName: string, entry: CatalogEntry): Buffer {
  if (!READABLE_FORMATS.includes(entry.format)) {
    throw new IntegrityError(
      `Index "${indexName}" has storage format ${entry.format}; this vecvault reads formats ${READABLE_FORMATS.join(' and ')}. Upgrade vecvault.`,
    );
  }
  const what = `The key envelope of index "${indexName}"`;
  const wrapKey = deriveKey(kek, entry.salt, 'wrap');
  try {
    if (!constantTimeEqual(verifierOf(kek, entry.salt, indexName, entry.indexId), entry.verifier)) {
      let opened: Buffer | undefined;
      try {
        opened = open(wrapKey, entry.wrappedDek, wrapAad(entry, indexName), what);
      } catch {
        // The wrap does not open either: a wrong key (or both fields altered, which looks the same).
      }
      if (opened === undefined) throw new InvalidKeyError(`The key does not open index "${indexName}". Pass the key the index was created with.`);
      opened.fill(0);
      throw new IntegrityError(
        `The key verifier of index "${indexName}" was altered (the key itself opens the index's data key). Restore the store from a backup.`,
      );
    }
    const dek = open(wrapKey, entry.wrappedDek, wrapAad(entry, indexName), what);
    if (dek.byteLength !== KEY_BYTES) {
      dek.fill(0);
      throw new IntegrityError(`The key envelope of index "${indexName}" is malformed.`);
    }
    return dek;
  } finally {
    wrapKey.fill(0);
  }
}

/** Labelled subkeys of the DEK, one per purpose. */
export interface IndexKeys {
  /** AES-256-GCM: records and change-log entries. */
  records: Buffer;
  /** AES-256-GCM: snapshot chunks. */
  graph: Buffer;
  /** HMAC: record keys (ids never reach the disk). */
  ids: Buffer;
  /** AES-256-GCM: the manifest. */
  manifest: Buffer;
  /** HMAC: the manifest digest's terms. Format 1: the manifest key itself. */
  digest: Buffer;
  /** HMAC: the commit-head file. Format 1: the manifest key itself. */
  head: Buffer;
}

/**
 * The subkeys of an index whose catalog entry has `format` (the newest by
 * default). Format 1 used the manifest key as the digest and head MAC key
 * too; format 2 derives one key per purpose.
 */
export function deriveIndexKeys(dek: Uint8Array, indexId: Uint8Array, format: number = FORMAT_VERSION): IndexKeys {
  const manifest = deriveKey(dek, indexId, 'manifest');
  const own = format >= 2;
  return {
    records: deriveKey(dek, indexId, 'records'),
    graph: deriveKey(dek, indexId, 'graph'),
    ids: deriveKey(dek, indexId, 'ids'),
    manifest,
    digest: own ? deriveKey(dek, indexId, 'digest') : manifest,
    head: own ? deriveKey(dek, indexId, 'head') : manifest,
  };
}

/** Overwrites every subkey with zeros (an index's keys once it is closed or deleted). */
export function wipeIndexKeys(keys: IndexKeys): void {
  for (const key of Object.values(keys)) key.fill(0);
}
