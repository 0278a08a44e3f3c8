import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Client, type Metadata } from '../src/index.js';
import { openClient, openFresh, reopen } from './support/fixtures.js';
import { rawStore, tempStore } from './support/helpers.js';
import { bruteForce, cosineDistance, l2, randomVectors } from './support/vectors.js';

const encode = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? { bytes: Buffer.from(v).toString('hex') } : v)));

function itemsFor(vectors: number[][]) {
  return vectors.map((vector, i) => ({
    id: `doc-${i}`,
    vector,
    metadata: { n: i, tag: i % 3 === 0 ? 'fizz' : 'buzz', nested: { even: i % 2 === 0, list: [i, 'x'] } } as Metadata,
    contents: i % 2 === 0 ? `text of ${i}` : new Uint8Array([i & 255, (i >> 8) & 255, 7]),
  }));
}

describe('index lifecycle', () => {
  it('round-trips 1,200 items through close and a new process', async () => {
    const vectors = randomVectors(1200, 24, 7);
    const { path, key, client, index } = await openFresh({ indexName: 'docs', metric: 'euclidean' });
    expect(index.getDimension()).toBeNull();
    for (let i = 0; i < vectors.length; i += 400) {
      expect(await index.upsert({ items: itemsFor(vectors).slice(i, i + 400) })).toEqual({ status: 'success', upsertedCount: 400 });
    }
    expect(index.getDimension()).toBe(24);
    const queries = randomVectors(5, 24, 99);
    const ids = ['doc-3', 'missing', 'doc-4', 'doc-1199'];
    const before = await index.query({ queryVectors: queries, topK: 10, include: ['distance', 'metadata', 'contents'] });
    const gotBefore = await index.get({ ids });
    await client.close();

    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', 'test/support/child-load.ts', path, 'docs', Buffer.from(key).toString('hex'), JSON.stringify(queries), JSON.stringify(ids)],
      {
        encoding: 'utf8',
      },
    );
    const child = JSON.parse(out) as { query: unknown; get: unknown; ids: string[] };
    expect(child.query).toEqual(encode(before));
    expect(child.get).toEqual(encode(gotBefore));
    expect(child.ids).toHaveLength(1200);
  });

  it('get keeps order and content types; missing ids come back as { id }', async () => {
    const { index } = await openFresh({ indexName: 'g', dimension: 4 });
    const bytes = new Uint8Array([0, 1, 2, 250]);
    await index.upsert([
      { id: 'a', vector: [1, 2, 3, 4], metadata: { k: 'v' }, contents: 'hello' },
      { id: 'b', vector: new Float32Array([4, 3, 2, 1]), contents: bytes },
    ]);
    const got = await index.get({ ids: ['b', 'nope', 'a'] });
    expect(got.map((g) => g.id)).toEqual(['b', 'nope', 'a']);
    expect(got[1]).toEqual({ id: 'nope' });
    expect(got[0]!.contents).toBeInstanceOf(Uint8Array);
    expect(got[0]!.contents).toEqual(bytes);
    expect(got[0]!.vector).toEqual([4, 3, 2, 1]);
    expect(got[2]).toEqual({ id: 'a', vector: [1, 2, 3, 4], metadata: { k: 'v' }, contents: 'hello' });
    expect(await index.get({ ids: ['a'], include: ['metadata'] })).toEqual([{ id: 'a', metadata: { k: 'v' } }]);
  });

  it('same-id upsert overwrites; deleted ids never come back from query, get or listIds', async () => {
    const fresh = await openFresh({ indexName: 'o', dimension: 3 });
    let { client, index } = fresh;
    await index.upsert({
      ids: ['a', 'b', 'c'],
      vectors: [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
      metadata: [{ v: 1 }, { v: 1 }, { v: 1 }],
    });
    await index.upsert({ ids: ['a'], vectors: [[0, 0, 5]], metadata: [{ v: 2 }] });
    expect(await index.get({ ids: ['a'] })).toEqual([{ id: 'a', vector: [0, 0, 5], metadata: { v: 2 } }]);
    expect((await index.listIds()).count).toBe(3);
    const near = await index.query({ queryVectors: [0, 0, 5], topK: 1, include: ['metadata'] });
    expect(near.results).toEqual([{ id: 'a', metadata: { v: 2 } }]);
    expect(await index.delete({ ids: ['b', 'zzz', 'b'] })).toEqual({ status: 'success', deletedCount: 1 });
    const check = async () => {
      expect((await index.listIds()).ids.sort()).toEqual(['a', 'c']);
      expect(await index.get({ ids: ['b'] })).toEqual([{ id: 'b' }]);
      const all = await index.query({ queryVectors: [0, 1, 0], topK: 10 });
      expect(all.results.map((r) => r.id).sort()).toEqual(['a', 'c']);
    };
    await check();
    await client.close();
    ({ client, index } = await reopen(fresh.path, fresh.key, 'o'));
    await check();
  });

  it('answers exactly like brute force on a small set, for each metric', async () => {
    const base = randomVectors(300, 8, 3);
    const queries = randomVectors(20, 8, 4);
    const client = openClient();
    const cases = [
      ['euclidean', l2, (d: number) => d],
      ['squared_euclidean', l2, (d: number) => d * d],
      ['cosine', cosineDistance, (d: number) => d],
    ] as const;
    for (const [metric, distance, expected] of cases) {
      const index = await client.createIndex({ indexName: metric, indexKey: Client.generateKey(), metric, indexConfig: { expansionSearch: 512 } });
      await index.upsert({ ids: base.map((_, i) => String(i)), vectors: base });
      const { results } = await index.query({ queryVectors: queries, topK: 5, include: ['distance'] });
      queries.forEach((q, qi) => {
        const truth = bruteForce(base, q, 5, distance);
        expect(results[qi]!.map((r) => Number(r.id))).toEqual(truth);
        results[qi]!.forEach((r, j) => expect(r.distance).toBeCloseTo(expected(distance(base[truth[j]!]!, q)), 4));
      });
    }
  });

  it('accepts batched Float32Array queries with a dimension, and float16 storage', async () => {
    const base = randomVectors(200, 16, 5);
    const { client, index } = await openFresh({ indexName: 'h', dimension: 16, storagePrecision: 'float16' });
    await index.upsert({ ids: base.map((_, i) => `v${i}`), vectors: base });
    const flat = new Float32Array([...base[10]!, ...base[20]!]);
    const { results } = await index.query({ queryVectors: flat, dimension: 16, topK: 1 });
    expect(results).toEqual([[{ id: 'v10' }], [{ id: 'v20' }]]);
    const single = await index.query({ queryVectors: base[30]!, topK: 1 });
    expect(single.results).toEqual([{ id: 'v30' }]);
    expect(index.getStoragePrecision()).toBe('float16');
    const int8 = await client.createIndex({ indexName: 'i8', indexKey: Client.generateKey(), dimension: 16, metric: 'cosine', storagePrecision: 'int8' });
    await int8.upsert({ ids: base.map((_, i) => `v${i}`), vectors: base });
    expect((await int8.query({ queryVectors: base[42]!, topK: 1 })).results).toEqual([{ id: 'v42' }]);
    expect((await int8.get({ ids: ['v42'], include: ['vector'] }))[0]!.vector).toEqual(Array.from(Float32Array.from(base[42]!))); // records keep float32
  });

  it('deleteIndex removes every key of that index and leaves others untouched', async () => {
    const keyB = Client.generateKey();
    const { path, client, index: a } = await openFresh({ indexName: 'a' });
    const b = await client.createIndex({ indexName: 'b', indexKey: keyB });
    const vectors = randomVectors(50, 4, 11);
    await a.upsert({ ids: vectors.map((_, i) => `a${i}`), vectors });
    await b.upsert({ ids: vectors.map((_, i) => `b${i}`), vectors });
    await a.deleteIndex();
    expect(await client.listIndexes()).toEqual(['b']);
    await client.close();

    const db = await rawStore(path);
    const prefixes = new Set<string>();
    let catalog = 0;
    for await (const key of db.keys()) {
      if (key[0] === 0x49) prefixes.add(Buffer.from(key.subarray(1, 17)).toString('hex'));
      if (key[0] === 0x43) catalog++;
    }
    await db.close();
    expect(prefixes.size).toBe(1); // only b's id remains
    expect(catalog).toBe(1);

    const { index: again } = await reopen(path, keyB, 'b');
    expect((await again.listIds()).count).toBe(50);
    const { results } = await again.query({ queryVectors: vectors[7]!, topK: 1 });
    expect(results).toEqual([{ id: 'b7' }]);
  });

  it('a get of 1,000 ids (opened 256 per turn) racing overwrites of the same ids sees each record whole, old or new', async () => {
    const { index } = await openFresh({ indexName: 'race', dimension: 8 });
    const ids = Array.from({ length: 1_000 }, (_, i) => `r${i}`);
    const version = (round: number) => ids.map((id, i) => ({ id, vector: Array.from({ length: 8 }, (_, d) => round + i + d), metadata: { round } }));
    await index.upsert(version(0));
    let gets = 0;
    for (let round = 1; round <= 4; round++) {
      let settled = false;
      const write = index.upsert(version(round)).finally(() => (settled = true));
      // Gets back to back while the overwrite runs: some span its commit and its memory update.
      while (!settled) {
        const got = await index.get({ ids, include: ['vector', 'metadata'] });
        gets++;
        expect(got.map((g) => g.id)).toEqual(ids);
        got.forEach((g, i) => {
          const seen = (g.metadata as { round: number }).round;
          expect([round - 1, round]).toContain(seen);
          expect(g.vector![0]).toBe(seen + i); // the vector belongs to the same version as the metadata
        });
      }
      await write;
    }
    expect(gets).toBeGreaterThan(4);
    const last = await index.get({ ids, include: ['metadata'] });
    expect(last.every((g) => (g.metadata as { round: number }).round === 4)).toBe(true);
  });

  it('two concurrent first upserts with different dimensions: one fails cleanly, the index stays usable', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'x' });
    const outcomes = await Promise.allSettled([index.upsert({ ids: ['a'], vectors: [[1, 2, 3]] }), index.upsert({ ids: ['b'], vectors: [[1, 2, 3, 4]] })]);
    expect(outcomes[0].status).toBe('fulfilled');
    expect((outcomes[1] as PromiseRejectedResult).reason.code).toBe('VECVAULT_VALIDATION');
    expect((await index.listIds()).ids).toEqual(['a']);
    await client.close();
    const again = await reopen(path, key, 'x');
    expect((await again.index.listIds()).ids).toEqual(['a']);
  });
});

describe('closing', () => {
  it('a read racing close() gets ClosedError, not a tampering report; loadIndex after close opens a fresh handle', async () => {
    const { key, client, index } = await openFresh({ indexName: 'x', dimension: 2 });
    await index.upsert([{ id: 'a', vector: [1, 2], metadata: { m: 1 } }]);
    const read = index.get({ ids: ['a'] });
    const closing = index.close();
    const outcome = await read.then(
      (v) => v,
      (e: { code: string }) => e.code,
    );
    // Either the read finished first, or it learns the index closed; never a tampering report.
    if (outcome !== 'VECVAULT_CLOSED') expect(outcome).toEqual([{ id: 'a', vector: [1, 2], metadata: { m: 1 } }]);
    const again = await client.loadIndex({ indexName: 'x', indexKey: key });
    expect(again).not.toBe(index);
    await closing;
    expect((await again.get({ ids: ['a'], include: ['metadata'] }))[0]).toEqual({ id: 'a', metadata: { m: 1 } });
    await client.close();
  });

  it('every close() call waits for the store to be closed', async () => {
    const path = tempStore();
    const client = new Client({ path });
    await client.listIndexes();
    const order: string[] = [];
    await Promise.all([client.close().then(() => order.push('first')), client.close().then(() => order.push('second'))]);
    expect(order).toEqual(['first', 'second']);
    const next = new Client({ path });
    expect(await next.listIndexes()).toEqual([]);
    await next.close();
  });
});
