/**
 * `vecvault/langchain`: an encrypted vecvault index as a LangChain.js
 * `VectorStore`. Built on the public API only (`../index.js`); the main
 * entry never imports this file, so apps without LangChain install and load
 * nothing of it (`@langchain/core` is an optional peer dependency).
 */
import { randomUUID } from 'node:crypto';
import type { Callbacks } from '@langchain/core/callbacks/manager';
import { Document, type DocumentInterface } from '@langchain/core/documents';
import type { EmbeddingsInterface } from '@langchain/core/embeddings';
import { maximalMarginalRelevance } from '@langchain/core/utils/math';
import { VectorStore, type MaxMarginalRelevanceSearchOptions } from '@langchain/core/vectorstores';
import {
  IndexNotFoundError,
  ValidationError,
  type Client,
  type Contents,
  type Embedding,
  type EncryptedIndex,
  type Filter,
  type Metadata,
  type Metric,
  type QueryResultItem,
} from '../index.js';

/** How `new VecvaultStore(embeddings, config)` finds (or creates) its index. */
export interface VecvaultStoreConfig {
  /** An open `Client` on the store directory; the application owns it (and closes it). */
  client: Client;
  indexName: string;
  /** The index's 32-byte key; exactly one of `indexKey` / `kmsName` (copied, and wiped once the index is open). */
  indexKey?: Uint8Array;
  /** A KMS slot of the Client's registry holding the index's key. */
  kmsName?: string;
  /** Metric of an index this store creates. Default `'cosine'` (what text embeddings are made for); an existing index keeps its own. */
  metric?: Metric;
  /**
   * The embedding model's name. When set, an index this store creates records it (`createIndex({ embedding })`),
   * loading checks it, and the index also answers `query({ queryContents })` through the core API.
   */
  embeddingName?: string;
}

/**
 * A LangChain `Embeddings` object as a vecvault `Embedding`: `embedDocuments`
 * for upserts, `embedQuery` for `queryContents`.
 * @example
 * ```ts
 * const index = await client.createIndex({ indexName: 'notes', indexKey, embedding: fromLangChainEmbeddings('all-MiniLM-L6-v2', embeddings) });
 * ```
 */
export function fromLangChainEmbeddings(name: string, embeddings: EmbeddingsInterface, options: { dimension?: number; batchSize?: number } = {}): Embedding {
  const embedding: Embedding = {
    name,
    embed: (texts) => embeddings.embedDocuments(texts),
    embedQuery: (text) => embeddings.embedQuery(text),
  };
  if (options.dimension !== undefined) embedding.dimension = options.dimension;
  if (options.batchSize !== undefined) embedding.batchSize = options.batchSize;
  return embedding;
}

/**
 * An encrypted vecvault index as a LangChain.js `VectorStore`.
 *
 * `Document.pageContent` is stored as the record's encrypted `contents`,
 * `Document.metadata` as its encrypted metadata (JSON-like values only), and
 * `Document.id` as its id (a random UUID when absent). Filters are vecvault's
 * Mongo-style language (`{ folder: 'work', year: { $gte: 2024 } }`).
 *
 * Scores from `similaritySearchWithScore` / `similaritySearchVectorWithScore`
 * are similarities, **higher = closer**, as LangChain.js callers expect of
 * a store: `1 − distance` for `cosine` (the cosine similarity, −1 … 1) and
 * `ip` (the inner product), `1 / (1 + distance)` for `euclidean` and
 * `squared_euclidean` (0 … 1, 1 for an exact match).
 *
 * The index is opened (or created, with `metric`) on first use;
 * `fromExistingIndex` opens it at once and fails if it does not exist.
 * @example
 * ```ts
 * const store = new VecvaultStore(embeddings, { client, indexName: 'notes', indexKey });
 * await store.addDocuments([{ pageContent: 'the cat sat on the mat', metadata: { folder: 'pets' } }]);
 * const docs = await store.asRetriever({ k: 2, filter: { folder: 'pets' } }).invoke('where is the cat?');
 * ```
 */
export class VecvaultStore extends VectorStore {
  declare FilterType: Filter;

  readonly #client: Client;
  readonly #indexName: string;
  readonly #kmsName: string | undefined;
  readonly #metric: Metric;
  readonly #embeddingName: string | undefined;
  /** A copy of the key until the index is open (then wiped). */
  #indexKey: Uint8Array | undefined;
  #index: Promise<EncryptedIndex> | null = null;

  _vectorstoreType(): string {
    return 'vecvault';
  }

  constructor(embeddings: EmbeddingsInterface, config: VecvaultStoreConfig) {
    if (typeof config !== 'object' || config === null || typeof config.client !== 'object' || config.client === null) {
      throw new ValidationError('new VecvaultStore(embeddings, { client, indexName, indexKey | kmsName }) needs an open Client.', { path: 'client' });
    }
    if (typeof config.indexName !== 'string' || config.indexName.length === 0) {
      throw new ValidationError('VecvaultStore needs an indexName.', { path: 'indexName' });
    }
    // The key stays out of LangChain's serializable kwargs (lc_kwargs): only names go to the base class.
    super(embeddings, { indexName: config.indexName, metric: config.metric });
    this.#client = config.client;
    this.#indexName = config.indexName;
    this.#kmsName = config.kmsName;
    this.#metric = config.metric ?? 'cosine';
    this.#embeddingName = config.embeddingName;
    this.#indexKey = config.indexKey instanceof Uint8Array ? Uint8Array.from(config.indexKey) : (config.indexKey as undefined);
  }

  /** The vecvault index behind the store, opened (or created) on first call. */
  index(): Promise<EncryptedIndex> {
    this.#index ??= this.#open(true).catch((error: unknown) => {
      this.#index = null; // a later call may retry (e.g. after the store lock was released)
      throw error;
    });
    return this.#index;
  }

  async #open(create: boolean): Promise<EncryptedIndex> {
    const key = this.#indexKey;
    const source = {
      indexName: this.#indexName,
      ...(key === undefined ? {} : { indexKey: key }),
      ...(this.#kmsName === undefined ? {} : { kmsName: this.#kmsName }),
    };
    const embedding = this.#embeddingName === undefined ? undefined : fromLangChainEmbeddings(this.#embeddingName, this.embeddings);
    let index: EncryptedIndex;
    try {
      index = await this.#client.loadIndex({ ...source, ...(embedding ? { embedding } : {}) });
    } catch (error) {
      if (!create || !(error instanceof IndexNotFoundError)) throw error;
      index = await this.#client.createIndex({ ...source, metric: this.#metric, ...(embedding ? { embedding } : {}) });
    }
    key?.fill(0);
    this.#indexKey = undefined;
    return index;
  }

  /**
   * Stores documents with vectors already computed, one upsert (one atomic commit).
   * @param options `ids`: one per document, else each `Document.id`, else a random UUID. The same id overwrites.
   * @returns the ids, in order.
   */
  async addVectors(vectors: number[][], documents: DocumentInterface[], options: { ids?: string[] } = {}): Promise<string[]> {
    if (!Array.isArray(vectors) || !Array.isArray(documents) || vectors.length !== documents.length) {
      throw new ValidationError('addVectors needs one vector per document.', { path: 'vectors' });
    }
    const ids = options.ids ?? documents.map((doc) => doc.id ?? randomUUID());
    if (!Array.isArray(ids) || ids.length !== documents.length) throw new ValidationError('addVectors: ids must have one id per document.', { path: 'ids' });
    if (documents.length === 0) return [];
    const index = await this.index();
    await index.upsert({
      items: documents.map((doc, i) => ({ id: ids[i]!, vector: vectors[i]!, contents: doc.pageContent, metadata: doc.metadata as Metadata })),
    });
    return ids;
  }

  /** Embeds the documents' `pageContent` with the store's embeddings (`embedDocuments`), then `addVectors`. */
  async addDocuments(documents: DocumentInterface[], options: { ids?: string[] } = {}): Promise<string[]> {
    const vectors = await this.embeddings.embedDocuments(documents.map((doc) => doc.pageContent));
    return this.addVectors(vectors, documents, options);
  }

  /**
   * The `k` documents nearest to `query` that match `filter`, with their
   * similarity: higher = closer (see the class notes for each metric's range).
   */
  async similaritySearchVectorWithScore(query: number[], k: number, filter?: Filter): Promise<[DocumentInterface, number][]> {
    const index = await this.index();
    if (index.getDimension() === null) return []; // nothing stored yet
    const { results } = await index.query({
      queryVectors: query,
      topK: k,
      include: ['distance', 'metadata', 'contents'],
      ...(filter ? { filters: filter } : {}),
    });
    const metric = index.getMetric();
    return results.map((item) => [toDocument(item), similarity(metric, item.distance!)]);
  }

  /**
   * Maximal marginal relevance: fetches `fetchK` (default 20) candidates with
   * their vectors, then picks `k` that are both close to the query and unlike
   * each other (`lambda`: 1 = relevance only, 0 = diversity only; default 0.5),
   * with `@langchain/core`'s `maximalMarginalRelevance`.
   */
  override async maxMarginalRelevanceSearch(
    query: string,
    options: MaxMarginalRelevanceSearchOptions<Filter>,
    _callbacks?: Callbacks,
  ): Promise<DocumentInterface[]> {
    const { k, fetchK = 20, lambda = 0.5, filter } = options;
    const index = await this.index();
    if (index.getDimension() === null) return [];
    const queryVector = await this.embeddings.embedQuery(query);
    const { results } = await index.query({
      queryVectors: queryVector,
      topK: Math.max(fetchK, k),
      include: ['vector', 'metadata', 'contents'],
      ...(filter ? { filters: filter } : {}),
    });
    if (results.length === 0) return [];
    const picked = maximalMarginalRelevance(
      queryVector,
      results.map((item) => item.vector!),
      lambda,
      k,
    );
    return picked.map((i) => toDocument(results[i]!));
  }

  /** Deletes documents by id (`{ ids }`); ids that are not there are ignored. */
  override async delete(params: { ids: string[] }): Promise<void> {
    if (typeof params !== 'object' || params === null || !Array.isArray(params.ids)) {
      throw new ValidationError('VecvaultStore.delete takes { ids }.', { path: 'ids' });
    }
    const index = await this.index();
    await index.delete({ ids: params.ids });
  }

  /** A store over `texts` (metadata per text, or one object for all), created or extended in one upsert. */
  static override async fromTexts(
    texts: string[],
    metadatas: object[] | object,
    embeddings: EmbeddingsInterface,
    config: VecvaultStoreConfig,
  ): Promise<VecvaultStore> {
    const docs = texts.map(
      (pageContent, i) => new Document({ pageContent, metadata: (Array.isArray(metadatas) ? (metadatas[i] ?? {}) : metadatas) as Record<string, unknown> }),
    );
    return VecvaultStore.fromDocuments(docs, embeddings, config);
  }

  /** A store over `docs` (their ids honoured), created or extended in one upsert. */
  static override async fromDocuments(docs: DocumentInterface[], embeddings: EmbeddingsInterface, config: VecvaultStoreConfig): Promise<VecvaultStore> {
    const store = new VecvaultStore(embeddings, config);
    await store.addDocuments(docs);
    return store;
  }

  /**
   * A store over an index that exists: it is loaded now (key checked), never created.
   * @throws `VECVAULT_INDEX_NOT_FOUND` when there is no such index; `VECVAULT_INVALID_KEY` for another key.
   */
  static async fromExistingIndex(embeddings: EmbeddingsInterface, config: VecvaultStoreConfig): Promise<VecvaultStore> {
    const store = new VecvaultStore(embeddings, config);
    store.#index = store.#open(false);
    await store.#index;
    return store;
  }
}

/** Similarity from vecvault's distance, higher = closer. */
function similarity(metric: Metric, distance: number): number {
  return metric === 'cosine' || metric === 'ip' ? 1 - distance : 1 / (1 + distance);
}

function toDocument(item: QueryResultItem): Document {
  return new Document({ pageContent: text(item.contents), metadata: item.metadata ?? {}, id: item.id });
}

/** Contents written as bytes by other code come back as UTF-8 text. */
function text(contents: Contents | undefined): string {
  if (contents === undefined) return '';
  return typeof contents === 'string' ? contents : Buffer.from(contents.buffer, contents.byteOffset, contents.byteLength).toString('utf8');
}
