/**
 * Argument checks for the public API. Everything is checked before anything
 * is written, so a bad call changes nothing. Messages name the argument and
 * what to do, and never echo vector values, metadata or contents.
 */
import { ValidationError } from '../errors.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import type { Contents, Metadata, Metric, StoragePrecision, UpsertItem, UpsertParams, VectorInput, VectorItem } from './types.js';

export const MAX_ID_LENGTH = 1024;
const MAX_METADATA_DEPTH = 32;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** What a vector is checked against besides its length: the index's metric and in-memory precision. */
export interface VectorSpace {
  metric: Metric;
  precision: StoragePrecision;
}

/**
 * The largest squared length of a vector under `euclidean`,
 * `squared_euclidean` and `ip`: 2^125 (≈ 4.25e37). The engine returns
 * float32 distances, so |a − b|² ≤ (|a| + |b|)² ≤ 2^127 and |a · b| ≤ 2^125
 * stay below FLT_MAX (≈ 2^128) with room for rounding; beyond it a distance
 * can be Infinity and ranking breaks. `cosine` divides by the lengths (in
 * double precision in the engine's kernels), so length does not matter there.
 */
export const MAX_SQUARED_NORM = 2 ** 125;
/** The largest float16 value: with `storagePrecision: 'float16'` the engine holds every component as float16. */
export const FLOAT16_MAX = 65504;

/** One checked upsert item; its vector is row i of the call's flat `vectors`. */
export interface NormalizedItem {
  id: string;
  metadata: Metadata | undefined;
  contents: Contents | undefined;
}

/**
 * Where in the arguments a value sits. A function when checking many items:
 * the string is then only built for the one that fails (a path string per
 * field of every item was a large share of an upsert's validation time).
 */
type Path = string | (() => string);

function fail(path: Path, message: string): never {
  const at = typeof path === 'string' ? path : path();
  throw new ValidationError(`${at} ${message}`, { path: at });
}

function sub(path: Path, suffix: string): Path {
  return typeof path === 'string' ? path + suffix : () => path() + suffix;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function checkIndexName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) fail('indexName', 'must be a non-empty string.');
  if (!name.isWellFormed()) fail('indexName', 'must be well-formed Unicode (no lone surrogates).');
  if (name.length > 255) fail('indexName', 'must be at most 255 characters.');
  return name;
}

export function checkPositiveInt(value: unknown, path: string, max = 2 ** 31 - 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    fail(path, `must be an integer from 1 to ${max}.`);
  }
  return value;
}

export function checkOneOf<T extends string>(value: unknown, allowed: readonly T[], path: string): T {
  if (!allowed.includes(value as T)) fail(path, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}.`);
  return value as T;
}

export function checkId(id: unknown, path: Path): string {
  if (typeof id !== 'string') fail(path, 'must be a string id.');
  if (id.length === 0) fail(path, 'must not be empty.');
  if (id.length > MAX_ID_LENGTH) fail(path, `must be at most ${MAX_ID_LENGTH} characters.`);
  // A lone surrogate would be stored as U+FFFD and collide with other ids.
  if (!id.isWellFormed()) fail(path, 'must be well-formed Unicode (no lone surrogates).');
  return id;
}

export function checkIds(ids: unknown, path = 'ids', allowDuplicates = false): string[] {
  if (!Array.isArray(ids)) fail(path, 'must be an array of string ids.');
  const seen = new Set<string>();
  ids.forEach((id, i) => {
    checkId(id, `${path}[${i}]`);
    if (!allowDuplicates && seen.has(id)) fail(`${path}[${i}]`, 'repeats an id given earlier in the same call; pass each id once.');
    seen.add(id);
  });
  return ids as string[];
}

/** The fallback sets, built once: queries without `include` are the hot path. Callers only read them. */
const defaultIncludes = new WeakMap<readonly string[], ReadonlySet<string>>();

export function checkInclude<T extends string>(include: unknown, allowed: readonly T[], fallback: readonly T[]): ReadonlySet<T> {
  if (include === undefined) {
    let set = defaultIncludes.get(fallback);
    if (!set) defaultIncludes.set(fallback, (set = new Set(fallback)));
    return set as ReadonlySet<T>;
  }
  if (!Array.isArray(include)) fail('include', `must be an array of ${allowed.join(', ')}.`);
  include.forEach((field, i) => checkOneOf(field, allowed, `include[${i}]`));
  return new Set(include as T[]);
}

/** Copies a vector to float32, checking length and that every value is finite and fits the index's distances. */
export function toVector(value: unknown, dimension: number | null, path: string, space: VectorSpace): Float32Array {
  const input = checkVectorShape(value, dimension, path);
  const out = new Float32Array(input.length);
  copyVector(input, path, space, out, 0);
  return out;
}

function checkVectorShape(value: unknown, dimension: number | null, path: Path): VectorInput {
  if (!Array.isArray(value) && !(value instanceof Float32Array) && !(value instanceof Float64Array)) {
    fail(path, 'must be an array of numbers or a Float32Array.');
  }
  const input = value as VectorInput;
  if (input.length === 0) fail(path, 'must not be empty.');
  if (dimension !== null && input.length !== dimension) fail(path, `has ${input.length} values; the index dimension is ${dimension}.`);
  return input;
}

/**
 * Checks every value (finite, fits float32, and float16 when the index holds
 * float16) while copying it to `out` at `offset`, then the vector's length
 * (checkNorm).
 */
function copyVector(input: VectorInput, path: Path, space: VectorSpace, out: Float32Array, offset: number): void {
  const limit = componentLimit(space);
  let norm = 0;
  for (let j = 0; j < input.length; j++) {
    const x = input[j];
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(sub(path, `[${j}]`), 'must be a finite number (no NaN or Infinity).');
    const f = Math.fround(x);
    if (!Number.isFinite(f)) fail(sub(path, `[${j}]`), 'overflows float32.');
    if (Math.abs(f) > limit) fail(sub(path, `[${j}]`), FLOAT16_MESSAGE);
    out[offset + j] = f;
    norm += f * f;
  }
  checkNorm(norm, path, space);
}

const FLOAT16_MESSAGE = `exceeds ${FLOAT16_MAX} in magnitude, the largest float16 value (storagePrecision 'float16'); scale the vectors down or use 'float32'.`;

function componentLimit(space: VectorSpace): number {
  return space.precision === 'float16' ? FLOAT16_MAX : Infinity;
}

/** `norm` is the squared length of the float32 values, summed in double precision (exact enough to compare with the limit). */
function checkNorm(norm: number, path: Path, space: VectorSpace): void {
  if (space.metric === 'cosine') {
    if (norm === 0) fail(path, 'is all zeros, which has no cosine distance to anything.');
  } else if (norm > MAX_SQUARED_NORM) {
    fail(
      path,
      `is too long for metric '${space.metric}': its squared length exceeds 2^125 (about 4.25e37), where float32 distances overflow. Scale the vectors down.`,
    );
  }
}

/**
 * Flat query rows checked like toVector would. A Float32Array is checked in
 * place (a copy per query cost more than a small search); a Float64Array is
 * copied to float32 while checking. Paths name row i (for batches) and value
 * j, built only on failure.
 */
function checkQueryRows(flat: Float32Array | Float64Array, dim: number, space: VectorSpace): Float32Array {
  const count = flat.length / dim;
  const copy = flat instanceof Float32Array ? null : new Float32Array(flat.length);
  const limit = componentLimit(space);
  for (let i = 0; i < count; i++) {
    let norm = 0;
    for (let j = i * dim; j < (i + 1) * dim; j++) {
      const x = flat[j]!;
      if (!Number.isFinite(x)) fail(`${queryRowPath(i, count)}[${j - i * dim}]`, 'must be a finite number (no NaN or Infinity).');
      const f = Math.fround(x);
      if (!Number.isFinite(f)) fail(`${queryRowPath(i, count)}[${j - i * dim}]`, 'overflows float32.');
      if (Math.abs(f) > limit) fail(`${queryRowPath(i, count)}[${j - i * dim}]`, FLOAT16_MESSAGE);
      if (copy) copy[j] = f;
      norm += f * f;
    }
    checkNorm(norm, queryRowPath(i, count), space);
  }
  return copy ?? (flat as Float32Array);
}

function queryRowPath(row: number, count: number): string {
  return count > 1 ? `queryVectors[${row}]` : 'queryVectors';
}

export function checkMetadata(value: unknown, path: Path): Metadata | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value)) fail(path, 'must be a plain object.');
  // Our own copy, made while checking: a caller mutating its object later must not change what filters and snapshots see.
  const copy = copyJsonLike(value, 0);
  // The walk that names the failing field builds a path string per field: run it only when the copy found a problem.
  if (copy === NOT_JSON_LIKE) {
    checkJsonLike(value, typeof path === 'string' ? path : path(), 0);
    fail(path, 'must hold only strings, finite numbers, booleans, null, arrays and plain objects.'); // the two checks disagree: never expected
  }
  return copy as Metadata;
}

const NOT_JSON_LIKE = Symbol('not JSON-like');

/**
 * A deep copy under checkJsonLike's rules, or NOT_JSON_LIKE: one pass with no
 * path strings (structuredClone plus a separate check cost ~4 µs per item).
 */
function copyJsonLike(value: unknown, depth: number): unknown {
  if (depth > MAX_METADATA_DEPTH) return NOT_JSON_LIKE;
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'string') return value.isWellFormed() ? value : NOT_JSON_LIKE;
  if (typeof value === 'number') return Number.isFinite(value) ? value : NOT_JSON_LIKE;
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const v = copyJsonLike(value[i], depth + 1);
      if (v === NOT_JSON_LIKE) return NOT_JSON_LIKE;
      out[i] = v;
    }
    return out;
  }
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) return NOT_JSON_LIKE;
      const v = value[key];
      if (v === undefined) continue;
      const copied = copyJsonLike(v, depth + 1);
      if (copied === NOT_JSON_LIKE) return NOT_JSON_LIKE;
      out[key] = copied;
    }
    return out;
  }
  return NOT_JSON_LIKE;
}

function checkJsonLike(value: unknown, path: string, depth: number): void {
  if (depth > MAX_METADATA_DEPTH) fail(path, `nests deeper than ${MAX_METADATA_DEPTH} levels.`);
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'string') {
    if (!value.isWellFormed()) fail(path, 'must be well-formed Unicode (no lone surrogates).');
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) fail(path, 'must be a finite number.');
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkJsonLike(v, `${path}[${i}]`, depth + 1));
    return;
  }
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) fail(`${path}.${key}`, 'is a reserved key name.');
      const v = value[key];
      if (v !== undefined) checkJsonLike(v, `${path}.${key}`, depth + 1);
    }
    return;
  }
  fail(path, 'must hold only strings, finite numbers, booleans, null, arrays and plain objects.');
}

export function checkContents(value: unknown, path: Path): Contents | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') {
    if (!value.isWellFormed()) fail(path, 'must be well-formed Unicode (no lone surrogates); pass bytes as a Uint8Array.');
    return value;
  }
  if (value instanceof Uint8Array) return new Uint8Array(value);
  fail(path, 'must be a string or a Uint8Array.');
}

/**
 * An upsert of nothing, in any of the three shapes (`[]`, `{ items: [] }`,
 * `{ ids: [], vectors: [] }` with any `metadata` / `contents` also empty):
 * CyborgDB's SDK answers it with success and writes nothing, so do we.
 */
export function isEmptyUpsert(params: unknown): boolean {
  if (Array.isArray(params)) return params.length === 0;
  if (!isPlainObject(params)) return false;
  if ('items' in params) return Array.isArray(params.items) && params.items.length === 0;
  const { ids, vectors, metadata, contents } = params;
  const none = (column: unknown) => column === undefined || (Array.isArray(column) && column.length === 0);
  return Array.isArray(ids) && ids.length === 0 && Array.isArray(vectors) && vectors.length === 0 && none(metadata) && none(contents);
}

/**
 * Checks an upsert and copies its vectors into one flat float32 array, row i
 * for item i: one allocation instead of one per item, and the engine reads it as is.
 */
export async function normalizeUpsert(
  params: UpsertParams,
  dimension: number | null,
  space: VectorSpace,
): Promise<{ items: NormalizedItem[]; vectors: Float32Array; dimension: number }> {
  // Items without vectors were given theirs by embedUpsert; any left fail checkVectorShape.
  let items: (VectorItem | UpsertItem)[];
  let base = 'items';
  if (Array.isArray(params)) {
    items = params;
  } else if (isPlainObject(params) && 'items' in params) {
    if (!Array.isArray(params.items)) fail('items', 'must be an array of { id, vector, metadata?, contents? }.');
    items = params.items;
  } else if (isPlainObject(params) && 'ids' in params) {
    const { ids, vectors, metadata, contents } = params as Record<string, unknown>;
    base = 'vectors';
    if (!Array.isArray(ids)) fail('ids', 'must be an array of string ids.');
    if (!Array.isArray(vectors) || vectors.length !== ids.length) fail('vectors', `must be an array with one vector per id (${ids.length}).`);
    if (metadata !== undefined && (!Array.isArray(metadata) || metadata.length !== ids.length))
      fail('metadata', `must be an array with one entry per id (${ids.length}).`);
    if (contents !== undefined && (!Array.isArray(contents) || contents.length !== ids.length))
      fail('contents', `must be an array with one entry per id (${ids.length}).`);
    items = ids.map((id, i) => ({
      id,
      vector: vectors[i],
      metadata: (metadata as unknown[] | undefined)?.[i],
      contents: (contents as unknown[] | undefined)?.[i],
    })) as VectorItem[];
  } else {
    fail('upsert', 'takes { items }, { ids, vectors, metadata?, contents? } or an array of items.');
  }
  if (items.length === 0) fail(base, 'must not be empty.');
  const seen = new Set<string>();
  let dim = dimension;
  const out: NormalizedItem[] = [];
  let vectors = new Float32Array(0);
  // Paths of the item being checked, built only if it fails.
  let i = 0;
  const path = () => (base === 'items' ? `items[${i}]` : `ids[${i}]`);
  const idPath = () => (base === 'items' ? `items[${i}].id` : `ids[${i}]`);
  const vectorPath = () => (base === 'items' ? `items[${i}].vector` : `vectors[${i}]`);
  const metadataPath = () => (base === 'items' ? `items[${i}].metadata` : `metadata[${i}]`);
  const contentsPath = () => (base === 'items' ? `items[${i}].contents` : `contents[${i}]`);
  for (; i < items.length; i++) {
    if (i > 0 && i % SLICE === 0) await yieldToEventLoop();
    const item = items[i];
    if (!isPlainObject(item)) fail(path, 'must be an object { id, vector, metadata?, contents? }.');
    const id = checkId(item.id, idPath);
    if (seen.has(id)) fail(path, 'repeats an id given earlier in the same call; pass each id once.');
    seen.add(id);
    const input = checkVectorShape(item.vector, dim, vectorPath);
    dim ??= input.length;
    if (i === 0) vectors = new Float32Array(items.length * dim);
    copyVector(input, vectorPath, space, vectors, i * dim);
    out.push({
      id,
      metadata: checkMetadata(item.metadata, metadataPath),
      contents: checkContents(item.contents, contentsPath),
    });
  }
  return { items: out, vectors, dimension: dim! };
}

/**
 * Query vectors as one flat float32 buffer plus how many there are and
 * whether the caller sent a batch. A flat Float32Array or Float64Array is one
 * vector, or several split by `dimension` (the index's when not given).
 */
export function normalizeQueryVectors(
  value: unknown,
  dimension: number | null,
  explicitDim: unknown,
  space: VectorSpace,
): { data: Float32Array; count: number; batch: boolean } {
  if (value instanceof Float32Array || value instanceof Float64Array) {
    const dim = explicitDim === undefined ? dimension : checkPositiveInt(explicitDim, 'dimension');
    if (dim === null) return { data: toVector(value, null, 'queryVectors', space), count: 1, batch: false };
    if (dimension !== null && dim !== dimension) fail('dimension', `is ${dim}; the index dimension is ${dimension}.`);
    if (value.length === 0 || value.length % dim !== 0) fail('queryVectors', `has ${value.length} values, not a multiple of the dimension ${dim}.`);
    // A Float32Array is checked in place, not copied: the engine reads the
    // queries before query() first awaits, or copies them (pool path).
    const count = value.length / dim;
    return { data: checkQueryRows(value, dim, space), count, batch: count > 1 };
  }
  if (!Array.isArray(value) || value.length === 0) fail('queryVectors', 'must be a vector, an array of vectors, or a flat Float32Array or Float64Array.');
  if (!Array.isArray(value[0]) && !(value[0] instanceof Float32Array) && !(value[0] instanceof Float64Array)) {
    return { data: toVector(value, dimension, 'queryVectors', space), count: 1, batch: false };
  }
  const rows = value.map((row, i) => toVector(row, dimension ?? (value[0] as unknown[]).length, `queryVectors[${i}]`, space));
  const dim = rows[0]!.length;
  const data = new Float32Array(rows.length * dim);
  rows.forEach((row, i) => data.set(row, i * dim));
  return { data, count: rows.length, batch: true };
}

/** `{ onProgress? }` of a long call: the callback, or undefined. */
export function checkProgressOption(options: unknown): ((progress: { done: number; total: number }) => void) | undefined {
  if (!isPlainObject(options)) throw new ValidationError('Pass an options object, e.g. { onProgress }.', { path: 'options' });
  const { onProgress } = options;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new ValidationError('onProgress must be a function.', { path: 'onProgress' });
  return onProgress as ((progress: { done: number; total: number }) => void) | undefined;
}

/** A user id (per-user keys): a string of 1 to 256 characters. */
export function checkUserId(value: unknown, path = 'userId'): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
    throw new ValidationError('userId must be a string of 1 to 256 characters.', { path });
  }
  return value;
}
