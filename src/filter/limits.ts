/**
 * Bounds that keep validation and evaluation cheap on hostile input. They are
 * far above anything a real filter needs; exceeding one is a ValidationError.
 */

/** Nesting of objects and arrays inside a filter, counted from the root. */
export const MAX_FILTER_DEPTH = 32;

/** Objects, arrays, keys and values in one filter (a 50k-id `$in` still fits). */
export const MAX_FILTER_NODES = 100_000;

/** Characters in one field path such as `author.name`. */
export const MAX_PATH_LENGTH = 1024;

/**
 * Values one path may resolve to inside a single record's metadata (arrays of
 * objects fan out). Keeps shared or cyclic in-memory objects from blowing up.
 */
export const MAX_RESOLVED_VALUES = 100_000;

/** Array elements one path resolution may visit, for the same reason. */
export const MAX_RESOLVE_WORK = 10_000_000;

/** Keys that could reach `Object.prototype` if some consumer assigned by them. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
