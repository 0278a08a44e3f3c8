/**
 * Encrypted values: the manifest and records, msgpack inside AES-256-GCM.
 * Each value starts with a format byte; AAD binds index id, the LevelDB key
 * (record HMAC), the field, and the commit sequence, so values cannot be moved
 * between indexes or records, or replayed from an older commit unnoticed.
 */
import { Packr } from 'msgpackr';
import { open, seal } from '../crypto/aead.js';
import { frame, u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';

const VALUE_VERSION = 1;
// Plain maps, no shared structures: every value decodes on its own.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export const pack = (value: unknown): Buffer => packr.pack(value);
export const unpack = (bytes: Uint8Array): unknown => packr.unpack(bytes);

export interface IndexConfig {
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
}

export interface Manifest {
  /** Commits so far; every logical write increments it in the same batch. */
  counter: number;
  /** Counter behind the next engine key (spread by engineKey); keys are never reused. */
  nextKey: number;
  count: number;
  /** XOR over live records of HMAC(manifest key, hkey || seq): detects dropped or replayed records. */
  digest: Uint8Array;
  dimension: number | null;
  metric: string;
  precision: string;
  indexConfig: IndexConfig;
  /** The newest complete graph snapshot, if any. */
  snapshot: SnapshotRef | null;
}

export interface SnapshotRef {
  generation: number;
  chunks: number;
  /** Manifest counter the snapshot reflects. */
  counter: number;
}

export function sealManifest(key: Uint8Array, indexId: Uint8Array, manifest: Manifest): Buffer {
  return Buffer.concat([Buffer.of(VALUE_VERSION), seal(key, pack(manifest), frame('manifest', indexId))]);
}

export function openManifest(key: Uint8Array, indexId: Uint8Array, value: Uint8Array, indexName: string): Manifest {
  const what = `The manifest of index "${indexName}"`;
  if (value[0] !== VALUE_VERSION) throw new IntegrityError(`${what} has an unknown format.`);
  const manifest = unpack(open(key, value.subarray(1), frame('manifest', indexId), what)) as Manifest;
  manifest.digest = new Uint8Array(manifest.digest);
  return manifest;
}

/** What a record holds; all of it is secret. */
export interface RecordBody {
  id: string;
  key: number;
  /** Raw little-endian float32 bytes. */
  vector: Uint8Array;
  metadata?: unknown;
  contents?: string | Uint8Array;
}

function recordAad(indexId: Uint8Array, hkey: Uint8Array, seq: number): Buffer {
  return frame('record', indexId, hkey, u64(seq));
}

/** Layout: version(1) || seq(8, big-endian) || sealed body. */
export function sealRecord(key: Uint8Array, indexId: Uint8Array, hkey: Uint8Array, seq: number, body: RecordBody): Buffer {
  return Buffer.concat([Buffer.of(VALUE_VERSION), u64(seq), seal(key, pack(body), recordAad(indexId, hkey, seq))]);
}

export function recordSeq(value: Uint8Array): number {
  if (value.byteLength < 9 || value[0] !== VALUE_VERSION) throw new IntegrityError('A record of the index has an unknown format or was truncated.');
  return Number(Buffer.from(value.buffer, value.byteOffset, value.byteLength).readBigUInt64BE(1));
}

export function openRecord(key: Uint8Array, indexId: Uint8Array, hkey: Uint8Array, value: Uint8Array): { seq: number; body: RecordBody } {
  const seq = recordSeq(value);
  const body = unpack(open(key, value.subarray(9), recordAad(indexId, hkey, seq), 'A record of the index')) as RecordBody;
  return { seq, body };
}

/** What one commit changed, so an open can replay commits made after the last snapshot. */
export interface ChangeEntry {
  upserted: string[];
  deleted: string[];
}

export function sealChange(key: Uint8Array, indexId: Uint8Array, seq: number, change: ChangeEntry): Buffer {
  return seal(key, pack(change), frame('change', indexId, u64(seq)));
}

export function openChange(key: Uint8Array, indexId: Uint8Array, seq: number, value: Uint8Array): ChangeEntry {
  return unpack(open(key, value, frame('change', indexId, u64(seq)), 'A change-log entry of the index')) as ChangeEntry;
}
