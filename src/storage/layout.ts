/**
 * Where things live in LevelDB. Index names are visible (documented); all
 * else sits under the index's random 16-byte id:
 *   'C' name                      catalog entry (key envelope, plaintext but secret-free)
 *   'I' id 'M'                    encrypted manifest (config, counters, record digest)
 *   'I' id 'R' HMAC(idKey, id)    encrypted record (id, vector, metadata, contents)
 *   'I' id 'S' gen(8) sec(1) chunk(4)  encrypted snapshot chunks (sec: 'G' graph, 'T' table)
 *   'I' id 'L' seq(8)             encrypted change log since the last snapshot
 *   'I' id 'A'                    users: the root's sealed signing key (per-user keys, keys/users.ts)
 *   'I' id 'D' HMAC(dirKey, userId)   users: the root's sealed directory entry of one user
 *   'I' id 'U' slot(32)           users: one user's entry (its key's wrap and grants), slot from the user key and id
 *   'I' id 'P'                    a data-key rotation in progress: target index id (clear) || sealed new DEK and cursor
 *   'E' random(16)                a pending erasure (erasure.ts): key ranges whose replaced or deleted values
 *                                 must still be erased from LevelDB's files (key names only, nothing secret)
 */
import type { RangeOptions } from './kv-store.js';

const CATALOG = 0x43; // 'C'
const INDEX = 0x49; // 'I'
const ERASURE = 0x45; // 'E'
export const MANIFEST = 0x4d; // 'M'
export const RECORD = 0x52; // 'R'
export const SNAPSHOT = 0x53; // 'S'
export const CHANGELOG = 0x4c; // 'L'
export const USERS_ADMIN = 0x41; // 'A'
export const USER_DIR = 0x44; // 'D'
export const USER = 0x55; // 'U'
export const ROTATION = 0x50; // 'P'

export function catalogKey(indexName: string): Buffer {
  return Buffer.concat([Buffer.of(CATALOG), Buffer.from(indexName, 'utf8')]);
}

export function catalogRange(): RangeOptions {
  return { gte: Buffer.of(CATALOG), lt: Buffer.of(CATALOG + 1) };
}

export function indexNameOfCatalogKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset + 1, key.byteLength - 1).toString('utf8');
}

export function indexKey(indexId: Uint8Array, kind: number, ...rest: Uint8Array[]): Buffer {
  return Buffer.concat([Buffer.of(INDEX), indexId, Buffer.of(kind), ...rest]);
}

/**
 * `indexKey(indexId, kind, suffix)` for many suffixes at once, as views into one buffer: an upsert makes one per
 * record, and indexKey's concat cost ~4 short-lived objects each.
 */
export function indexKeys(indexId: Uint8Array, kind: number, suffixes: Uint8Array[]): Buffer[] {
  const prefix = indexKey(indexId, kind);
  const all = Buffer.allocUnsafeSlow(suffixes.reduce((n, s) => n + prefix.length + s.length, 0));
  let at = 0;
  return suffixes.map((suffix) => {
    const from = at;
    all.set(prefix, at);
    all.set(suffix, at + prefix.length);
    at += prefix.length + suffix.length;
    return all.subarray(from, at);
  });
}

/** Every key of one index (all kinds). */
export function indexRange(indexId: Uint8Array): RangeOptions {
  return { gte: Buffer.concat([Buffer.of(INDEX), indexId]), lt: Buffer.concat([Buffer.of(INDEX), indexId, Buffer.of(0xff)]) };
}

/** Every key of one kind in one index. */
export function kindRange(indexId: Uint8Array, kind: number): RangeOptions {
  return { gte: indexKey(indexId, kind), lt: indexKey(indexId, kind + 1) };
}

/** The suffix after 'I' id kind. */
export function keySuffix(key: Uint8Array): Uint8Array {
  return key.subarray(1 + 16 + 1);
}

export function erasureKey(id: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(ERASURE), id]);
}

/** Every pending erasure. */
export function erasureRange(): RangeOptions {
  return { gte: Buffer.of(ERASURE), lt: Buffer.of(ERASURE + 1) };
}
