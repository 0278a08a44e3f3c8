/**
 * Encrypted values: records and change-log entries, msgpack inside AES-256-GCM
 * (the manifest is in manifest.ts).
 * Each value starts with a format byte; AAD binds index id, the LevelDB key
 * (record HMAC), the field, and the commit sequence, so values cannot be moved
 * between indexes or records, or replayed from an older commit unnoticed.
 */
import { Packr } from 'msgpackr';
import { open, seal } from '../crypto/aead.js';
import { hmacMany, openMany, sealMany } from '../crypto/bulk.js';
import { frame, lengthPrefix, u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';

export const VALUE_VERSION = 1;
// Plain maps, no shared structures: every value decodes on its own.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export const pack = (value: unknown): Buffer => packr.pack(value);
export const unpack = (bytes: Uint8Array): unknown => packr.unpack(bytes);

/** What a record holds; all of it is secret. */
export interface RecordBody {
  id: string;
  key: number;
  /** Raw little-endian float32 bytes. */
  vector: Uint8Array;
  metadata?: unknown;
  contents?: string | Uint8Array;
}

/** Record keys are HMAC-SHA256 outputs. */
const HKEY_BYTES = 32;
const RECORD_HEADER = 1 + 8;

/** The LevelDB key suffix of each record: HMAC(ids key, id), so ids never reach the disk. */
export function hashIds(key: Uint8Array, ids: string[]): Buffer[] {
  const macs = hmacMany(key, { parts: ids });
  return ids.map((_, i) => macs.subarray(i * 32, (i + 1) * 32));
}

/**
 * Each record's term in the manifest digest: HMAC(manifest key, frame('live',
 * hkey, seq)); the digest is the XOR of the terms of all live records.
 * `seqs` is one number for all or one per record.
 */
export function liveTags(key: Uint8Array, hkeys: Uint8Array[], seqs: number | number[]): Buffer {
  checkHkeys(hkeys);
  const head = Buffer.concat([frame('live'), lengthPrefix(HKEY_BYTES)]);
  if (typeof seqs === 'number') return hmacMany(key, { head, parts: hkeys, tail: frame(u64(seqs)) });
  return hmacMany(key, { head, parts: hkeys.map((hkey, i) => Buffer.concat([hkey, frame(u64(seqs[i]!))])) });
}

function checkHkeys(hkeys: Uint8Array[]): void {
  if (hkeys.some((h) => h.byteLength !== HKEY_BYTES)) throw new IntegrityError('A record key of the index has the wrong length.');
}

/**
 * Layout: version(1) || seq(8, big-endian) || sealed body, AAD =
 * frame('record', index id, hkey, seq). All records of one commit share `seq`.
 */
export function sealRecords(key: Uint8Array, indexId: Uint8Array, hkeys: Uint8Array[], seq: number, bodies: RecordBody[]): Buffer[] {
  checkHkeys(hkeys);
  const aad = { head: Buffer.concat([frame('record', indexId), lengthPrefix(HKEY_BYTES)]), parts: hkeys, tail: frame(u64(seq)) };
  return sealMany(key, bodies.map(pack), aad, Buffer.concat([Buffer.of(VALUE_VERSION), u64(seq)]));
}

function recordSeq(value: Uint8Array): number {
  if (value.byteLength < RECORD_HEADER || value[0] !== VALUE_VERSION) throw new IntegrityError('A record of the index has an unknown format or was truncated.');
  return Number(Buffer.from(value.buffer, value.byteOffset, value.byteLength).readBigUInt64BE(1));
}

/** Authenticates and decodes records (the seq in each header is bound by its AAD); any failure is an IntegrityError. */
export function openRecords(key: Uint8Array, indexId: Uint8Array, hkeys: Uint8Array[], values: Uint8Array[]): { seq: number; body: RecordBody }[] {
  checkHkeys(hkeys);
  const seqs = values.map(recordSeq);
  const aad = { head: frame('record', indexId), parts: hkeys.map((hkey, i) => frame(hkey, u64(seqs[i]!))) };
  const plain = openMany(key, values, RECORD_HEADER, aad, () => 'A record of the index');
  return plain.map((bytes, i) => ({ seq: seqs[i]!, body: unpack(bytes) as RecordBody }));
}

/** What one commit changed, so an open can replay commits made after the last snapshot. */
export interface ChangeEntry {
  upserted: string[];
  deleted: string[];
}

export function sealChange(key: Uint8Array, indexId: Uint8Array, seq: number, change: ChangeEntry): Buffer {
  const counts = Buffer.alloc(8);
  counts.writeUInt32BE(change.upserted.length, 0);
  counts.writeUInt32BE(change.deleted.length, 4);
  return seal(key, Buffer.concat([counts, encodeIdList([...change.upserted, ...change.deleted])]), frame('change', indexId, u64(seq)));
}

export function openChange(key: Uint8Array, indexId: Uint8Array, seq: number, value: Uint8Array): ChangeEntry {
  const bytes = open(key, value, frame('change', indexId, u64(seq)), 'A change-log entry of the index');
  try {
    const upserted = bytes.readUInt32BE(0);
    const ids = decodeIdList(bytes.subarray(8), upserted + bytes.readUInt32BE(4));
    return { upserted: ids.slice(0, upserted), deleted: ids.slice(upserted) };
  } catch (cause) {
    throw new IntegrityError('A change-log entry of the index is malformed.', { cause });
  }
}

/**
 * A list of ids as u32 lengths (UTF-16 units) || UTF-8 of the joined ids: one
 * encode and one decode for the whole list (ids are well-formed strings, so
 * UTF-8 round-trips them). msgpack took ~40 ms for 50k ids in one piece.
 */
export function encodeIdList(ids: string[]): Buffer {
  const lengths = new Uint32Array(ids.length);
  for (let i = 0; i < ids.length; i++) lengths[i] = ids[i]!.length; // a loop: Uint32Array.from with a map function took ~10 ms per 50k
  return Buffer.concat([Buffer.from(lengths.buffer, lengths.byteOffset, lengths.byteLength), Buffer.from(ids.join(''), 'utf8')]);
}

/** Decodes `encodeIdList` bytes holding `n` ids; throws on any length mismatch. */
export function decodeIdList(bytes: Buffer, n: number): string[] {
  if (bytes.byteLength < 4 * n) throw new Error('id list is truncated');
  const lengths = new Uint32Array(n);
  new Uint8Array(lengths.buffer).set(bytes.subarray(0, 4 * n)); // copied: the offset may not be 4-byte aligned
  const joined = bytes.toString('utf8', 4 * n);
  const ids = new Array<string>(n);
  let from = 0;
  for (let i = 0; i < n; i++) ids[i] = joined.slice(from, (from += lengths[i]!));
  if (from !== joined.length) throw new Error('id list lengths do not match its bytes');
  return ids;
}
