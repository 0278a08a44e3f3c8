/**
 * Equality postings for one field path: scalar value → keys of the records
 * where `{ path: value }` matches, plus MISSING for records where the path
 * resolves to nothing (which `null` and `$exists: false` match).
 */

import { HASH_ENTRY, HASH_TABLE_HEADER, estimateStringBytes } from './memory-estimate.js';
import { isScalar, resolvePath, type Scalar } from './metadata-values.js';

export const MISSING = Symbol('missing');
export type PostingKey = Scalar | typeof MISSING;

export class EqualityPostings {
  readonly #segments: readonly string[];
  readonly #keysByValue = new Map<PostingKey, Set<number>>();
  #memberships = 0;
  #valueBytes = 0;

  constructor(segments: readonly string[]) {
    this.#segments = segments;
  }

  add(key: number, metadata: unknown): void {
    for (const value of postingKeysOf(metadata, this.#segments)) {
      let keys = this.#keysByValue.get(value);
      if (keys === undefined) {
        keys = new Set();
        this.#keysByValue.set(value, keys);
        if (typeof value === 'string') this.#valueBytes += estimateStringBytes(value);
      }
      keys.add(key);
      this.#memberships++;
    }
  }

  /** `metadata` must be what was passed to `add` for this key. */
  remove(key: number, metadata: unknown): void {
    for (const value of postingKeysOf(metadata, this.#segments)) {
      const keys = this.#keysByValue.get(value);
      if (keys === undefined || !keys.delete(key)) continue;
      this.#memberships--;
      if (keys.size === 0) {
        this.#keysByValue.delete(value);
        if (typeof value === 'string') this.#valueBytes -= estimateStringBytes(value);
      }
    }
  }

  /** The posting sets for `values` (shared: never mutate them). */
  lookup(values: readonly PostingKey[]): ReadonlySet<number>[] {
    const sets: ReadonlySet<number>[] = [];
    for (const value of values) {
      const keys = this.#keysByValue.get(value);
      if (keys !== undefined) sets.push(keys);
    }
    return sets;
  }

  memoryUsage(): number {
    return HASH_TABLE_HEADER + this.#valueBytes + this.#keysByValue.size * (HASH_ENTRY + HASH_TABLE_HEADER) + this.#memberships * HASH_ENTRY;
  }
}

/**
 * The scalar values `$eq` can match at this path for this record: each
 * resolved scalar and each scalar element of a resolved array, or MISSING.
 * Mirrors `equalsNode`'s test exactly.
 */
function postingKeysOf(metadata: unknown, segments: readonly string[]): Set<PostingKey> {
  const keys = new Set<PostingKey>();
  let values: unknown[];
  try {
    values = resolvePath(metadata, segments);
  } catch {
    return keys; // hostile metadata matches nothing, as the predicate says
  }
  if (values.length === 0) keys.add(MISSING);
  for (const value of values) {
    if (isScalar(value)) keys.add(value);
    else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const element: unknown = value[i];
        if (isScalar(element)) keys.add(element);
      }
    }
  }
  return keys;
}
