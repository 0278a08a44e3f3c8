/**
 * Embeddings in the core API: `createIndex({ embedding })`, text upserts,
 * `query({ queryContents })`, the name recorded in the encrypted manifest,
 * and failures that write nothing. Real store, real engine, the test's own
 * deterministic embedding function.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client, EmbeddingError, type EncryptedIndex } from '../src/index.js';
import { openClient, openFresh } from './support/fixtures.js';
import { rejectsWithCode, tempStore } from './support/helpers.js';
import { countingEmbedding, wordVector } from './support/word-embedding.js';

const NOTES = [
  'the cat sat on the mat',
  'dogs chase cats in the garden',
  'stock markets fell sharply today',
  'the central bank raised interest rates',
  'a recipe for tomato soup with basil',
  'fresh basil and tomato salad',
  'rust and typescript compile to fast code',
  'vector search with hnsw graphs',
  'encrypted storage keeps notes private',
  'the garden needs water in summer',
];

const items = (texts: string[], prefix = 'n') => texts.map((contents, i) => ({ id: `${prefix}${i}`, contents, metadata: { i } }));

/** What a failed write must leave alone: the commit counter and the live ids. */
async function written(index: EncryptedIndex) {
  return { counter: index.stats().commitCounter, ids: (await index.listIds()).ids.sort() };
}

describe('createIndex({ embedding })', () => {
  it('embeds text items in batches of batchSize (one embed call per batch) and queryContents finds them', async () => {
    const embedding = countingEmbedding({ dimension: 16, batchSize: 4 });
    const { index } = await openFresh({ metric: 'cosine', embedding });
    expect((await index.upsert({ items: items(NOTES) })).upsertedCount).toBe(10);
    expect(embedding.calls).toEqual([4, 4, 2]);
    expect(index.getDimension()).toBe(16);
    expect(index.getEmbedding()).toEqual({ name: 'words-16', dimension: 16, attached: true });

    const { results } = await index.query({ queryContents: 'tomato basil soup', topK: 2, include: ['contents', 'distance'] });
    expect(results[0]!.contents).toBe('a recipe for tomato soup with basil');
    expect(embedding.calls).toEqual([4, 4, 2, 1]); // the query: one call

    // The stored vector is the embedding's, exactly (float32).
    const [got] = await index.get({ ids: ['n4'], include: ['vector'] });
    expect(got!.vector).toEqual(Array.from(Float32Array.from(wordVector(NOTES[4]!, 16))));
  });

  it('uses batches of 64 by default', async () => {
    const embedding = countingEmbedding({ dimension: 16 });
    const { index } = await openFresh({ metric: 'cosine', embedding });
    const many = Array.from({ length: 130 }, (_, i) => `note number ${i} about ${NOTES[i % NOTES.length]}`);
    await index.upsert(items(many));
    expect(embedding.calls).toEqual([64, 64, 2]);
    expect((await index.listIds()).count).toBe(130);
  });

  it('mixes items with vectors and text items in one upsert, and takes the columns shape without vectors', async () => {
    const embedding = countingEmbedding({ dimension: 16 });
    const { index } = await openFresh({ metric: 'cosine', embedding });
    await index.upsert({
      items: [
        { id: 'v', vector: wordVector('hand made vector', 16) },
        { id: 't', contents: 'made from text' },
      ],
    });
    expect(embedding.calls).toEqual([1]); // only the text item
    await index.upsert({ ids: ['c1', 'c2'], contents: ['first column text', 'second column text'] });
    await index.upsert({ ids: ['c3', 'c4'], vectors: [null, wordVector('x', 16)], contents: ['third', 'bytes are not embedded'] });
    expect(embedding.calls).toEqual([1, 2, 1]);
    expect((await index.listIds()).ids.sort()).toEqual(['c1', 'c2', 'c3', 'c4', 't', 'v']);
    const { results } = await index.query({ queryContents: ['made from text', 'second column text'], topK: 1 });
    expect(results.map((r) => r[0]!.id)).toEqual(['t', 'c2']); // an array of texts: one result list each
  });

  it('fixes the dimension from the first embedded vectors when neither createIndex nor the embedding gives one', async () => {
    const { index } = await openFresh({ metric: 'cosine', embedding: { name: 'w', embed: async (t) => t.map((x) => wordVector(x, 12)) } });
    expect(index.getDimension()).toBeNull();
    await index.upsert([{ id: 'a', contents: 'hello world' }]);
    expect(index.getDimension()).toBe(12);
    expect(index.getEmbedding()).toEqual({ name: 'w', dimension: 12, attached: true });
  });

  it('uses embedQuery for queries when the embedding has one', async () => {
    const queried: string[] = [];
    const embedding = {
      ...countingEmbedding({ dimension: 16 }),
      embedQuery: async (text: string) => {
        queried.push(text);
        return wordVector(text, 16);
      },
    };
    const { index } = await openFresh({ metric: 'cosine', embedding });
    await index.upsert(items(NOTES));
    await index.query({ queryContents: ['cats', 'dogs'], topK: 1 });
    expect(queried).toEqual(['cats', 'dogs']);
    expect(embedding.calls).toEqual([10]); // documents only
  });

  it('refuses a dimension that disagrees with the index, and an embedding of the wrong shape, before creating anything', async () => {
    const client = openClient();
    const indexKey = Client.generateKey();
    const embed = async (t: string[]) => t.map(() => [1, 0]);
    const refused = await rejectsWithCode(
      client.createIndex({ indexName: 'd', indexKey, dimension: 16, embedding: { name: 'e', dimension: 8, embed } }),
      'VECVAULT_VALIDATION',
    );
    expect((refused as { path?: string }).path).toBe('embedding.dimension');
    await rejectsWithCode(client.createIndex({ indexName: 'd', indexKey, embedding: { name: '', embed } }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(client.createIndex({ indexName: 'd', indexKey, embedding: { name: 'e' } as never }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(client.createIndex({ indexName: 'd', indexKey, embedding: { name: 'e', embed, batchSize: 0 } }), 'VECVAULT_VALIDATION');
    expect(await client.listIndexes()).toEqual([]);
  });

  it('records the embedding name inside the encrypted manifest: no store file holds it in the clear (with a negative control)', async () => {
    const name = `model-${Date.now().toString(36)}-MARK`;
    const { path, client, index } = await openFresh({ metric: 'cosine', embedding: { ...countingEmbedding({ dimension: 16 }), name } });
    await index.upsert(items(NOTES));
    await client.close();
    const files = readdirSync(path, { recursive: true, encoding: 'utf8' })
      .map((f) => join(path, f))
      .filter((f) => statSync(f).isFile());
    const holding = () => files.filter((f) => readFileSync(f).includes(name) || readFileSync(f).includes(NOTES[0]!));
    expect(files.length).toBeGreaterThan(3);
    expect(holding()).toEqual([]);
    writeFileSync(files[0]!, Buffer.concat([readFileSync(files[0]!), Buffer.from(name)])); // the scan sees a plaintext name
    expect(holding()).toEqual([files[0]]);
  });

  it('embeddingModel (a model name vecvault would have to download) stays NotSupportedError and points to embedding', async () => {
    const client = openClient();
    const error = await rejectsWithCode(
      client.createIndex({ indexName: 'm', indexKey: Client.generateKey(), embeddingModel: 'all-MiniLM-L6-v2' }),
      'VECVAULT_NOT_SUPPORTED',
    );
    expect(error.message).toContain('embedding');
  });
});

describe('embedding failures write nothing', () => {
  async function seeded(embed: (texts: string[]) => Promise<unknown>, batchSize?: number) {
    const embedding = { name: 'flaky', dimension: 16, embed: embed as never, ...(batchSize === undefined ? {} : { batchSize }) };
    const { index } = await openFresh({ metric: 'cosine', embedding });
    await index.upsert({ items: [{ id: 'seed', vector: wordVector('seed', 16) }] });
    return { index, before: await written(index) };
  }

  it('a throwing embed reaches the caller as EmbeddingError with the original error as cause', async () => {
    const boom = new Error('model server unreachable');
    const { index, before } = await seeded(async () => {
      throw boom;
    });
    const error = await rejectsWithCode(index.upsert({ items: items(NOTES) }), 'VECVAULT_EMBEDDING');
    expect(error).toBeInstanceOf(EmbeddingError);
    expect(error.cause).toBe(boom);
    expect(await written(index)).toEqual(before);
    const queryError = await rejectsWithCode(index.query({ queryContents: 'cats' }), 'VECVAULT_EMBEDDING');
    expect(queryError.cause).toBe(boom);
  });

  it('a failure in a later batch leaves the earlier batches unwritten too', async () => {
    let calls = 0;
    const { index, before } = await seeded(async (texts) => {
      if (++calls === 2) throw new Error('rate limited');
      return texts.map((t) => wordVector(t, 16));
    }, 3);
    await rejectsWithCode(index.upsert(items(NOTES)), 'VECVAULT_EMBEDDING');
    expect(calls).toBe(2);
    expect(await written(index)).toEqual(before);
  });

  it.each([
    ['too few vectors', (t: string[]) => t.slice(1).map((x) => wordVector(x, 16))],
    ['not an array', () => ({ vectors: [] })],
    ['a vector of the wrong dimension', (t: string[]) => t.map((x, i) => wordVector(x, i === 3 ? 15 : 16))],
    ['a NaN', (t: string[]) => t.map((x, i) => (i === 2 ? wordVector(x, 16).map(() => NaN) : wordVector(x, 16)))],
    ['an all-zero vector under cosine', (t: string[]) => t.map(() => new Array(16).fill(0))],
    ['Float32Array rows of the wrong length', (t: string[]) => t.map(() => new Float32Array(4).fill(1))],
  ])('an embed returning %s is EmbeddingError and writes nothing', async (_, bad) => {
    const { index, before } = await seeded(async (texts) => bad(texts));
    await rejectsWithCode(index.upsert({ items: items(NOTES) }), 'VECVAULT_EMBEDDING');
    expect(await written(index)).toEqual(before);
    await rejectsWithCode(index.query({ queryContents: ['a', 'b', 'c', 'd'] }), 'VECVAULT_EMBEDDING');
  });

  it('Float32Array rows of the right length are accepted', async () => {
    const { index } = await seeded(async (texts) => texts.map((t) => Float32Array.from(wordVector(t, 16))));
    await index.upsert(items(NOTES.slice(0, 2)));
    expect((await index.listIds()).count).toBe(3);
  });
});

describe('reopening an index that has an embedding', () => {
  async function stored() {
    const path = tempStore();
    const indexKey = Client.generateKey();
    const client = new Client({ path });
    const index = await client.createIndex({ indexName: 'notes', indexKey, metric: 'cosine', embedding: countingEmbedding({ dimension: 16 }) });
    await index.upsert(items(NOTES));
    await client.close();
    return { path, indexKey };
  }

  it('with an embedding of the same name: text upserts and queryContents work', async () => {
    const { path, indexKey } = await stored();
    const embedding = countingEmbedding({ dimension: 16 });
    const index = await openClient(path).loadIndex({ indexName: 'notes', indexKey, embedding });
    expect(index.getEmbedding()).toEqual({ name: 'words-16', dimension: 16, attached: true });
    await index.upsert([{ id: 'new', contents: 'penguins live in antarctica' }]);
    const { results } = await index.query({ queryContents: 'penguins antarctica', topK: 1 });
    expect(results[0]!.id).toBe('new');
    expect(embedding.calls).toEqual([1, 1]);
  });

  it('without one: vector calls work, text calls are VECVAULT_VALIDATION naming the embedding to pass', async () => {
    const { path, indexKey } = await stored();
    const client = openClient(path);
    const index = await client.loadIndex({ indexName: 'notes', indexKey });
    expect(index.getEmbedding()).toEqual({ name: 'words-16', dimension: 16, attached: false });
    const { results } = await index.query({ queryVectors: wordVector(NOTES[3]!, 16), topK: 1 });
    expect(results[0]!.id).toBe('n3');
    await index.upsert({ items: [{ id: 'v', vector: wordVector('by hand', 16) }] });
    const before = await written(index);
    const text = await rejectsWithCode(index.upsert([{ id: 't', contents: 'no embedding here' }]), 'VECVAULT_VALIDATION');
    expect(text.message).toContain('words-16');
    expect(await written(index)).toEqual(before);
    await rejectsWithCode(index.query({ queryContents: 'cats' }), 'VECVAULT_VALIDATION');
    // The same Client hands out the same handle; given the embedding, it now embeds.
    const again = await client.loadIndex({ indexName: 'notes', indexKey, embedding: countingEmbedding({ dimension: 16 }) });
    expect(again).toBe(index);
    expect((await index.query({ queryContents: NOTES[5]!, topK: 1 })).results[0]!.id).toBe('n5');
  });

  it('with an embedding of another name (or another dimension): VECVAULT_VALIDATION, and the index still loads afterwards', async () => {
    const { path, indexKey } = await stored();
    const client = openClient(path);
    const wrong = await rejectsWithCode(
      client.loadIndex({ indexName: 'notes', indexKey, embedding: countingEmbedding({ name: 'other-model' }) }),
      'VECVAULT_VALIDATION',
    );
    expect((wrong as { path?: string }).path).toBe('embedding.name');
    await rejectsWithCode(client.loadIndex({ indexName: 'notes', indexKey, embedding: countingEmbedding({ dimension: 8 }) }), 'VECVAULT_VALIDATION');
    const index = await client.loadIndex({ indexName: 'notes', indexKey, embedding: countingEmbedding() });
    expect((await index.listIds()).count).toBe(10);
  });

  it('an index created without an embedding refuses one at loadIndex and text at upsert', async () => {
    const { path, key, client, index } = await openFresh({ dimension: 16 });
    await rejectsWithCode(index.upsert([{ id: 't', contents: 'text' }]), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.query({ queryContents: 'text' }), 'VECVAULT_VALIDATION');
    expect(index.getEmbedding()).toBeNull();
    await client.close();
    await rejectsWithCode(openClient(path).loadIndex({ indexName: 'test', indexKey: key, embedding: countingEmbedding() }), 'VECVAULT_VALIDATION');
  });

  it('queryVectors and queryContents together are refused', async () => {
    const { index } = await openFresh({ metric: 'cosine', embedding: countingEmbedding({ dimension: 16 }) });
    await rejectsWithCode(index.query({ queryVectors: wordVector('a', 16), queryContents: 'a' }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.query({ queryContents: [] }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.query({ queryContents: 7 as never }), 'VECVAULT_VALIDATION');
  });
});
