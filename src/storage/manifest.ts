/**
 * The manifest: one encrypted value per index holding its configuration, its
 * commit counter and the digest over its live records. Every commit rewrites
 * it in the same atomic batch as the records it changes.
 * Layout: version(1) || sealed msgpack, AAD = frame('manifest', index id).
 * Signed indexes (per-user keys, keys/users.ts) write version 2:
 * `0x02 || Ed25519 signature (64) || seal`, the signature over
 * frame('manifest-signature', index id, seal); unsigned indexes keep version 1.
 */
import { open, seal } from '../crypto/aead.js';
import { frame } from '../crypto/kdf.js';
import { SIGNATURE_BYTES, signBytes, verifyBytes } from '../crypto/sign.js';
import { IntegrityError } from '../errors.js';
import { pack, unpack } from '../util/msgpack.js';
import { VALUE_VERSION } from './sealed.js';

import type { IndexType, Metric, StoragePrecision } from '../api/types.js';

export type { IndexType, Metric, StoragePrecision };

export const METRICS: readonly Metric[] = ['euclidean', 'squared_euclidean', 'cosine', 'ip'];
export const PRECISIONS: readonly StoragePrecision[] = ['float32', 'float16', 'int8'];
/** Index types `createIndex` accepts: ours, and CyborgDB's IVF family (served by the same HNSW engine). */
export const INDEX_TYPES: readonly IndexType[] = ['hnsw', 'ivf', 'ivfflat', 'ivfpq', 'ivfsq'];

/**
 * The index type and IVF parameters asked for at `createIndex`, recorded as
 * given so `getIndexType()` / `getIndexConfig()` answer what the caller
 * asked. The engine is HNSW whatever they say (see docs/coming-from-cyborgdb.md).
 */
export interface RequestedConfig {
  type: IndexType;
  nLists?: number;
  pqDim?: number;
  pqBits?: number;
  sqBits?: number;
}

/**
 * The embedding an index was created with (`createIndex({ embedding })`):
 * its name, and the dimension it was declared with (null: fixed by the first
 * vectors). The function itself lives in the process; `loadIndex` must be
 * given one of the same name to embed text.
 */
export interface EmbeddingRef {
  name: string;
  dimension: number | null;
}

/** HNSW parameters, all set (the public `IndexConfig` has them optional). */
export interface HnswConfig {
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
  metric: Metric;
  precision: StoragePrecision;
  indexConfig: HnswConfig;
  /**
   * The type asked for at `createIndex` (added after 0.1.0: absent in older
   * manifests, which read as `{ type: 'hnsw' }`; older code ignores it).
   */
  requested?: RequestedConfig;
  /**
   * The embedding text is turned into vectors with (added after 0.1.0 like
   * `requested`: absent in older manifests and in indexes made without one;
   * older code ignores it).
   */
  embedding?: EmbeddingRef;
  /** The newest complete graph snapshot, if any. */
  snapshot: SnapshotRef | null;
}

export interface SnapshotRef {
  generation: number;
  /**
   * 16 random bytes chosen for this one snapshot write and bound into every
   * chunk's AAD: a write whose commit failed reuses no write id, so its chunks
   * left under the same generation never authenticate here. Absent only in
   * snapshots written before write ids (read with that format's AAD).
   */
  writeId?: Uint8Array;
  /** Chunks of each section (see snapshot.ts). */
  graphChunks: number;
  tableChunks: number;
  /** Manifest counter the snapshot reflects. */
  counter: number;
  /**
   * Signed indexes: SHA-256 over the SHA-256 of each sealed chunk of the section, in order. The
   * manifest's signature covers them, so a key holder who cannot sign (a reader) cannot swap in
   * re-sealed chunks of their own.
   */
  graphHash?: Uint8Array;
  tableHash?: Uint8Array;
  /**
   * Signed indexes, for openers who can sign (the root, writers): per section, SHA-256 over the GMAC of
   * each sealed chunk, in order, under a key derived from the signing seed, and that key's id
   * (snapshot.ts `chunkMacKey`). Such an opener checks these instead of the SHA-256s, for a third of
   * their CPU; a reader cannot make or check them. Added after 0.1.0: absent, or under another key's
   * id, the open checks `graphHash` / `tableHash`.
   */
  chunkMacs?: { keyId: Uint8Array; graph: Uint8Array; table: Uint8Array };
  /**
   * True when the writer checked (and if needed repaired) the graph's reachability right before
   * serializing it, and every live record was reachable: an open that replays nothing can skip its
   * own walk. Added after 0.1.0; absent (older writers, an engine without the check, a repair that
   * hit its round bound) means the open walks the graph. Authenticated (and in signed indexes
   * signed) with the rest of the manifest, so only a key holder who could write any graph could set
   * it falsely (docs/architecture.md, "Records the graph cannot reach").
   */
  reachable?: boolean;
  /**
   * True when every vector in the graph is unit length (a cosine float32 engine scales what it adds;
   * `AnnEngine.unitVectors`): the open compares them by their dot product. Added after 0.1.0;
   * absent (older writers, a graph loaded from older bytes and not rebuilt since) means the cosine kernel.
   * Authenticated like `reachable`: set falsely by a key holder, it gives wrong distances, never unsafe reads.
   */
  unitVectors?: boolean;
}

/** Version byte of a signed manifest. */
const SIGNED_VERSION = 2;
const SIGNED_HEADER = 1 + SIGNATURE_BYTES;

const signedMessage = (indexId: Uint8Array, sealed: Uint8Array) => frame('manifest-signature', indexId, sealed);

/** Seals a manifest; with `signSeed` (a signed index) as version 2, signed. */
export function sealManifest(key: Uint8Array, indexId: Uint8Array, manifest: Manifest, signSeed?: Uint8Array): Buffer {
  const sealed = seal(key, pack(manifest), frame('manifest', indexId));
  if (signSeed === undefined) return Buffer.concat([Buffer.of(VALUE_VERSION), sealed]);
  return Buffer.concat([Buffer.of(SIGNED_VERSION), signBytes(signSeed, signedMessage(indexId, sealed)), sealed]);
}

/**
 * Authenticates and decodes a manifest; anything that does not parse as one is an IntegrityError.
 * With `signKey` (a signed index: the public key this opener trusts) only a version-2 manifest
 * whose signature verifies is accepted; without it, only version 1.
 */
export function openManifest(key: Uint8Array, indexId: Uint8Array, value: Uint8Array, indexName: string, signKey?: Uint8Array): Manifest {
  const what = `The manifest of index "${indexName}"`;
  let sealed: Uint8Array;
  if (signKey === undefined) {
    if (value[0] !== VALUE_VERSION) throw new IntegrityError(`${what} has an unknown format.`);
    sealed = value.subarray(1);
  } else {
    if (value[0] !== SIGNED_VERSION || value.byteLength < SIGNED_HEADER) {
      throw new IntegrityError(
        `${what} is not signed: it was written without the index's signing key (by a read-only key holder, or tampered with). Restore the store from a backup.`,
      );
    }
    sealed = value.subarray(SIGNED_HEADER);
    if (!verifyBytes(signKey, signedMessage(indexId, sealed), value.subarray(1, SIGNED_HEADER))) {
      throw new IntegrityError(
        `${what} has a wrong signature: it was written without the index's signing key (by a read-only key holder, or tampered with). Restore the store from a backup.`,
      );
    }
  }
  const manifest = unpack(open(key, sealed, frame('manifest', indexId), what)) as Manifest;
  if (!isManifest(manifest)) throw new IntegrityError(`${what} has an unknown format.`);
  manifest.digest = new Uint8Array(manifest.digest);
  return manifest;
}

/** The copy a commit edits: the counter moves on, the digest and config are the caller's to change. */
export function nextManifest(m: Manifest): Manifest {
  const next: Manifest = { ...m, counter: m.counter + 1, digest: new Uint8Array(m.digest), indexConfig: { ...m.indexConfig } };
  if (m.requested !== undefined) next.requested = { ...m.requested };
  if (m.embedding !== undefined) next.embedding = { ...m.embedding };
  return next;
}

/** The recorded request; `{ type: 'hnsw' }` for manifests written before the field existed. */
export function requestedConfig(m: Manifest): RequestedConfig {
  return m.requested ?? { type: 'hnsw' };
}

const REQUESTED_NUMBERS = ['nLists', 'pqDim', 'pqBits', 'sqBits'] as const;

function isRequested(r: unknown): boolean {
  if (r === undefined) return true;
  if (typeof r !== 'object' || r === null) return false;
  const req = r as Record<string, unknown>;
  return INDEX_TYPES.includes(req.type as IndexType) && REQUESTED_NUMBERS.every((k) => req[k] === undefined || isCount(req[k]));
}

function isEmbeddingRef(e: unknown): boolean {
  if (e === undefined) return true;
  if (typeof e !== 'object' || e === null) return false;
  const ref = e as Record<string, unknown>;
  return typeof ref.name === 'string' && ref.name.length > 0 && (ref.dimension === null || isCount(ref.dimension));
}

const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

/** Shape check of authenticated bytes: only a different format could fail it. */
function isManifest(m: Manifest): boolean {
  if (typeof m !== 'object' || m === null) return false;
  const ref = m.snapshot;
  return (
    isCount(m.counter) &&
    isCount(m.nextKey) &&
    isCount(m.count) &&
    m.digest instanceof Uint8Array &&
    m.digest.byteLength === 32 &&
    (m.dimension === null || isCount(m.dimension)) &&
    METRICS.includes(m.metric) &&
    PRECISIONS.includes(m.precision) &&
    typeof m.indexConfig === 'object' &&
    m.indexConfig !== null &&
    isCount(m.indexConfig.connectivity) &&
    isCount(m.indexConfig.expansionAdd) &&
    isCount(m.indexConfig.expansionSearch) &&
    isRequested(m.requested) &&
    isEmbeddingRef(m.embedding) &&
    // A snapshot reference is checked where it is used: a bad one costs a rebuild, not the index.
    (ref === null || (typeof ref === 'object' && isCount(ref.generation) && isCount(ref.counter)))
  );
}
