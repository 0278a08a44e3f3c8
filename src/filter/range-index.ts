/**
 * A sorted index of the numbers and strings at one field path, for `$gt`,
 * `$gte`, `$lt` and `$lte`. Sorted arrays are cheap to search but costly to
 * update, so writes after a build are kept aside: `stale` keys (deleted or
 * overwritten since the build) are skipped in the sorted part, `fresh` keys
 * (written since the build) are checked with the predicate. The arrays are
 * rebuilt once the side sets grow past a fraction of the records.
 */

import { HASH_ENTRY } from './memory-estimate.js';
import { resolvePath } from './metadata-values.js';
import type { ComparisonOperator, NodeTest } from './nodes.js';

/** By default, rebuild when the side sets exceed this many keys, or 1/16 of the records. */
export const DEFAULT_REBUILD_BACKLOG = 1024;

/** The records an index is built over: a Map of key → metadata, or a view with the same reads. */
export interface RecordView {
  readonly size: number;
  get(key: number): unknown;
  entries(): Iterable<[number, unknown]>;
}

interface Sorted<T> {
  readonly values: readonly T[];
  readonly keys: Float64Array;
}

export class RangeIndex {
  readonly #segments: readonly string[];
  #numbers: Sorted<number> = { values: [], keys: new Float64Array(0) };
  #strings: Sorted<string> = { values: [], keys: new Float64Array(0) };
  #stringBytes = 0;
  /** Keys written or deleted since the build: their sorted entries may be outdated. */
  #stale = new Set<number>();
  #fresh = new Set<number>();
  #needsBuild = true;

  readonly #rebuildBacklog: number;

  constructor(segments: readonly string[], rebuildBacklog = DEFAULT_REBUILD_BACKLOG) {
    this.#segments = segments;
    this.#rebuildBacklog = rebuildBacklog;
  }

  noteSet(key: number): void {
    if (this.#needsBuild) return;
    this.#stale.add(key);
    this.#fresh.add(key);
  }

  noteDelete(key: number): void {
    if (this.#needsBuild) return;
    this.#stale.add(key);
    this.#fresh.delete(key);
  }

  clear(): void {
    this.#needsBuild = true;
    this.#numbers = { values: [], keys: new Float64Array(0) };
    this.#strings = { values: [], keys: new Float64Array(0) };
    this.#stringBytes = 0;
    this.#stale = new Set();
    this.#fresh = new Set();
  }

  /** An upper bound on the number of matching records (entries in range plus fresh keys). */
  estimate(records: RecordView, operator: ComparisonOperator, operand: number | string): number {
    this.#ensureBuilt(records);
    const [from, to] = this.#range(operator, operand);
    return to - from + this.#fresh.size;
  }

  /** Keys of records with some value at this path satisfying `operator operand`. */
  lookup(records: RecordView, operator: ComparisonOperator, operand: number | string, test: NodeTest): Set<number> {
    this.#ensureBuilt(records);
    const [from, to] = this.#range(operator, operand);
    const keys = typeof operand === 'number' ? this.#numbers.keys : this.#strings.keys;
    const found = new Set<number>();
    for (let i = from; i < to; i++) {
      const key = keys[i]!;
      if (!this.#stale.has(key)) found.add(key);
    }
    for (const key of this.#fresh) {
      try {
        if (test(records.get(key))) found.add(key);
      } catch {
        // hostile metadata does not match
      }
    }
    return found;
  }

  memoryUsage(): number {
    const entries = this.#numbers.keys.length + this.#strings.keys.length;
    return entries * 16 + this.#strings.values.length * 8 + this.#stringBytes + (this.#stale.size + this.#fresh.size) * HASH_ENTRY;
  }

  /** Index range [from, to) of sorted entries that satisfy the comparison. */
  #range(operator: ComparisonOperator, operand: number | string): [number, number] {
    // Same-type comparison: the operand's type picks the sorted array, so `<` here never mixes types.
    const values = (typeof operand === 'number' ? this.#numbers.values : this.#strings.values) as ArrayLike<number | string>;
    switch (operator) {
      case '$gt':
        return [firstIndex(values, (v) => v > operand), values.length];
      case '$gte':
        return [firstIndex(values, (v) => v >= operand), values.length];
      case '$lt':
        return [0, firstIndex(values, (v) => v >= operand)];
      case '$lte':
        return [0, firstIndex(values, (v) => v > operand)];
    }
  }

  #ensureBuilt(records: RecordView): void {
    const backlog = this.#stale.size + this.#fresh.size;
    if (!this.#needsBuild && backlog <= Math.max(this.#rebuildBacklog, records.size / 16)) return;
    const numbers: Unsorted<number> = { values: [], keys: [] };
    const strings: Unsorted<string> = { values: [], keys: [] };
    for (const [key, metadata] of records.entries()) collectComparables(metadata, this.#segments, key, numbers, strings);
    this.#numbers = sortByValue(numbers, (x, y) => x - y);
    this.#strings = sortByValue(strings, (x, y) => (x < y ? -1 : x > y ? 1 : 0));
    this.#stringBytes = strings.values.reduce((sum, value) => sum + 16 + value.length * 2, 0);
    this.#stale = new Set();
    this.#fresh = new Set();
    this.#needsBuild = false;
  }
}

/** First index whose value passes `predicate`, which must be monotone (false…false true…true). */
function firstIndex<T>(values: ArrayLike<T>, predicate: (value: T) => boolean): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (predicate(values[middle]!)) high = middle;
    else low = middle + 1;
  }
  return low;
}

interface Unsorted<T> {
  values: T[];
  keys: number[];
}

/** Sorts positions rather than [value, key] pairs: a typed array sorts several times faster. */
function sortByValue<T>(entries: Unsorted<T>, compare: (x: T, y: T) => number): { values: T[]; keys: Float64Array } {
  const { values, keys } = entries;
  const order = new Uint32Array(values.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((a, b) => compare(values[a]!, values[b]!));
  const sortedValues = new Array<T>(order.length);
  const sortedKeys = new Float64Array(order.length);
  for (let i = 0; i < order.length; i++) {
    sortedValues[i] = values[order[i]!]!;
    sortedKeys[i] = keys[order[i]!]!;
  }
  return { values: sortedValues, keys: sortedKeys };
}

/**
 * Adds the numbers (NaN excluded: it never compares true) and strings a
 * comparison can see at this path: resolved values and the elements of
 * resolved arrays. Mirrors `compareNode`'s test.
 */
function collectComparables(metadata: unknown, segments: readonly string[], key: number, numbers: Unsorted<number>, strings: Unsorted<string>): void {
  let values: unknown[];
  try {
    values = resolvePath(metadata, segments);
  } catch {
    return; // hostile metadata matches nothing
  }
  for (const value of values) {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) addComparable(value[i], key, numbers, strings);
    } else addComparable(value, key, numbers, strings);
  }
}

function addComparable(value: unknown, key: number, numbers: Unsorted<number>, strings: Unsorted<string>): void {
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return;
    numbers.values.push(value);
    numbers.keys.push(key);
  } else if (typeof value === 'string') {
    strings.values.push(value);
    strings.keys.push(key);
  }
}
