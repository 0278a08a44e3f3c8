/**
 * Encrypted values: records and change-log entries, msgpack inside AES-256-GCM
 * (the manifest is in manifest.ts).
 * Records start with a format byte; AAD binds index id and the LevelDB key
 * (record HMAC), and the commit sequence is authenticated too (inside the
 * ciphertext since record format 2, in the AAD before), so values cannot be
 * moved between indexes or records, or replayed from an older commit unnoticed.
 */
import { open, seal } from '../crypto/aead.js';
import { hmacMany, hmacManyPaired, openMany, sealMany } from '../crypto/bulk.js';
import { constantTimeEqual, frame, lengthPrefix, u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';
import { pack, unpack } from '../util/msgpack.js';

/** Version byte of the manifest (manifest.ts). */
export const VALUE_VERSION = 1;
/** Record format 1 (read only): seq in the clear header, bound by the AAD. */
const RECORD_V1 = 1;
/** Record format 2 (written): seq inside the ciphertext, so records of one commit are not linkable by their bytes. */
const RECORD_V2 = 2;
/** Record format 3 (written in signed indexes): format 2 with a writer tag, `3 || tag (32) || seal`. */
const RECORD_V3 = 3;
const TAG_BYTES = 32;
const RECORD_V3_HEADER = 1 + TAG_BYTES;

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
const RECORD_V1_HEADER = 1 + 8;
const RECORD_V2_HEADER = 1;
const SEQ_BYTES = 8;

/** The LevelDB key suffix of each record: HMAC(ids key, id), so ids never reach the disk. */
export function hashIds(key: Uint8Array, ids: string[]): Buffer[] {
  const macs = hmacMany(key, { parts: ids });
  return ids.map((_, i) => macs.subarray(i * 32, (i + 1) * 32));
}

/**
 * Each record's term in the manifest digest: HMAC(digest key, frame('live',
 * hkey, seq)); the digest is the XOR of the terms of all live records. (The
 * digest key is the manifest key itself in catalog format 1.)
 * `seqs` is one number for all or one per record.
 */
export function liveTags(key: Uint8Array, hkeys: Uint8Array[], seqs: number | number[]): Buffer {
  return hmacMany(key, liveTagMessage(hkeys, seqs));
}

function liveTagMessage(hkeys: Uint8Array[], seqs: number | number[]): { head: Uint8Array; parts: Uint8Array[]; tail?: Uint8Array } {
  checkHkeys(hkeys);
  const head = Buffer.concat([frame('live'), lengthPrefix(HKEY_BYTES)]);
  if (typeof seqs === 'number') return { head, parts: hkeys, tail: frame(u64(seqs)) };
  return { head, parts: hkeys.map((hkey, i) => Buffer.concat([hkey, frame(u64(seqs[i]!))])) };
}

function checkHkeys(hkeys: Uint8Array[]): void {
  if (hkeys.some((h) => h.byteLength !== HKEY_BYTES)) throw new IntegrityError('A record key of the index has the wrong length.');
}

/** The AAD of a format-2 record, `frame('record/v2', index id, hkey)`, as head || hkey. */
function v2AadHead(indexId: Uint8Array): Buffer {
  return Buffer.concat([frame('record/v2', indexId), lengthPrefix(HKEY_BYTES)]);
}

/**
 * Record format 2: version(1) = 2 || seal(seq (u64, big-endian) || msgpack
 * body), AAD = frame('record/v2', index id, hkey). All records of one commit
 * share `seq`, which is now only inside the ciphertext (format 1 kept it in
 * the clear header, which showed which records were written together).
 */
export function sealRecords(key: Uint8Array, indexId: Uint8Array, hkeys: Uint8Array[], seq: number, bodies: RecordBody[], recordAuth?: Uint8Array): Buffer[] {
  const sealed = sealUntagged(key, indexId, hkeys, seq, bodies, recordAuth !== undefined);
  if (recordAuth !== undefined) putTags(sealed, recordTags(recordAuth, indexId, hkeys, sealed));
  return sealed;
}

/**
 * `sealRecords` (the same bytes) with the event loop let run: the AES-GCM runs `slice` records at a time with
 * `between()` awaited in between; the writer tags of all of them are one call in place (~1 µs a record: an upsert
 * passes 1,024 records at a time; on the libuv pool its HMAC batches made it ~16 % slower, docs/performance.md).
 */
export async function sealRecordsAsync(
  key: Uint8Array,
  indexId: Uint8Array,
  hkeys: Uint8Array[],
  seq: number,
  bodies: RecordBody[],
  recordAuth: Uint8Array | undefined,
  between: () => Promise<void>,
  slice = 256,
): Promise<Buffer[]> {
  if (hkeys.length !== bodies.length) throw new RangeError('one record key per body');
  const sealed: Buffer[] = [];
  for (let start = 0; start < bodies.length; start += slice) {
    if (start > 0) await between();
    const part = sealUntagged(key, indexId, hkeys.slice(start, start + slice), seq, bodies.slice(start, start + slice), recordAuth !== undefined);
    for (const value of part) sealed.push(value);
  }
  if (recordAuth !== undefined) putTags(sealed, recordTags(recordAuth, indexId, hkeys, sealed));
  return sealed;
}

/** Format 2 records, or format 3 ones with a zero tag still to fill in (`tagged`). */
function sealUntagged(key: Uint8Array, indexId: Uint8Array, hkeys: Uint8Array[], seq: number, bodies: RecordBody[], tagged: boolean): Buffer[] {
  checkHkeys(hkeys);
  const packed = bodies.map(pack);
  // seq || body for every record, in one allocation.
  const all = Buffer.allocUnsafe(packed.reduce((n, p) => n + SEQ_BYTES + p.byteLength, 0));
  let at = 0;
  const seq64 = BigInt(seq);
  const plaintexts = packed.map((p) => {
    const from = at;
    all.writeBigUInt64BE(seq64, at);
    all.set(p, at + SEQ_BYTES);
    at += SEQ_BYTES + p.byteLength;
    return all.subarray(from, at);
  });
  const prefix = tagged ? Buffer.concat([Buffer.of(RECORD_V3), Buffer.alloc(TAG_BYTES)]) : Buffer.of(RECORD_V2);
  for (const p of packed) p.fill(0); // msgpackr's buffer, which later packs share
  const sealed = sealMany(key, plaintexts, { head: v2AadHead(indexId), parts: hkeys }, prefix);
  all.fill(0); // the plaintext copy: vectors, metadata, contents
  return sealed;
}

/** Writes each record's writer tag (from `recordTags`) into its header. */
function putTags(sealed: Buffer[], tags: Buffer): void {
  sealed.forEach((value, i) => value.set(tags.subarray(i * TAG_BYTES, (i + 1) * TAG_BYTES), 1));
}

/**
 * Record format 3's writer tag: HMAC(record-auth key, frame('record-auth', index id) || hkey || seal).
 * The record-auth key is held by the root and writers only (keys/users.ts): a reader holds the
 * records key and can re-seal a record, but cannot tag it.
 */
function recordTags(recordAuth: Uint8Array, indexId: Uint8Array, hkeys: Uint8Array[], values: Uint8Array[]): Buffer {
  return hmacManyPaired(recordAuth, recordTagMessage(indexId, hkeys), values, RECORD_V3_HEADER); // hkey || seal, fed without a copy
}

function recordTagMessage(indexId: Uint8Array, hkeys: Uint8Array[]): { head: Buffer; parts: Uint8Array[] } {
  return { head: Buffer.concat([frame('record-auth', indexId), lengthPrefix(HKEY_BYTES)]), parts: hkeys };
}

/** Every value must be format 3 with a valid writer tag (signed indexes, read by the root or a writer); else IntegrityError. */
export function checkRecordTags(recordAuth: Uint8Array, indexId: Uint8Array, hkeys: Uint8Array[], values: Uint8Array[]): void {
  checkHkeys(hkeys);
  if (values.some((value) => value.byteLength < RECORD_V3_HEADER || value[0] !== RECORD_V3)) {
    throw new IntegrityError(
      'A record of the index is not tagged by a writer (it was written or re-sealed without the write key). Restore the store from a backup.',
    );
  }
  const tags = recordTags(recordAuth, indexId, hkeys, values);
  values.forEach((value, i) => {
    if (!constantTimeEqual(tags.subarray(i * TAG_BYTES, (i + 1) * TAG_BYTES), value.subarray(1, RECORD_V3_HEADER))) {
      throw new IntegrityError(
        'A record of the index carries a wrong writer tag (it was forged by a key holder without write permission, or damaged). Restore the store from a backup.',
      );
    }
  });
}

/**
 * Authenticates and decodes records of either format (format 1: the seq in
 * the header is bound by the AAD; format 2: the seq is inside the
 * ciphertext). Any failure is an IntegrityError. Callers compare each `seq`
 * with what the manifest or memory expects.
 */
export function openRecords(key: Uint8Array, indexId: Uint8Array, hkeys: Uint8Array[], values: Uint8Array[]): { seq: number; body: RecordBody }[] {
  checkHkeys(hkeys);
  const out = new Array<{ seq: number; body: RecordBody }>(values.length);
  const v1: number[] = [];
  const v2: number[] = [];
  const v3: number[] = [];
  values.forEach((value, i) => {
    if (value.byteLength >= RECORD_V1_HEADER && value[0] === RECORD_V1) v1.push(i);
    else if (value.byteLength >= RECORD_V2_HEADER && value[0] === RECORD_V2) v2.push(i);
    else if (value.byteLength >= RECORD_V3_HEADER && value[0] === RECORD_V3) v3.push(i);
    else throw new IntegrityError('A record of the index has an unknown format or was truncated.');
  });
  const what = () => 'A record of the index';
  if (v1.length > 0) {
    const seqs = v1.map((i) => Number(Buffer.from(values[i]!.buffer, values[i]!.byteOffset, values[i]!.byteLength).readBigUInt64BE(1)));
    const aad = { head: frame('record', indexId), parts: v1.map((i, j) => frame(hkeys[i]!, u64(seqs[j]!))) };
    const plain = openMany(
      key,
      v1.map((i) => values[i]!),
      RECORD_V1_HEADER,
      aad,
      what,
    );
    v1.forEach((i, j) => (out[i] = { seq: seqs[j]!, body: unpack(plain[j]!) as RecordBody }));
  }
  // Formats 2 and 3 differ only in the header the seal follows (format 3's tag is checked by the caller, who may hold its key).
  for (const [group, header] of [
    [v2, RECORD_V2_HEADER],
    [v3, RECORD_V3_HEADER],
  ] as const) {
    if (group.length === 0) continue;
    const aad = { head: v2AadHead(indexId), parts: group.map((i) => hkeys[i]!) };
    const plain = openMany(
      key,
      group.map((i) => values[i]!),
      header,
      aad,
      what,
    );
    group.forEach((i, j) => {
      const bytes = plain[j]!;
      if (bytes.byteLength < SEQ_BYTES) throw new IntegrityError('A record of the index is malformed.');
      out[i] = { seq: Number(bytes.readBigUInt64BE(0)), body: unpack(bytes.subarray(SEQ_BYTES)) as RecordBody };
    });
  }
  return out;
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

/**
 * `encodeIdList` as parts (the lengths, then the UTF-8 of `slice` ids at a
 * time), with `between()` awaited between slices: at 1M ids the join, its
 * UTF-8 encoding and the concatenation held the event loop for ~200 ms.
 * Ids are well-formed Unicode (no lone surrogates), so encoding the slices
 * apart gives the same bytes as encoding their concatenation.
 */
export async function encodeIdListSliced(ids: string[], between: () => Promise<void>, slice = 16_384): Promise<Buffer[]> {
  const lengths = new Uint32Array(ids.length);
  const parts: Buffer[] = [Buffer.from(lengths.buffer, lengths.byteOffset, lengths.byteLength)];
  for (let start = 0; start < ids.length; start += slice) {
    if (start > 0) await between();
    const end = Math.min(ids.length, start + slice);
    for (let i = start; i < end; i++) lengths[i] = ids[i]!.length;
    parts.push(Buffer.from(ids.slice(start, end).join(''), 'utf8'));
  }
  return parts;
}

/** `Buffer.concat(parts)`, copied a megabyte at a time with `between()` awaited in between (one copy of a 1M-record table's ~27 MB into fresh pages took tens of ms). */
export async function concatSliced(parts: readonly Uint8Array[], between: () => Promise<void>, step = 1 << 20): Promise<Buffer> {
  let total = 0;
  for (const part of parts) total += part.byteLength;
  const out = Buffer.allocUnsafeSlow(total);
  let at = 0;
  let sinceYield = 0;
  for (const part of parts) {
    for (let from = 0; from < part.byteLength; from += step) {
      const piece = part.subarray(from, Math.min(part.byteLength, from + step));
      out.set(piece, at);
      at += piece.byteLength;
      sinceYield += piece.byteLength;
      if (sinceYield >= step) {
        sinceYield = 0;
        await between();
      }
    }
  }
  return out;
}

/** Decodes `encodeIdList` bytes holding `n` ids; throws on any length mismatch. */
export function decodeIdList(bytes: Buffer, n: number): string[] {
  const { ids, lengths, joined } = startIdList(bytes, n);
  let from = 0;
  for (let i = 0; i < n; i++) ids[i] = joined.slice(from, (from += lengths[i]!));
  if (from !== joined.length) throw new Error('id list lengths do not match its bytes');
  return ids;
}

function startIdList(bytes: Buffer, n: number): { ids: string[]; lengths: Uint32Array; joined: string } {
  const { lengths, utf8 } = splitIdList(bytes, n);
  return { ids: new Array<string>(n), lengths, joined: Buffer.from(utf8.buffer, utf8.byteOffset, utf8.byteLength).toString('utf8') };
}

/** An id list as stored (see encodeIdList), not cut into strings: each id's length in UTF-16 units, and the UTF-8 of them all joined. */
export interface IdBytes {
  lengths: Uint32Array;
  utf8: Uint8Array;
}

/** The two parts of `encodeIdList` bytes holding `n` ids (the lengths copied, the UTF-8 a view); no string is made. */
export function splitIdList(bytes: Uint8Array, n: number): IdBytes {
  if (bytes.byteLength < 4 * n) throw new Error('id list is truncated');
  const lengths = new Uint32Array(n);
  new Uint8Array(lengths.buffer).set(bytes.subarray(0, 4 * n)); // copied: the offset may not be 4-byte aligned
  return { lengths, utf8: bytes.subarray(4 * n) };
}
