/**
 * Public data shapes of `index.verify()` and `recoverIndex()` (type imports
 * from `types.ts` only).
 */
import type { Progress } from './types.js';

export interface VerifyOptions {
  /** Called as verify advances (records and snapshot chunks read), at most once per batch. */
  onProgress?: (progress: Progress) => void;
}

/** What part of the index a problem was found in. */
export type VerifyProblemKind = 'catalog' | 'manifest' | 'head' | 'record' | 'digest' | 'changelog' | 'snapshot';

/** One problem: where, and what, in words that hold no record ids or plaintext. */
export interface VerifyProblem {
  kind: VerifyProblemKind;
  detail: string;
}

/** The result of `index.verify()`: `ok` when nothing was wrong; counts of the values that authenticated. */
export interface VerifyReport {
  ok: boolean;
  checked: { catalog: number; manifest: number; head: number; records: number; changeLog: number; snapshotChunks: number };
  problems: VerifyProblem[];
}

export interface RecoverOptions {
  /** The damaged store directory. It is only read: its files are copied to a temporary directory first. */
  path: string;
  /** A new store directory to write the recovered index into (absent or empty). */
  to: string;
  indexName: string;
  /** The index's key (32 bytes); the recovered index keeps it. */
  indexKey: Uint8Array;
  /** Report the ids known to be lost (named by the change log or the snapshot, but with no record that authenticates). Off by default. */
  includeIds?: boolean;
  /** Used only when the manifest no longer authenticates (so the index's metric cannot be read); the dimension then comes from the records. */
  metric?: 'euclidean' | 'squared_euclidean' | 'cosine' | 'ip';
  onProgress?: (progress: Progress) => void;
}

/** What `recoverIndex()` got back and what it could not. Never silent: every count is there even when zero. */
export interface RecoverReport {
  indexName: string;
  /** Records copied into the new store (they authenticated under the key and belong under their ids). */
  recovered: number;
  /** Records found in the damaged store that do not authenticate or do not belong where they are stored. */
  unreadable: number;
  /** How many live records the newest readable manifest counts; null when the manifest does not authenticate. */
  expected: number | null;
  /** Records the store is known to have lost: `expected` minus what was recovered (null when unknown). */
  missing: number | null;
  /** How many ids the change log or snapshot name that have no recovered record. */
  lostIds: number;
  /** Those ids, only with `includeIds: true`. */
  ids?: string[];
  /** Whether the manifest authenticated, and whether the records added up to its digest (when false, some recovered records may be older versions). */
  manifestReadable: boolean;
  digestMatched: boolean;
  /** Whether LevelDB had to repair the copy before it would open. */
  repaired: boolean;
}
