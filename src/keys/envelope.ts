/**
 * The per-index key envelope, stored in the catalog beside the index name:
 * a verifier of the KEK (HMAC under an HKDF-salted key, never the key or a
 * plain hash) and the random DEK wrapped under the KEK with AES-256-GCM. The
 * wrap's AAD binds format version, index name and id, DEK generation and the
 * key provider, so no field can be swapped or edited unnoticed.
 *
 * Formats: 1 (the first release) kept a plaintext `createdAt` in the entry and
 * used the manifest subkey also for the commit head and the digest terms; 2
 * (new `indexKey` indexes) has no `createdAt` and one subkey per purpose; 3
 * (new KMS-backed indexes) is 2 plus the key source: `kmsName`, `region` and
 * `wrappedKek` (the KEK as the slot's provider wrapped it), bound into the
 * DEK wrap's AAD with the provider and key id. All three are read.
 * Derived keys that only this module uses are wiped after use.
 */
import { randomBytes } from 'node:crypto';
import { KEY_BYTES, open, seal } from '../crypto/aead.js';
import { constantTimeEqual, deriveKey, frame, hmac, u64 } from '../crypto/kdf.js';
import { IntegrityError, InvalidKeyError } from '../errors.js';

/** The catalog format new `indexKey` indexes are written with. */
export const FORMAT_VERSION = 2;
/** The catalog format new KMS-backed indexes are written with (format 2 plus the key source). */
export const KMS_FORMAT_VERSION = 3;
/** Every catalog format this code reads. */
const READABLE_FORMATS: readonly number[] = [1, 2, 3];

/** Who holds the KEK, as the catalog records it: `none` = the application passes it in. Never a secret. */
export interface KeySourceRecord {
  provider: 'none' | string;
  /** The key's id at the provider (a KMS key ARN, a PKCS#11 URI, …); null for `none`. */
  keyId: string | null;
  /** Format 3: the registry slot that holds the KEK; null for `none`. */
  kmsName?: string | null;
  /** Format 3: the AWS region of the slot; null otherwise. */
  region?: string | null;
  /** Format 3: the KEK as the slot's provider wrapped it (not secret without the provider); null for `none`. */
  wrappedKek?: Uint8Array | null;
}

export interface CatalogEntry extends KeySourceRecord {
  format: number;
  indexId: Uint8Array;
  salt: Uint8Array;
  verifier: Uint8Array;
  dekGeneration: number;
  wrappedDek: Uint8Array;
  /** Format 1 only: creation time in the clear (milliseconds). Never written now; ignored when read. */
  createdAt?: number;
  /**
   * `true`: every commit's manifest is signed (Ed25519) and records carry writer tags (per-user
   * keys, keys/users.ts); the root finds the signing key in its sealed admin entry. Written for
   * indexes created since signed commits and bound into the DEK wrap's AAD, so it cannot be
   * removed without the root key. Absent: an unsigned (older) index.
   */
  signed?: true;
  /**
   * Signed indexes: the id per-user material is bound to (keys/users.ts: wraps, slots, grants,
   * directory), 16 bytes. Absent: the index id (every index until its first data-key rotation,
   * and every store written before this field). `rotateDataKey` moves the index to a new index id
   * and writes the previous users id here, so users keep their keys. Bound into the DEK wrap's
   * AAD when present.
   */
  usersId?: Uint8Array;
}

/** The id an index's per-user material is bound to: `usersId` when recorded, else the index id. */
export function usersIdOf(entry: Pick<CatalogEntry, 'indexId' | 'usersId'>): Uint8Array {
  return entry.usersId ?? entry.indexId;
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
  const fields: (Uint8Array | string)[] = [u64(entry.format), indexName, entry.indexId, u64(entry.dekGeneration), entry.provider, entry.keyId ?? ''];
  if (entry.format >= 3) fields.push(entry.kmsName ?? '', entry.region ?? '');
  // Appended only when present, so entries written before signing keep their AAD (and a stripped key breaks the wrap).
  if (entry.signed === true) fields.push('signed');
  if (entry.usersId !== undefined) fields.push('users-id', entry.usersId);
  return frame('dek', ...fields);
}

/**
 * A fresh index: random salt and DEK, under `indexId` (random unless given:
 * a KMS-backed index draws it first, because the KMS wrap's context binds
 * it); returns the entry to store and the DEK to use. A `provider` other
 * than `none` makes a format-3 entry.
 */
export function createEnvelope(
  kek: Uint8Array,
  indexName: string,
  provider: KeySourceRecord,
  indexId: Uint8Array = randomBytes(16),
  signed = false,
): { entry: CatalogEntry; dek: Buffer } {
  const dek = randomBytes(KEY_BYTES);
  return { entry: sealEnvelope(kek, indexName, provider, { indexId, dek, dekGeneration: 1, signed }), dek };
}

/** The catalog format an entry for this key source is written in (formats 2 and 3 derive the same subkeys). */
export function formatFor(source: KeySourceRecord): number {
  return source.provider === 'none' ? FORMAT_VERSION : KMS_FORMAT_VERSION;
}

/**
 * A catalog entry wrapping a given `dek` of generation `dekGeneration` under
 * `kek`, with a fresh salt and verifier: what `createEnvelope` stores, and
 * what rotation writes (`rotateKey`: same DEK, new KEK; `rotateDataKey`: new
 * DEK, index id and generation). `format` defaults to the key source's
 * (`formatFor`); a format-1 index keeps format 1 through `rotateKey`, since
 * its subkeys are derived the format-1 way.
 */
export function sealEnvelope(
  kek: Uint8Array,
  indexName: string,
  provider: KeySourceRecord,
  {
    indexId,
    dek,
    dekGeneration,
    format = formatFor(provider),
    signed = false,
    usersId,
  }: { indexId: Uint8Array; dek: Uint8Array; dekGeneration: number; format?: number; signed?: boolean; usersId?: Uint8Array },
): CatalogEntry {
  const salt = randomBytes(32);
  const source: KeySourceRecord =
    provider.provider === 'none'
      ? { provider: 'none', keyId: provider.keyId }
      : {
          provider: provider.provider,
          keyId: provider.keyId,
          kmsName: provider.kmsName ?? null,
          region: provider.region ?? null,
          wrappedKek: provider.wrappedKek ?? null,
        };
  // Format 3 records the key source even for `none` (decodeCatalogEntry wants both fields null then).
  if (format >= 3 && provider.provider === 'none') Object.assign(source, { kmsName: null, region: null, wrappedKek: null });
  const base: Omit<CatalogEntry, 'wrappedDek' | 'verifier' | 'salt'> = { format, indexId, dekGeneration, ...source };
  if (signed) base.signed = true;
  // Recorded only when it differs from the index id (after a data-key rotation): other entries stay as they were.
  if (signed && usersId !== undefined && !Buffer.from(usersId).equals(Buffer.from(indexId))) base.usersId = new Uint8Array(usersId);
  const wrapKey = deriveKey(kek, salt, 'wrap');
  let wrappedDek: Buffer;
  try {
    wrappedDek = seal(wrapKey, dek, wrapAad(base, indexName));
  } finally {
    wrapKey.fill(0);
  }
  return { ...base, salt, verifier: verifierOf(kek, salt, indexName, indexId), wrappedDek };
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
      `Index "${indexName}" has storage format ${entry.format}; this vecvault reads formats ${READABLE_FORMATS.join(', ')}. Upgrade vecvault.`,
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
  /**
   * Signed indexes only (keys/users.ts), held by the root and writers, never by readers: HMAC key
   * of the writer tag on every record, so a reader's re-sealed record does not pass.
   */
  recordAuth?: Buffer;
  /** Signed indexes, root and writers: the Ed25519 seed that signs each commit's manifest. */
  signSeed?: Buffer;
  /** Signed indexes, root only: seals the signing key and the user directory (keys/users.ts). */
  admin?: Buffer;
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
