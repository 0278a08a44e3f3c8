/**
 * Embeddings in the core API (`createIndex({ embedding })`, CyborgDB's
 * `embeddingModel` done with a function the application brings): checking
 * the caller's embedding, calling it in batches, and checking what it
 * returns before anything is written. vecvault downloads and runs no model.
 */
import { EmbeddingError, ValidationError } from '../errors.js';
import type { EmbeddingRef } from '../storage/manifest.js';
import type { Embedding, UpsertParams, VectorItem } from './types.js';
import { checkPositiveInt, isPlainObject, toVector, type VectorSpace } from './validate.js';

/**
 * Texts per `embed` call when the embedding sets no `batchSize`: small enough
 * that one call to a local model stays well under a second on a laptop CPU
 * and a hosted API's request-size limits are not reached, large enough that
 * per-call overhead is amortised.
 */
export const DEFAULT_EMBED_BATCH_SIZE = 64;
const MAX_EMBED_BATCH_SIZE = 100_000;
const MAX_NAME_LENGTH = 255;

/** A checked embedding: the caller's functions, its name, and the batch size to use. */
export interface CheckedEmbedding {
  readonly name: string;
  readonly dimension: number | undefined;
  readonly batchSize: number;
  readonly embed: Embedding['embed'];
  readonly embedQuery: Embedding['embedQuery'];
}

/** Checks `createIndex({ embedding })` / `loadIndex({ embedding })`; the functions are bound to their object. */
export function checkEmbedding(value: unknown, path = 'embedding'): CheckedEmbedding {
  if (typeof value !== 'object' || value === null) {
    throw new ValidationError(`${path} must be an object { name, dimension?, embed(texts) }.`, { path });
  }
  const e = value as Record<string, unknown>;
  if (typeof e.name !== 'string' || e.name.length === 0 || e.name.length > MAX_NAME_LENGTH || !e.name.isWellFormed()) {
    throw new ValidationError(`${path}.name must be a non-empty string of at most ${MAX_NAME_LENGTH} characters naming the model (e.g. 'all-MiniLM-L6-v2').`, {
      path: `${path}.name`,
    });
  }
  if (typeof e.embed !== 'function') {
    throw new ValidationError(`${path}.embed must be a function (texts: string[]) => Promise<number[][]>.`, { path: `${path}.embed` });
  }
  if (e.embedQuery !== undefined && typeof e.embedQuery !== 'function') {
    throw new ValidationError(`${path}.embedQuery must be a function (text: string) => Promise<number[]>, or left out.`, { path: `${path}.embedQuery` });
  }
  const dimension = e.dimension === undefined ? undefined : checkPositiveInt(e.dimension, `${path}.dimension`, 65_536);
  const batchSize = e.batchSize === undefined ? DEFAULT_EMBED_BATCH_SIZE : checkPositiveInt(e.batchSize, `${path}.batchSize`, MAX_EMBED_BATCH_SIZE);
  const embed = (e.embed as Embedding['embed']).bind(value);
  const embedQuery = e.embedQuery === undefined ? undefined : (e.embedQuery as NonNullable<Embedding['embedQuery']>).bind(value);
  return { name: e.name, dimension, batchSize, embed, embedQuery };
}

/**
 * Whether `embedding` may embed text for an index that recorded `ref`: the
 * same name, and a declared dimension that agrees with the index's.
 * @throws `ValidationError` (path `embedding.name` / `embedding.dimension`) otherwise.
 */
export function checkEmbeddingMatches(embedding: CheckedEmbedding, ref: EmbeddingRef | undefined, dimension: number | null, indexName: string): void {
  if (ref === undefined) {
    throw new ValidationError(
      `Index "${indexName}" was created without an embedding, so its vectors may come from any model: load it without embedding and pass vectors.`,
      { path: 'embedding' },
    );
  }
  if (ref.name !== embedding.name) {
    throw new ValidationError(
      `Index "${indexName}" was created with embedding "${ref.name}", not "${embedding.name}": pass an embedding of that name (vectors from another model do not compare).`,
      { path: 'embedding.name' },
    );
  }
  if (embedding.dimension !== undefined && dimension !== null && embedding.dimension !== dimension) {
    throw new ValidationError(`embedding.dimension is ${embedding.dimension}; index "${indexName}" has dimension ${dimension}.`, {
      path: 'embedding.dimension',
    });
  }
}

/** The error for a text call on a handle that has no embedding to make vectors with. */
export function noEmbeddingError(ref: EmbeddingRef | undefined, indexName: string, path: string): ValidationError {
  return ref === undefined
    ? new ValidationError(`${path}: index "${indexName}" has no embedding to turn text into vectors. Pass vectors, or create the index with { embedding }.`, {
        path,
      })
    : new ValidationError(
        `${path}: index "${indexName}" embeds text with "${ref.name}", which this handle was not given. Load it with loadIndex({ …, embedding }) of that name, or pass vectors.`,
        { path },
      );
}

/**
 * Embeds `texts` (one `embed` call per `batchSize` texts, one after another)
 * and checks every vector: one per text, all of one dimension (the index's
 * when it has one, else the embedding's declared one, else the first
 * vector's), finite and usable under the index's metric.
 * @returns the vectors as one flat float32 array, row i for text i.
 * @throws `EmbeddingError` when `embed` throws or returns anything else (`cause` holds the reason).
 */
export async function embedTexts(
  embedding: CheckedEmbedding,
  texts: readonly string[],
  dimension: number | null,
  space: VectorSpace,
  asQuery = false,
): Promise<{ data: Float32Array; dimension: number }> {
  let dim = dimension ?? embedding.dimension ?? null;
  if (dimension !== null && embedding.dimension !== undefined && embedding.dimension !== dimension) {
    throw new EmbeddingError(`Embedding "${embedding.name}" declares dimension ${embedding.dimension}; the index has ${dimension}.`);
  }
  let data = dim === null ? null : new Float32Array(texts.length * dim);
  for (let start = 0; start < texts.length; start += embedding.batchSize) {
    const batch = texts.slice(start, start + embedding.batchSize);
    const rows = await callEmbedding(embedding, batch, asQuery);
    for (let j = 0; j < rows.length; j++) {
      const i = start + j;
      let row: Float32Array;
      try {
        row = toVector(rows[j], dim, 'vector', space);
      } catch (error) {
        if (!(error instanceof ValidationError)) throw error;
        throw new EmbeddingError(`Embedding "${embedding.name}" returned an unusable vector for text ${i}: ${error.message}`, { cause: error });
      }
      if (data === null) {
        dim = row.length; // neither the index nor the embedding fixed it: the first vector does
        data = new Float32Array(texts.length * dim);
      }
      data.set(row, i * dim!);
    }
  }
  return { data: data ?? new Float32Array(0), dimension: dim! };
}

/** One call of the caller's function, its failure wrapped with `cause`, its result checked to be one row per text. */
async function callEmbedding(embedding: CheckedEmbedding, batch: string[], asQuery: boolean): Promise<unknown[]> {
  let result: unknown;
  try {
    const embedQuery = embedding.embedQuery;
    result = asQuery && embedQuery !== undefined ? await Promise.all(batch.map((text) => embedQuery(text))) : await embedding.embed(batch);
  } catch (error) {
    throw new EmbeddingError(`Embedding "${embedding.name}" failed on ${batch.length} text(s); nothing was written. See cause.`, { cause: error });
  }
  if (!Array.isArray(result) || result.length !== batch.length) {
    const got = Array.isArray(result) ? `${result.length} vectors` : typeof result;
    throw new EmbeddingError(`Embedding "${embedding.name}" returned ${got} for ${batch.length} text(s); it must return one vector per text, in order.`);
  }
  return result;
}

/**
 * An upsert whose items may lack vectors: those with string `contents` and no
 * `vector` get one from the embedding (null when the handle has none, which
 * is an error only if such an item exists). Returns the upsert as `{ items }`
 * with every vector filled in, or `params` itself when nothing needed
 * embedding; all other checks are normalizeUpsert's.
 */
export async function embedUpsert(
  params: UpsertParams,
  embedding: CheckedEmbedding | null,
  ref: EmbeddingRef | undefined,
  indexName: string,
  dimension: number | null,
  space: VectorSpace,
): Promise<UpsertParams> {
  const shaped = asItems(params);
  if (shaped === null) return params;
  const { items, base } = shaped;
  const need: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (!isPlainObject(item) || (item.vector !== undefined && item.vector !== null)) continue;
    const where = base === 'items' ? `items[${i}]` : `vectors[${i}]`;
    if (typeof item.contents !== 'string') {
      throw new ValidationError(`${where} has no vector, and no text contents to embed: pass a vector, or contents as a string.`, { path: where });
    }
    if (!item.contents.isWellFormed()) {
      throw new ValidationError(`${where}.contents must be well-formed Unicode (no lone surrogates).`, { path: `${where}.contents` });
    }
    need.push(i);
  }
  if (need.length === 0) return params;
  if (embedding === null) throw noEmbeddingError(ref, indexName, base === 'items' ? `items[${need[0]}].vector` : `vectors[${need[0]}]`);
  const texts = need.map((i) => (items[i] as { contents: string }).contents);
  const { data, dimension: dim } = await embedTexts(embedding, texts, dimension, space);
  const filled: VectorItem[] = items.map((item) => item as VectorItem);
  need.forEach((i, row) => {
    filled[i] = { ...(items[i] as object), vector: data.subarray(row * dim, (row + 1) * dim) } as VectorItem;
  });
  return { items: filled };
}

/** The upsert's items whatever its shape (columns become items), or null for a shape normalizeUpsert will refuse. */
function asItems(params: UpsertParams): { items: unknown[]; base: 'items' | 'vectors' } | null {
  if (Array.isArray(params)) return { items: params, base: 'items' };
  if (!isPlainObject(params)) return null;
  if ('items' in params) return Array.isArray(params.items) ? { items: params.items, base: 'items' } : null;
  const { ids, vectors, metadata, contents } = params as Record<string, unknown>;
  if (!Array.isArray(ids)) return null;
  if (vectors !== undefined && (!Array.isArray(vectors) || vectors.length !== ids.length)) return null;
  if (metadata !== undefined && (!Array.isArray(metadata) || metadata.length !== ids.length)) return null;
  if (contents !== undefined && (!Array.isArray(contents) || contents.length !== ids.length)) return null;
  if (vectors === undefined && contents === undefined) return null;
  const items = ids.map((id, i) => ({
    id,
    vector: (vectors as unknown[] | undefined)?.[i],
    metadata: (metadata as unknown[] | undefined)?.[i],
    contents: (contents as unknown[] | undefined)?.[i],
  }));
  return { items, base: 'vectors' };
}

/** `query({ queryContents })`: one string, or a non-empty array of them. */
export function checkQueryContents(value: unknown): { texts: string[]; batch: boolean } {
  const texts = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(texts) || texts.length === 0 || !texts.every((t) => typeof t === 'string')) {
    throw new ValidationError('queryContents must be a string or a non-empty array of strings.', { path: 'queryContents' });
  }
  texts.forEach((t: string, i) => {
    if (!t.isWellFormed()) throw new ValidationError(`queryContents[${i}] must be well-formed Unicode (no lone surrogates).`, { path: 'queryContents' });
  });
  return { texts, batch: Array.isArray(value) };
}
