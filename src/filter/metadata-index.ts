/**
 * An in-memory index over decrypted metadata, keyed by the caller's numeric
 * record keys, that answers "which records match this filter". Per field
 * path it keeps, lazily (built the first time a filter needs it, then kept
 * up to date by `set`/`delete`):
 * - equality postings (value → keys) for `$eq`, `$in`, `null`, `$exists: false`;
 * - a sorted range index for `$gt`, `$gte`, `$lt`, `$lte`.
 * An AND is answered from its most selective indexed condition and checks
 * the others per candidate; anything else is a scan with the predicate, so
 * `match` always equals a full scan.
 *
 * Recent results are cached by the filter's `cacheKey` until the next write,
 * so an application repeating a filter (a folder, a user's permissions) pays
 * for it once per change of the data.
 *
 * `set` keeps a reference to the metadata it is given: do not mutate it
 * afterwards (pass a copy), or the index goes stale. Metadata is expected to
 * be plain decoded data; for objects with throwing getters or Proxies, `match`
 * never throws but may disagree with the predicate (which then says false).
 */

import { ValidationError } from '../errors.js';
import type { CompiledFilter } from './compile.js';
import { EqualityPostings, MISSING, type PostingKey } from './equality-postings.js';
import { HASH_ENTRY, HASH_TABLE_HEADER, estimateValueBytes } from './memory-estimate.js';
import { isScalar } from './metadata-values.js';
import type { CompareNode, FieldNode, FilterNode, NodeTest } from './nodes.js';
import { DEFAULT_REBUILD_BACKLOG, RangeIndex, type RecordView } from './range-index.js';

/** Paths with postings (and, separately, with range indexes); filters on further paths scan. */
const MAX_INDEXED_PATHS = 64;

/** Results kept for repeated filters; any write empties the cache. */
const MAX_CACHED_RESULTS = 16;

/** A key set from an index plus whether it is a new Set (false: shared with an index). */
interface Planned {
  readonly keys: ReadonlySet<number>;
  readonly owned: boolean;
}

/** Tuning knobs; the defaults suit most indexes (tests use extreme values to reach every path). */
export interface MetadataIndexOptions {
  /** An AND scans instead when its most selective indexed part matches more than this share of records. */
  andScanShare?: number;
  /** Writes a range index absorbs before re-sorting (at least 1/16 of the records). */
  rangeRebuildBacklog?: number;
  /**
   * The set of record keys, when the caller keeps it anyway (the live-record
   * table): then records without metadata are not stored here at all, where
   * each would otherwise cost a Map entry and a boxed key (~50 B). The
   * caller must add a key to it before `set(key, …)` and take it out after
   * `delete(key)`.
   */
  allKeys?: KeyUniverse;
}

/** Every record key, kept by the caller (see MetadataIndexOptions.allKeys). */
export interface KeyUniverse {
  readonly size: number;
  has(key: number): boolean;
  keys(): Iterable<number>;
}

export class MetadataIndex {
  readonly #andScanShare: number;
  readonly #rangeRebuildBacklog: number;
  readonly #allKeys: KeyUniverse | undefined;
  /** Metadata by key: every record's, or with `allKeys` only the records that have some. */
  readonly #records = new Map<number, unknown>();
  /** What scans and range indexes read: every record with its metadata (undefined when none). */
  readonly #view: RecordView;
  readonly #postingsByPath = new Map<string, EqualityPostings>();
  readonly #rangesByPath = new Map<string, RangeIndex>();
  /** Insertion order doubles as least-recently-used order. */
  readonly #cache = new Map<string, ReadonlySet<number>>();
  #metadataBytes = 0;

  constructor(options: MetadataIndexOptions = {}) {
    this.#andScanShare = options.andScanShare ?? 0.25;
    this.#rangeRebuildBacklog = options.rangeRebuildBacklog ?? DEFAULT_REBUILD_BACKLOG;
    const allKeys = (this.#allKeys = options.allKeys);
    const records = this.#records;
    this.#view =
      allKeys === undefined
        ? records
        : {
            get size() {
              return allKeys.size;
            },
            get: (key) => records.get(key),
            *entries() {
              for (const key of allKeys.keys()) yield [key, records.get(key)];
            },
          };
  }

  get size(): number {
    return this.#view.size;
  }

  /** The metadata stored for `key` (`undefined` when absent or stored without metadata). */
  get(key: number): unknown {
    return this.#records.get(key);
  }

  has(key: number): boolean {
    return this.#allKeys?.has(key) ?? this.#records.has(key);
  }

  /** Adds or replaces the metadata of `key` (`undefined`: a record without metadata). */
  set(key: number, metadata: unknown): void {
    if (!Number.isSafeInteger(key) || key < 0) {
      throw new ValidationError('MetadataIndex keys must be non-negative safe integers.', { path: 'key' });
    }
    if (this.#allKeys !== undefined) this.#forget(key);
    else if (this.#records.has(key)) this.delete(key);
    this.#dropCached();
    if (this.#allKeys === undefined || metadata !== undefined) {
      this.#records.set(key, metadata);
      this.#metadataBytes += estimateValueBytes(metadata);
    }
    // Guarded: set and #forget run once per upserted record, and each loop's iterator (and each clear() of a Map,
    // which allocates a fresh table) is garbage even when there is nothing to visit.
    if (this.#postingsByPath.size > 0) for (const postings of this.#postingsByPath.values()) postings.add(key, metadata);
    if (this.#rangesByPath.size > 0) for (const range of this.#rangesByPath.values()) range.noteSet(key);
  }

  /** Removes `key`; returns whether it was present. */
  delete(key: number): boolean {
    if (!this.has(key)) return false;
    this.#forget(key);
    return true;
  }

  /** Takes `key` out of the postings, range indexes and metadata (a no-op for most when it is absent). */
  #forget(key: number): void {
    this.#dropCached();
    const metadata = this.#records.get(key);
    if (this.#postingsByPath.size > 0) for (const postings of this.#postingsByPath.values()) postings.remove(key, metadata);
    if (this.#rangesByPath.size > 0) for (const range of this.#rangesByPath.values()) range.noteDelete(key);
    if (this.#records.delete(key)) this.#metadataBytes -= estimateValueBytes(metadata);
  }

  /** Cached filter results are stale once a key changes. */
  #dropCached(): void {
    if (this.#cache.size > 0) this.#cache.clear();
  }

  clear(): void {
    this.#records.clear();
    this.#postingsByPath.clear();
    this.#rangesByPath.clear();
    this.#cache.clear();
    this.#metadataBytes = 0;
  }

  /**
   * Keys of every record whose metadata satisfies `filter`. The set is a
   * snapshot: later writes never change it, but it may be shared with later
   * calls for the same filter, so it is read-only.
   */
  match(filter: CompiledFilter): ReadonlySet<number> {
    const cached = this.#cache.get(filter.cacheKey);
    if (cached !== undefined) {
      this.#cache.delete(filter.cacheKey);
      this.#cache.set(filter.cacheKey, cached);
      return cached;
    }
    const keys = this.#evaluate(filter);
    if (this.#cache.size >= MAX_CACHED_RESULTS) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(filter.cacheKey, keys);
    return keys;
  }

  #evaluate(filter: CompiledFilter): ReadonlySet<number> {
    if (filter.matchesEverything) return new Set(this.#allKeys?.keys() ?? this.#records.keys());
    const planned = this.#plan(filter.root);
    if (planned !== undefined) return planned.owned ? planned.keys : new Set(planned.keys);
    const keys = new Set<number>();
    for (const [key, metadata] of this.#view.entries()) {
      if (filter(metadata)) keys.add(key);
    }
    return keys;
  }

  /** Estimated bytes held: the metadata itself, the record map and all indexes. */
  memoryUsage(): number {
    let bytes = HASH_TABLE_HEADER + this.#records.size * HASH_ENTRY + this.#metadataBytes;
    for (const postings of this.#postingsByPath.values()) bytes += postings.memoryUsage();
    for (const range of this.#rangesByPath.values()) bytes += range.memoryUsage();
    for (const keys of this.#cache.values()) bytes += HASH_TABLE_HEADER + keys.size * HASH_ENTRY;
    return bytes;
  }

  /** An upper bound on how many keys `#plan(node)` yields, or undefined when it cannot plan. */
  #estimate(node: FilterNode): number | undefined {
    switch (node.kind) {
      case 'compare':
        return this.#rangeFor(node)?.estimate(this.#view, node.operator, node.value);
      case 'and': {
        const estimates = node.children.map((child) => this.#estimate(child)).filter((n) => n !== undefined);
        return estimates.length === 0 ? undefined : Math.min(...estimates);
      }
      case 'or': {
        let total = 0;
        for (const child of node.children) {
          const estimate = this.#estimate(child);
          if (estimate === undefined) return undefined;
          total += estimate;
        }
        return total;
      }
      default: {
        const equality = this.#equalityQuery(node);
        if (equality === undefined) return undefined;
        const postings = this.#postingsFor(equality.node);
        return postings?.lookup(equality.values).reduce((sum, set) => sum + set.size, 0);
      }
    }
  }

  /** Exact keys for `node` from the indexes, or undefined when only a scan can tell. */
  #plan(node: FilterNode): Planned | undefined {
    switch (node.kind) {
      case 'compare': {
        const range = this.#rangeFor(node);
        return range && { keys: range.lookup(this.#view, node.operator, node.value, node.test), owned: true };
      }
      case 'or':
        return this.#planOr(node.children);
      case 'and':
        return this.#planAnd(node.children);
      default: {
        const equality = this.#equalityQuery(node);
        const sets = equality && this.#postingsFor(equality.node)?.lookup(equality.values);
        if (sets === undefined) return undefined;
        return sets.length === 1 ? { keys: sets[0]!, owned: false } : { keys: unionOf(sets), owned: true };
      }
    }
  }

  /** `$eq`/`$in` of scalars and `$exists: false` as posting keys (`null` also means missing). */
  #equalityQuery(node: FilterNode): { node: FieldNode; values: readonly PostingKey[] } | undefined {
    let values: PostingKey[];
    if (node.kind === 'eq' && isScalar(node.value)) values = [node.value];
    else if (node.kind === 'in' && node.values.every(isScalar)) values = [...(node.values as PostingKey[])];
    else if (node.kind === 'not' && node.child.kind === 'exists') return { node: node.child, values: [MISSING] };
    else return undefined;
    if (values.includes(null)) values.push(MISSING);
    return { node, values };
  }

  #planOr(children: readonly FilterNode[]): Planned | undefined {
    const sets: ReadonlySet<number>[] = [];
    for (const child of children) {
      const planned = this.#plan(child);
      if (planned === undefined) return undefined;
      sets.push(planned.keys);
    }
    return { keys: unionOf(sets), owned: true };
  }

  /** Takes the most selective indexed child and checks the other children on its keys. */
  #planAnd(children: readonly FilterNode[]): Planned | undefined {
    let best: FilterNode | undefined;
    let bestEstimate = Infinity;
    for (const child of children) {
      const estimate = this.#estimate(child);
      if (estimate !== undefined && estimate < bestEstimate) {
        best = child;
        bestEstimate = estimate;
      }
    }
    // Checking most records one by one is slower than a plain scan.
    if (best === undefined || bestEstimate > this.size * this.#andScanShare) return undefined;
    const planned = this.#plan(best);
    if (planned === undefined) return undefined;
    const checks: NodeTest[] = children.filter((child) => child !== best).map((child) => child.test);
    const keys = new Set<number>();
    for (const key of planned.keys) {
      const metadata = this.#records.get(key);
      if (checks.every((check) => safely(check, metadata))) keys.add(key);
    }
    return { keys, owned: true };
  }

  #postingsFor(node: FieldNode): EqualityPostings | undefined {
    const existing = this.#postingsByPath.get(node.path);
    if (existing !== undefined || this.#postingsByPath.size >= MAX_INDEXED_PATHS) return existing;
    const postings = new EqualityPostings(node.segments);
    for (const [key, metadata] of this.#view.entries()) postings.add(key, metadata);
    this.#postingsByPath.set(node.path, postings);
    return postings;
  }

  #rangeFor(node: CompareNode): RangeIndex | undefined {
    const existing = this.#rangesByPath.get(node.path);
    if (existing !== undefined || this.#rangesByPath.size >= MAX_INDEXED_PATHS) return existing;
    const range = new RangeIndex(node.segments, this.#rangeRebuildBacklog); // built on first lookup
    this.#rangesByPath.set(node.path, range);
    return range;
  }
}

function safely(test: NodeTest, metadata: unknown): boolean {
  try {
    return test(metadata);
  } catch {
    return false;
  }
}

function unionOf(sets: readonly ReadonlySet<number>[]): Set<number> {
  const union = new Set<number>();
  for (const set of sets) for (const key of set) union.add(key);
  return union;
}
