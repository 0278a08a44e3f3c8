/**
 * Code written for CyborgDB's JS/TS SDK runs unchanged but for how the Client
 * is built (issue 11). Written from the SDK's documented behaviour (v0.13 to
 * v0.17 docs), not from its test suite: IVF index configs, several Clients on
 * one path in one process, the calls the SDK has, empty upserts, untrained
 * (exact) search, and the options we refuse loudly rather than ignore.
 */
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client, type EncryptedIndex, type QueryResultItem } from '../src/index.js';
import { EXACT_MAX_VECTORS, IVF_TRAINS_AT } from '../src/core/training.js';
import { openClient, openFresh } from './support/fixtures.js';
import { rejectsWithCode, tempStore } from './support/helpers.js';
import { bruteForce, cosineDistance, l2, randomVectors } from './support/vectors.js';

const truthOf = (base: number[][], queries: number[][], k: number, metric: 'euclidean' | 'cosine') =>
  queries.map((q) => bruteForce(base, q, k, metric === 'cosine' ? cosineDistance : l2));

const ids = (rows: QueryResultItem[]) => rows.map((r) => r.id);

async function fill(index: EncryptedIndex, vectors: number[][], from = 0): Promise<void> {
  for (let i = 0; i < vectors.length; i += 1000) {
    const slice = vectors.slice(i, i + 1000);
    await index.upsert({ ids: slice.map((_, j) => String(from + i + j)), vectors: slice });
  }
}

/** Mean recall@k of batched results against exact ground truth (ids are row numbers). */
function recall(results: QueryResultItem[][], truth: number[][]): number {
  let sum = 0;
  results.forEach((row, q) => {
    const want = new Set(truth[q]!.map(String));
    sum += row.filter((r) => want.has(r.id)).length / want.size;
  });
  return sum / results.length;
}

describe('createIndex accepts CyborgDB index configs', () => {
  it.each(['ivf', 'ivfflat', 'ivfpq', 'ivfsq'] as const)("{ type: '%s', dimension }: dimension taken, type recorded across reopen", async (type) => {
    const extra = type === 'ivfpq' ? { pqDim: 8, pqBits: 8 } : type === 'ivfsq' ? { sqBits: 8 } : {};
    const path = tempStore();
    const key = Client.generateKey();
    const client = openClient(path);
    const index = await client.createIndex({ indexName: 'i', indexKey: key, metric: 'euclidean', indexConfig: { type, dimension: 16, nLists: 32, ...extra } });
    expect(index.getDimension()).toBe(16);
    expect(index.getIndexType()).toBe(type);
    expect(index.getIndexConfig()).toMatchObject({ type, dimension: 16, metric: 'euclidean', nLists: 32, ...extra, connectivity: 16 });
    expect(index.getNLists()).toBe(32);
    await rejectsWithCode(index.upsert({ ids: ['x'], vectors: [[1, 2, 3]] }), 'VECVAULT_VALIDATION'); // the dimension is fixed
    await index.upsert({ ids: ['a'], vectors: [Array.from({ length: 16 }, (_, i) => i)] });
    await client.close();
    const again = openClient(path);
    const reopened = await again.loadIndex({ indexName: 'i', indexKey: key });
    expect(reopened.getIndexType()).toBe(type);
    expect(reopened.getIndexConfig()).toMatchObject({ type, dimension: 16, nLists: 32, ...extra });
  });

  it("a bare { type: 'ivfflat' } leaves the dimension to the first upsert", async () => {
    const { index } = await openFresh({ indexConfig: { type: 'ivfflat' } });
    expect(index.getDimension()).toBeNull();
    expect(index.getIndexType()).toBe('ivfflat');
    await index.upsert({ items: [{ id: 'a', vector: [1, 0, 0] }] });
    expect(index.getDimension()).toBe(3);
  });

  it("an index created without a type reports 'hnsw' (so do indexes written before types were recorded)", async () => {
    const { index } = await openFresh({ dimension: 4 });
    expect(index.getIndexType()).toBe('hnsw');
    expect(index.getIndexConfig()).toMatchObject({ type: 'hnsw', dimension: 4, connectivity: 16, expansionAdd: 128, expansionSearch: 200 });
  });

  it("a store written by 0.1.0 (the golden fixture, copied) opens; its indexes read as 'hnsw' and keep writing", async () => {
    const fixture = join(import.meta.dirname, 'fixtures', 'golden-v1');
    const line = readFileSync(join(fixture, 'key.hex'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith('a-euclid-f32 '))!;
    const indexKey = new Uint8Array(Buffer.from(line.split(' ')[1]!, 'hex'));
    const path = tempStore();
    cpSync(join(fixture, 'store'), path, { recursive: true });
    const client = new Client({ path });
    const index = await client.loadIndex({ indexName: 'a-euclid-f32', indexKey });
    expect(index.getIndexType()).toBe('hnsw');
    const dim = index.getDimension()!;
    await index.upsert({ ids: ['new'], vectors: [Array.from({ length: dim }, () => 0.5)] });
    await client.close();
    const again = openClient(path);
    const reopened = await again.loadIndex({ indexName: 'a-euclid-f32', indexKey });
    expect(reopened.getIndexType()).toBe('hnsw');
    expect((await reopened.listIds()).ids).toContain('new');
  });

  it('rejects configs that cannot be honoured, naming the field', async () => {
    const client = openClient();
    const create = (indexConfig: unknown, more: object = {}) =>
      client.createIndex({ indexName: `x${Math.random()}`, indexKey: Client.generateKey(), indexConfig: indexConfig as never, ...more });
    expect((await rejectsWithCode(create({ type: 'ivfflat', dimension: -1 }), 'VECVAULT_VALIDATION')) as { path?: string }).toMatchObject({
      path: 'indexConfig.dimension',
    });
    await rejectsWithCode(create({ type: 'ivfflat', dimension: 8 }, { dimension: 9 }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(create({ type: 'ivfflat', pqDim: 8 }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(create({ type: 'ivfpq', sqBits: 8 }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(create({ type: 'ivfpq', pqBits: 0 }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(create({ type: 'diskann' }), 'VECVAULT_NOT_SUPPORTED');
    await rejectsWithCode(create({ type: 'ivfflat', dimension: 8 }, { metric: 'invalid_metric' }), 'VECVAULT_VALIDATION');
    // nLists: 0 is CyborgDB's "choose for me".
    const auto = await create({ type: 'ivf', dimension: 2, nLists: 0 });
    expect(auto.getIndexConfig().nLists).toBeUndefined();
    expect(await client.listIndexes()).toHaveLength(1);
  });
});

describe('several Clients on one path in one process', () => {
  it('share the store: writes through one are visible through the other at once', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const a = new Client({ path });
    const b = new Client({ path });
    const viaA = await a.createIndex({ indexName: 'notes', indexKey: key, dimension: 2 });
    const viaB = await b.loadIndex({ indexName: 'notes', indexKey: key });
    expect(viaB).not.toBe(viaA);
    await viaA.upsert({ items: [{ id: 'a', vector: [1, 0], metadata: { n: 1 }, contents: 'from a' }] });
    expect(await viaB.get({ ids: ['a'] })).toEqual([{ id: 'a', vector: [1, 0], metadata: { n: 1 }, contents: 'from a' }]);
    await viaB.upsert({ items: [{ id: 'b', vector: [0, 1] }] });
    expect((await viaA.listIds()).ids.sort()).toEqual(['a', 'b']);
    expect(ids((await viaA.query({ queryVectors: [0, 1], topK: 1 })).results)).toEqual(['b']);
    await viaB.delete({ ids: ['a'] });
    expect((await viaA.listIds()).ids).toEqual(['b']);
    expect(viaA.stats().commitCounter).toBe(viaB.stats().commitCounter);
    expect(await b.listIndexes()).toEqual(['notes']);

    // Each close() lets go of its own handles only.
    await a.close();
    await rejectsWithCode(viaA.listIds(), 'VECVAULT_CLOSED');
    await viaB.upsert({ items: [{ id: 'c', vector: [1, 1] }] });
    expect((await viaB.listIds()).count).toBe(2);
    await b.close();

    // The last close released the lock and snapshotted: a new Client opens everything.
    const c = new Client({ path });
    const reopened = await c.loadIndex({ indexName: 'notes', indexKey: key });
    expect((await reopened.listIds()).ids.sort()).toEqual(['b', 'c']);
    expect(reopened.stats().openedFrom).toBe('snapshot');
    await c.close();
  });

  it('a handle closed in one Client leaves the others open; the key is still checked for each', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const a = openClient(path);
    const b = openClient(path);
    const viaA = await a.createIndex({ indexName: 'k', indexKey: key, dimension: 2 });
    await rejectsWithCode(b.loadIndex({ indexName: 'k', indexKey: Client.generateKey() }), 'VECVAULT_INVALID_KEY');
    const viaB = await b.loadIndex({ indexName: 'k', indexKey: key });
    await viaA.close();
    await rejectsWithCode(viaA.upsert({ ids: ['x'], vectors: [[1, 2]] }), 'VECVAULT_CLOSED');
    expect(() => viaA.stats()).toThrow(expect.objectContaining({ code: 'VECVAULT_CLOSED' }));
    await viaB.upsert({ ids: ['x'], vectors: [[1, 2]] });
    // Loading again through A gets a new handle on the same open index.
    const again = await a.loadIndex({ indexName: 'k', indexKey: key });
    expect((await again.listIds()).ids).toEqual(['x']);
  });

  it("a handle's close() waits for its own calls in flight, then leaves the index open for the others", async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const [a, b] = [openClient(path), openClient(path)];
    const viaA = await a.createIndex({ indexName: 'w', indexKey: key, dimension: 2 });
    const viaB = await b.loadIndex({ indexName: 'w', indexKey: key });
    let settled = false;
    const write = viaA.upsert({ ids: ['late'], vectors: [[3, 4]] }).then((r) => ((settled = true), r));
    await viaA.close();
    expect(settled).toBe(true);
    expect(await write).toEqual({ status: 'success', upsertedCount: 1 });
    expect((await viaB.listIds()).ids).toEqual(['late']);
    expect(viaB.stats().snapshotGeneration).toBe(0); // not closed: no close snapshot was written
  });

  it('deleteIndex through one Client closes the index for every Client', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const a = openClient(path);
    const b = openClient(path);
    const viaA = await a.createIndex({ indexName: 'gone', indexKey: key, dimension: 2 });
    const viaB = await b.loadIndex({ indexName: 'gone', indexKey: key });
    await viaB.deleteIndex();
    await rejectsWithCode(viaA.listIds(), 'VECVAULT_CLOSED');
    await rejectsWithCode(a.loadIndex({ indexName: 'gone', indexKey: key }), 'VECVAULT_INDEX_NOT_FOUND');
    expect(await a.listIndexes()).toEqual([]);
  });

  it('concurrent createIndex of one name through two Clients: one wins, one gets IndexExistsError', async () => {
    const path = tempStore();
    const [a, b] = [openClient(path), openClient(path)];
    const results = await Promise.allSettled([
      a.createIndex({ indexName: 'race', indexKey: Client.generateKey(), dimension: 2 }),
      b.createIndex({ indexName: 'race', indexKey: Client.generateKey(), dimension: 2 }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason.code).toBe('VECVAULT_INDEX_EXISTS');
  });

  it("CyborgDB's LangChain store pattern: a new Client on every call, never closed", async () => {
    const path = tempStore();
    const indexKey = Client.generateKey();
    const opened: Client[] = [];
    const connect = () => {
      const client = new Client({ path });
      opened.push(client);
      return client;
    };
    // fromTexts: a new client creates the index and adds the texts.
    const store = await connect().createIndex({ indexName: 'lc', indexKey, indexConfig: { type: 'ivfflat', dimension: 3 }, metric: 'cosine' });
    await store.upsert({ items: [{ id: 'd1', vector: [1, 0, 0], contents: 'one', metadata: { source: 'x' } }] });
    // fromExistingIndex: another client loads it and adds more, while the first is still open.
    const existing = await connect().loadIndex({ indexName: 'lc', indexKey });
    await existing.upsert({ items: [{ id: 'd2', vector: [0, 1, 0], contents: 'two' }] });
    expect(await existing.upsert([])).toEqual({ status: 'success', upsertedCount: 0 }); // addTexts([])
    // similaritySearch through a third, and through the first: both see every document.
    const third = await connect().loadIndex({ indexName: 'lc', indexKey });
    for (const index of [third, store]) {
      const { results } = await index.query({ queryVectors: [0, 1, 0], topK: 2, include: ['distance', 'contents', 'metadata'] });
      expect(results.map((r) => [r.id, r.contents])).toEqual([
        ['d2', 'two'],
        ['d1', 'one'],
      ]);
    }
    expect(await connect().listIndexes()).toEqual(['lc']);
    await Promise.all(opened.map((c) => c.close()));
    const after = openClient(path);
    expect((await (await after.loadIndex({ indexName: 'lc', indexKey })).listIds()).count).toBe(2);
  });
});

describe('the calls the SDK has', () => {
  it('client.generateKey() on an instance: 32 fresh random bytes', () => {
    const client = new Client({ path: tempStore() });
    const [k1, k2] = [client.generateKey(), client.generateKey()];
    expect(k1).toBeInstanceOf(Uint8Array);
    expect(k1.byteLength).toBe(32);
    expect(Buffer.from(k1).equals(Buffer.from(k2))).toBe(false);
  });

  it('train() resolves { status, message }; isTraining() is false; getNLists() follows train({ nLists })', async () => {
    const { index } = await openFresh({ indexConfig: { type: 'ivfflat', dimension: 2 } });
    await index.upsert({
      ids: ['a', 'b'],
      vectors: [
        [0, 1],
        [1, 0],
      ],
    });
    expect(index.isTraining()).toBe(false);
    expect(index.getNLists()).toBe(1); // √2 rounded: CyborgDB chooses when nLists is not given
    const res = await index.train({ nLists: 64, batchSize: 2048, maxIters: 100, tolerance: 1e-6 });
    expect(res).toEqual({ status: 'success', message: expect.any(String) });
    expect(index.getNLists()).toBe(64);
    expect(await index.train()).toMatchObject({ status: 'success' });
    await rejectsWithCode(index.train({ nLists: -3 }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.train({ tolerance: Number.NaN }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.train({ nClusters: 4 } as never), 'VECVAULT_VALIDATION');
  });
});

describe('empty upserts', () => {
  it('every shape of an empty batch succeeds with nothing upserted and commits nothing', async () => {
    const { index } = await openFresh({ dimension: 2 });
    const before = index.stats().commitCounter;
    for (const empty of [[], { items: [] }, { ids: [], vectors: [] }, { ids: [], vectors: [], metadata: [], contents: [] }]) {
      expect(await index.upsert(empty as never)).toEqual({ status: 'success', upsertedCount: 0 });
    }
    expect(index.stats().commitCounter).toBe(before);
    // Not empty but malformed is still an error.
    await rejectsWithCode(index.upsert({ ids: [], vectors: [[1, 2]] }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.upsert({ items: 'nope' } as never), 'VECVAULT_VALIDATION');
  });
});

describe('untrained (exact) and trained (graph) search', () => {
  const dim = 24;

  // HNSW switches where the scan stops being free; CyborgDB's IVF types keep CyborgDB's own training point.
  for (const [label, config, limit] of [
    ['an HNSW index', { dimension: dim }, EXACT_MAX_VECTORS],
    ["an index of CyborgDB's ivfflat type", { indexConfig: { type: 'ivfflat', dimension: dim } }, IVF_TRAINS_AT - 1],
  ] as const) {
    it(`${label} is exact while it holds at most ${limit} vectors, and says so with isTrained()`, async () => {
      const { index } = await openFresh({ ...config, metric: 'euclidean' });
      const base = randomVectors(limit, dim, 11);
      const queries = randomVectors(50, dim, 12);
      await fill(index, base);
      expect(index.isTrained()).toBe(false);
      const { results } = await index.query({ queryVectors: queries, topK: 20, nProbes: 1 }); // nProbes is a hint: still exact
      expect(recall(results, truthOf(base, queries, 20, 'euclidean'))).toBe(1);
      // One more vector and the graph answers.
      await index.upsert({ ids: ['extra'], vectors: [randomVectors(1, dim, 13)[0]!] });
      expect(index.isTrained()).toBe(true);
    });
  }

  it('train() hands a small index to the graph; exact: true and nProbes ≥ getNLists() search exactly at any size', async () => {
    const { index } = await openFresh({ indexConfig: { type: 'ivfflat', dimension: dim, nLists: 16 }, metric: 'cosine' });
    const base = randomVectors(3000, dim, 21);
    const queries = randomVectors(40, dim, 22);
    const truth = truthOf(base, queries, 50, 'cosine');
    await fill(index, base);
    expect(index.isTrained()).toBe(false); // below CyborgDB's training point
    expect(await index.train()).toMatchObject({ status: 'success' });
    expect(index.isTrained()).toBe(true);
    for (const params of [{ exact: true }, { nProbes: 16 }, { nProbes: 1000, rerankMult: 4 }]) {
      const { results } = await index.query({ queryVectors: queries, topK: 50, ...params });
      expect(recall(results, truth)).toBe(1);
    }
    // The graph, asked for explicitly, with a tiny beam, is approximate: the exact answers above are not the graph's.
    const graph = await index.query({ queryVectors: queries, topK: 50, exact: false, expansionSearch: 1 });
    expect(recall(graph.results, truth)).toBeLessThan(1);
    // Still exact with removed vectors holding engine slots until the next compaction.
    const nearest = truth[0]!.slice(0, 3).map(String);
    await index.delete({ ids: nearest });
    const kept = base.map((v, i) => [v, i] as const).filter(([, i]) => !nearest.includes(String(i)));
    const after = await index.query({ queryVectors: queries[0]!, topK: 10, exact: true });
    const want = bruteForce(
      kept.map(([v]) => v),
      queries[0]!,
      10,
      cosineDistance,
    ).map((row) => String(kept[row]![1]));
    expect(ids(after.results)).toEqual(want);

    const small = (await openFresh({ dimension: 2 })).index;
    await small.upsert({ ids: ['a'], vectors: [[1, 0]] });
    expect(small.isTrained()).toBe(false);
    await small.train();
    expect(small.isTrained()).toBe(true);
  });

  it('rejects malformed hints rather than ignoring them', async () => {
    const { index } = await openFresh({ dimension: 2 });
    await index.upsert({ ids: ['a'], vectors: [[1, 0]] });
    await rejectsWithCode(index.query({ queryVectors: [1, 0], exact: 'yes' as never }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.query({ queryVectors: [1, 0], nProbes: 0 }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.query({ queryVectors: [1, 0], rerankMult: -1 }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.query({ queryVectors: [1, 0], greedy: 1 as never }), 'VECVAULT_VALIDATION');
    expect((await index.query({ queryVectors: [1, 0], greedy: true })).results).toHaveLength(1);
  });
});

describe('what is not supported says so', () => {
  it('embeddingModel (a model name to download) is NotSupportedError pointing to embedding, never a silent no-op', async () => {
    const client = openClient();
    const error = await rejectsWithCode(
      client.createIndex({ indexName: 'e', indexKey: Client.generateKey(), embeddingModel: 'all-MiniLM-L6-v2', indexConfig: { type: 'ivfflat' } }),
      'VECVAULT_NOT_SUPPORTED',
    );
    expect(error.message).toContain('embedding:');
    expect(await client.listIndexes()).toEqual([]); // nothing was created
  });

  it('queryContents works with the index embedding, and without one says what to pass', async () => {
    const client = openClient();
    const embed = async (texts: string[]) => texts.map((t) => (t.includes('hello') ? [1, 0] : [0, 1]));
    const index = await client.createIndex({ indexName: 'q', indexKey: Client.generateKey(), metric: 'cosine', embedding: { name: 'toy', embed } });
    await index.upsert([
      { id: 'h', contents: 'hello there' },
      { id: 'o', contents: 'other' },
    ]);
    expect((await index.query({ queryContents: 'hello', topK: 1 })).results[0]!.id).toBe('h');
    const plain = await client.createIndex({ indexName: 'p', indexKey: Client.generateKey(), dimension: 2 });
    const error = await rejectsWithCode(plain.query({ queryContents: 'hello' }), 'VECVAULT_VALIDATION');
    expect(error.message).toContain('embedding');
  });
});

describe('getHealth', () => {
  it("resolves { status: 'healthy' } once the store is open, and rejects with the reason it cannot be", async () => {
    const client = new Client({ path: tempStore() });
    expect(await client.getHealth()).toEqual({ status: 'healthy' });
    await client.close();
    await rejectsWithCode(client.getHealth(), 'VECVAULT_CLOSED');
  });
});
