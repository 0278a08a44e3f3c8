/**
 * An in-memory index over decrypted metadata, keyed by the caller's numeric
 * record keys, that answers "which records match this filter". It keeps
 * equality postings (value → keys) per field path, built lazily the first
 * time a filter uses that path with `$eq`/`$in`/`$exists: false`, then kept
 * up to date by `set`/`delete`. Whatever postings cannot answer exactly is
 * verified with the compiled predicate, so `match` always equals a full scan.
 *
 * `set` keeps a reference to the metadata it is given: do not mutate it
 * afterwards (pass a copy), or postings go stale. Metadata is expected to be
 * plain decoded data; for objects with throwing getters or Proxies, `match`
 * never throws but may disagree with the predicate (which then says false).
 */

import { ValidationError } from '../errors.js';
import type { CompiledFilter } from './compile.js';
import { HASH_ENTRY, HASH_TABLE_HEADER, estimateStringBytes, estimateValueBytes } from './memory-estimate.js';
import { isScalar, resolvePath, type Scalar } from './metadata-values.js';
import type { FieldNode, FilterNode, NodeTest } from './nodes.js';

/** Posting key for records where the path resolves to nothing (so `null` and `$exists: false` match). */
const MISSING = Symbol('missing');
type PostingKey = Scalar | typeof MISSING;

/** Paths with postings; filters on further paths are answered by scanning. */
const MAX_INDEXED_PATHS = 64;

interface PathPostings {
  readonly segments: readonly string[];
  readonly keysByValue: Map<PostingKey, Set<number>>;
  memberships: number;
  valueBytes: number;
}

/** A key set from postings plus whether `match` may hand it out without copying. */
interface Planned {
  readonly keys: ReadonlySet<number>;
  readonly owned: boolean;
}

export class MetadataIndex {
  readonly #records = new Map<number, unknown>();
  readonly #postingsByPath = new Map<string, PathPostings>();
  #metadataBytes = 0;

  get size(): number {
    return this.#records.size;
  }

  /** The metadata stored for `key` (`undefined` when absent or stored without metadata). */
  get(key: number): unknown {
    return this.#records.get(key);
  }

  has(key: number): boolean {
    return this.#records.has(key);
  }

  /** Adds or replaces the metadata of `key` (`undefined`: a record without metadata). */
  set(key: number, metadata: unknown): void {
    if (!Number.isSafeInteger(key) || key < 0) {
      throw new ValidationError('MetadataIndex keys must be non-negative safe integers.', { path: 'key' });
    }
    if (this.#records.has(key)) this.delete(key);
    this.#records.set(key, metadata);
    this.#metadataBytes += estimateValueBytes(metadata);
    for (const postings of this.#postingsByPath.values()) addPostings(postings, key, metadata);
  }

  /** Removes `key`; returns whether it was present. */
  delete(key: number): boolean {
    if (!this.#records.has(key)) return false;
    const metadata = this.#records.get(key);
    for (const postings of this.#postingsByPath.values()) removePostings(postings, key, metadata);
    this.#metadataBytes -= estimateValueBytes(metadata);
    this.#records.delete(key);
    return true;
  }

  clear(): void {
    this.#records.clear();
    this.#postingsByPath.clear();
    this.#metadataBytes = 0;
  }

  /** Keys of every record whose metadata satisfies `filter` (a fresh Set the caller owns). */
  match(filter: CompiledFilter): Set<number> {
    if (filter.matchesEverything) return new Set(this.#records.keys());
    const planned = this.#plan(filter.root);
    if (planned !== undefined) return planned.owned ? (planned.keys as Set<number>) : new Set(planned.keys);
    const keys = new Set<number>();
    for (const [key, metadata] of this.#records) {
      if (filter(metadata)) keys.add(key);
    }
    return keys;
  }

  /** Estimated bytes held: the metadata itself, the record map and all postings. */
  memoryUsage(): number {
    let bytes = HASH_TABLE_HEADER + this.#records.size * HASH_ENTRY + this.#metadataBytes;
    for (const postings of this.#postingsByPath.values()) {
      bytes += HASH_TABLE_HEADER + postings.valueBytes;
      bytes += postings.keysByValue.size * (HASH_ENTRY + HASH_TABLE_HEADER);
      bytes += postings.memberships * HASH_ENTRY;
    }
    return bytes;
  }

  /** Exact keys for `node` from postings, or undefined when only a scan can tell. */
  #plan(node: FilterNode): Planned | undefined {
    switch (node.kind) {
      case 'eq':
        return isScalar(node.value) ? this.#lookup(node, [node.value]) : undefined;
      case 'in':
        return node.values.every(isScalar) ? this.#lookup(node, node.values as Scalar[]) : undefined;
      case 'not':
        return node.child.kind === 'exists' ? this.#lookup(node.child, [MISSING]) : undefined;
      case 'or':
        return this.#planOr(node.children);
      case 'and':
        return this.#planAnd(node.children);
      default:
        return undefined;
    }
  }

  /** Records whose path holds one of `values`; `null` also matches records where it is missing. */
  #lookup(node: FieldNode, values: readonly PostingKey[]): Planned | undefined {
    const postings = this.#postingsFor(node);
    if (postings === undefined) return undefined;
    const wanted: readonly PostingKey[] = values.includes(null) ? [...values, MISSING] : values;
    const sets = wanted.flatMap((value) => postings.keysByValue.get(value) ?? []);
    if (sets.length === 1) return { keys: sets[0]!, owned: false };
    return { keys: unionOf(sets), owned: true };
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

  /** Intersects what postings can answer, smallest first, then checks the rest per record. */
  #planAnd(children: readonly FilterNode[]): Planned | undefined {
    const sets: ReadonlySet<number>[] = [];
    const checks: NodeTest[] = [];
    for (const child of children) {
      const planned = this.#plan(child);
      if (planned === undefined) checks.push(child.test);
      else sets.push(planned.keys);
    }
    if (sets.length === 0) return undefined;
    sets.sort((a, b) => a.size - b.size);
    const [smallest, ...others] = sets as [ReadonlySet<number>, ...ReadonlySet<number>[]];
    const keys = new Set<number>();
    for (const key of smallest) {
      if (!others.every((set) => set.has(key))) continue;
      const metadata = this.#records.get(key);
      if (checks.every((check) => safely(check, metadata))) keys.add(key);
    }
    return { keys, owned: true };
  }

  #postingsFor(node: FieldNode): PathPostings | undefined {
    const existing = this.#postingsByPath.get(node.path);
    if (existing !== undefined) return existing;
    if (this.#postingsByPath.size >= MAX_INDEXED_PATHS) return undefined;
    const postings: PathPostings = { segments: node.segments, keysByValue: new Map(), memberships: 0, valueBytes: 0 };
    for (const [key, metadata] of this.#records) addPostings(postings, key, metadata);
    this.#postingsByPath.set(node.path, postings);
    return postings;
  }
}

function safely(test: NodeTest, metadata: unknown): boolean {
  try {
    return test(metadata);
  } catch {
    return false;
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

function addPostings(postings: PathPostings, key: number, metadata: unknown): void {
  for (const value of postingKeysOf(metadata, postings.segments)) {
    let keys = postings.keysByValue.get(value);
    if (keys === undefined) {
      keys = new Set();
      postings.keysByValue.set(value, keys);
      if (typeof value === 'string') postings.valueBytes += estimateStringBytes(value);
    }
    keys.add(key);
    postings.memberships++;
  }
}

function removePostings(postings: PathPostings, key: number, metadata: unknown): void {
  for (const value of postingKeysOf(metadata, postings.segments)) {
    const keys = postings.keysByValue.get(value);
    if (keys === undefined || !keys.delete(key)) continue;
    postings.memberships--;
    if (keys.size === 0) {
      postings.keysByValue.delete(value);
      if (typeof value === 'string') postings.valueBytes -= estimateStringBytes(value);
    }
  }
}

function unionOf(sets: readonly ReadonlySet<number>[]): Set<number> {
  const union = new Set<number>();
  for (const set of sets) for (const key of set) union.add(key);
  return union;
}
