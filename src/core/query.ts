/**
 * Reads that answer from memory first: nearest-neighbour queries (plan:
 * filter → exact scan of the matches or graph search restricted to them;
 * then result shaping), `get` and `listIds`. Records are decrypted only for
 * what memory does not hold (vectors as stored, contents).
 */
import type { SearchOptions } from '../engine/types.js';
import type { CompiledFilter } from '../filter/index.js';
import type { RecordBody } from '../storage/sealed.js';
import type { GetInclude, GetResultItem, ListIdsResponse, Metadata, MetadataValue, QueryInclude, QueryResponse, QueryResultItem } from '../api/types.js';
import type { IndexState } from './index-state.js';
import { readRecords } from './record-reader.js';
import { exactWhileUntrained } from './training.js';
import { vectorNumbers } from './vector-bytes.js';

/**
 * Filtered queries brute-force the matching vectors when at most this many
 * match (or this share of the index); past that the graph search with an
 * allowed-key predicate is cheaper. Measured in bench/ (filtered figures).
 */
const EXACT_FILTER_MAX_KEYS = 4_000;
const EXACT_FILTER_MAX_SHARE = 0.02;

/**
 * How an unfiltered query searches: `exact` scans every live vector, `graph`
 * walks HNSW, `auto` scans while the index is untrained (small; training.ts).
 * Filtered queries choose by their match count unless `exact` is asked for.
 */
export type SearchMode = 'auto' | 'exact' | 'graph';

/** Checked query input: `count` query rows of the index dimension in `data`. */
export interface QueryInput {
  data: Float32Array;
  count: number;
  /** The caller sent a batch: answer one list per query. */
  batch: boolean;
  topK: number;
  include: ReadonlySet<QueryInclude>;
  expansionSearch?: number;
  filter?: CompiledFilter;
  mode?: SearchMode;
}

/** Whether a filtered search scans its matches exactly rather than walking the graph. */
export function exactFilteredSearch(matches: number, live: number): boolean {
  return matches <= EXACT_FILTER_MAX_KEYS || matches <= live * EXACT_FILTER_MAX_SHARE;
}

/** The same filter's match set comes back cached until the next write: so does its key array. */
const allowedKeyArrays = new WeakMap<ReadonlySet<number>, BigUint64Array>();

function allowedKeysOf(allowed: ReadonlySet<number>): BigUint64Array {
  let keys = allowedKeyArrays.get(allowed);
  if (!keys) {
    keys = BigUint64Array.from(allowed, BigInt).sort(); // sorted once here, not by the engine per query
    allowedKeyArrays.set(allowed, keys);
  }
  return keys;
}

export async function query(state: IndexState, input: QueryInput): Promise<QueryResponse> {
  const { data, count, batch, include, filter } = input;
  const engine = state.engine;
  const live = state.live;
  if (!engine || live.size === 0) return emptyResponse(batch, count);

  const options: SearchOptions = input.expansionSearch === undefined ? {} : { expansionSearch: input.expansionSearch };
  let candidates = live.size;
  if (filter && !filter.matchesEverything) {
    await live.ready(); // restored metadata indexed in slices, not by this query at once
    const allowed = live.filterIndex().match(filter);
    if (allowed.size === 0) return emptyResponse(batch, count);
    candidates = allowed.size;
    options.allowedKeys = allowedKeysOf(allowed);
    options.exact = input.mode === 'exact' || exactFilteredSearch(allowed.size, live.size);
  } else {
    const mode = input.mode ?? 'auto';
    options.exact = mode === 'exact' || (mode === 'auto' && exactWhileUntrained(state));
  }
  const k = Math.min(input.topK, candidates);
  const found = await engine.search(data, k, options); // usearch's scans skip removed vectors' slots
  state.assertUsable(); // closed or deleted while the search ran
  const rows: QueryResultItem[][] = [];
  // Metadata alone is served from memory (the filter index holds it decrypted): no record read.
  // Decided once per call, not per hit: a single query at small ef costs ~25 µs
  // in the engine, so this loop's per-hit work shows in QPS.
  const withDistance = include.has('distance');
  const fromRecords = include.has('vector') || include.has('contents');
  const metadataFromMemory = include.has('metadata') && !fromRecords;
  const wanted = fromRecords ? new Set<string>() : null;
  const euclidean = state.manifest.metric === 'euclidean';
  const { keys, distances, counts } = found;
  // Keys read as 32-bit halves (little-endian, like every platform the addon
  // builds for): `Number(bigint)` goes through a runtime call per hit.
  const words = new Uint32Array(keys.buffer, keys.byteOffset, keys.length * 2);
  for (let q = 0; q < count; q++) {
    const row: QueryResultItem[] = [];
    const base = q * found.k;
    for (let j = 0; j < counts[q]!; j++) {
      const at = 2 * (base + j);
      const key = words[at]! + words[at + 1]! * 4294967296;
      const id = live.idOf(key);
      if (id === undefined) continue; // deleted while the search ran
      const item: QueryResultItem = { id };
      if (withDistance) {
        const raw = distances[base + j]!;
        item.distance = euclidean ? Math.sqrt(Math.max(0, raw)) : raw; // state.toDistance, hoisted
      }
      if (metadataFromMemory) {
        // Authenticated when the index was loaded or written; a copy, so callers cannot alter the filter index.
        const metadata = live.filterIndex().get(key);
        if (metadata !== undefined) item.metadata = copyMetadata(metadata as Metadata);
      }
      row.push(item);
      wanted?.add(id);
    }
    rows.push(row);
  }
  if (wanted) {
    const bodies = await readRecords(state, [...wanted]);
    for (const row of rows) {
      for (const item of row) {
        const body = bodies.get(item.id);
        if (body) copyFields(item, body, include);
      }
    }
  }
  return { results: batch ? rows : rows[0]! };
}

/** Records in the order asked; a missing id gives `{ id }` alone. */
export async function getRecords(state: IndexState, ids: string[], include: ReadonlySet<GetInclude>): Promise<GetResultItem[]> {
  const bodies = await readRecords(state, ids);
  return ids.map((id) => {
    const body = bodies.get(id);
    const item: GetResultItem = { id };
    if (body) copyFields(item, body, include);
    return item;
  });
}

/** Every live id, or those whose metadata matches `filter`. */
export function listIds(state: IndexState, filter: CompiledFilter | undefined): ListIdsResponse {
  let ids: string[];
  if (!filter || filter.matchesEverything) {
    ids = [...state.live.byId.keys()];
  } else {
    ids = [];
    for (const key of state.live.filterIndex().match(filter)) {
      const id = state.live.idOf(key);
      if (id !== undefined) ids.push(id);
    }
  }
  return { ids, count: ids.length };
}

/** What a query answers when nothing can match: no hits, one empty row per query of a batch. */
function emptyResponse(batch: boolean, count: number): QueryResponse {
  return { results: batch ? Array.from({ length: count }, () => []) : [] };
}

/**
 * A deep copy of metadata already checked on its way in (plain objects,
 * arrays, JSON scalars, no reserved keys): several times cheaper than
 * structuredClone, which showed as most of a `['metadata']` query.
 */
function copyMetadata(metadata: Metadata): Metadata {
  return copyValue(metadata) as Metadata;
}

function copyValue(value: MetadataValue): MetadataValue {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(copyValue);
  const out: { [key: string]: MetadataValue } = {};
  for (const key of Object.keys(value)) out[key] = copyValue(value[key]!);
  return out;
}

function copyFields(item: QueryResultItem | GetResultItem, body: RecordBody, include: ReadonlySet<string>): void {
  if (include.has('vector')) item.vector = vectorNumbers(body.vector);
  if (include.has('metadata') && body.metadata !== undefined) item.metadata = body.metadata as Metadata;
  if (include.has('contents') && body.contents !== undefined) {
    item.contents = typeof body.contents === 'string' ? body.contents : new Uint8Array(body.contents);
  }
}
