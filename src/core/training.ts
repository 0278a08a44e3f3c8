/**
 * CyborgDB's training model mapped onto HNSW. CyborgDB searches an untrained
 * index exhaustively and trains it (IVF clustering) once it is large enough;
 * vecvault builds its graph as vectors arrive, so "training" here only says
 * which search answers unfiltered queries: an exact scan while the index is
 * small (there it is exact and no slower than the graph walk; for CyborgDB's
 * IVF types, up to CyborgDB's own training point), the graph after. See
 * docs/coming-from-cyborgdb.md for the measurements.
 */
import { requestedConfig } from '../storage/manifest.js';
import type { IndexState } from './index-state.js';

/**
 * Unfiltered queries of an HNSW index scan every vector exactly while it holds
 * at most this many. Measured per query, exact scan vs the graph at the
 * default expansionSearch 200 (one query k=10 / a batch at k=100, ms; 2-core
 * shared machine): up to 2,000 vectors the scan is as fast or faster on real
 * data (sift5k 128-d: 0.08 vs 0.09; glove50: 0.07 vs 0.07; glove25: 0.06 vs
 * 0.07), at 2,500 the graph wins (sift5k 0.10 vs 0.14; glove50 0.08 vs 0.12)
 * and at 10,000 by 2.5× (glove25 0.09 vs 0.23). We switch where exact stops
 * being free. `query({ exact: true })` scans at any size.
 */
export const EXACT_MAX_VECTORS = 2_000;

/**
 * An index created with one of CyborgDB's IVF types keeps CyborgDB's promise
 * instead: exhaustive ("untrained") search until `train()` or until it holds
 * CyborgDB Service's automatic-training point, 10,000 vectors. Code
 * ported from CyborgDB expects exact recall below it; the price at 10,000 is
 * the figure above (glove25: 0.23 ms a query instead of 0.09).
 */
export const IVF_TRAINS_AT = 10_000;

/** The size up to which this index answers unfiltered queries exactly. */
export function exactMaxVectors(state: IndexState): number {
  return requestedConfig(state.manifest).type === 'hnsw' ? EXACT_MAX_VECTORS : IVF_TRAINS_AT - 1;
}

/** Whether unfiltered queries are answered by an exact scan (the index is "untrained"). */
export function exactWhileUntrained(state: IndexState): boolean {
  return !state.trainedByCall && state.live.size <= exactMaxVectors(state);
}

/** CyborgDB's IVF list count: as given to createIndex or train(), else √count (at least 1). */
export function nListsOf(state: IndexState): number {
  return state.trainedLists ?? requestedConfig(state.manifest).nLists ?? Math.max(1, Math.round(Math.sqrt(state.live.size)));
}
