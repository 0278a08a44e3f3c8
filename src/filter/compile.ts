/**
 * `compileFilter`: validate once, then evaluate many times. The result is a
 * predicate function that also carries what callers need to plan a query.
 */

import type { FilterNode } from './nodes.js';
import { parseFilter } from './parse.js';

export interface CompiledFilter {
  /** True if the record's metadata satisfies the filter. Never throws. */
  (metadata: unknown): boolean;
  /** The same predicate, for call sites that prefer a method. */
  readonly matches: (metadata: unknown) => boolean;
  /** Every field path the filter reads, as written (`author.name`). */
  readonly paths: ReadonlySet<string>;
  /** True for `{}`: the filter selects every record, so callers can skip filtering. */
  readonly matchesEverything: boolean;
  /**
   * Equal for filters that are written the same way (same operators, paths,
   * values and key order), so results can be cached across compilations.
   */
  readonly cacheKey: string;
  /** The validated syntax tree; used by MetadataIndex to plan with postings. */
  readonly root: FilterNode;
}

/**
 * Validates `filter` completely (throwing ValidationError with the offending
 * path) and returns its predicate. The filter is copied: changing the object
 * afterwards does not change the compiled filter.
 */
export function compileFilter(filter: unknown): CompiledFilter {
  const { root, paths } = parseFilter(filter);
  const test = root.test;
  // Hostile metadata (a Proxy, a throwing getter) simply does not match.
  const predicate = (metadata: unknown): boolean => {
    try {
      return test(metadata);
    } catch {
      return false;
    }
  };
  return Object.assign(predicate, {
    matches: predicate,
    paths,
    matchesEverything: root.kind === 'all',
    // JSON drops the `test` functions; literals are plain data (-0 and 0 share a key, as they match alike).
    cacheKey: JSON.stringify(root),
    root,
  });
}
