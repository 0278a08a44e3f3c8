/**
 * Cosine over float32 through the inner-product kernel (native/engine/core.h):
 * the engine scales every vector it adds or searches for to unit length and,
 * while every stored vector is unit length, compares them with 1 - dot
 * product, which is the cosine distance for a third of the arithmetic.
 * Distances must stay the caller's cosine distances, bytes written before
 * (unscaled vectors) must still load and answer right, and the snapshot says
 * which kernel its bytes allow. The negative control loads unscaled bytes as
 * if they were unit length: distances then go wrong, so the flag is what
 * keeps old bytes right.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { nativeEngine, type NativeAnnEngine } from '../src/engine/native.js';
import type { EngineOptions, SearchResult } from '../src/engine/types.js';
import { openFresh, reopen } from './support/fixtures.js';
import { cosineDistance, seededRandom } from './support/vectors.js';
import { stockIndexBytes } from './support/stock-usearch.js';
import { makeUnsigned, manifestOf } from './support/unsigned.js';

const DIM = 16;
const OPTIONS: EngineOptions = { dimension: DIM, metric: 'cos', precision: 'f32', connectivity: 16, expansionAdd: 64, expansionSearch: 64 };

/** `count` rows of `dim` values, each row scaled by a random factor in 1e-3..1e3: nothing near unit length. */
function unscaled(count: number, dim: number, seed: number): Float32Array {
  const rand = seededRandom(seed);
  const out = new Float32Array(count * dim);
  for (let r = 0; r < count; r++) {
    const scale = 10 ** (rand() * 6 - 3);
    for (let i = 0; i < dim; i++) out[r * dim + i] = (rand() * 2 - 1) * scale;
  }
  return out;
}

const rowOf = (values: Float32Array, r: number, dim = DIM): Float32Array => values.subarray(r * dim, (r + 1) * dim);
const keysOf = (count: number): BigUint64Array => BigUint64Array.from({ length: count }, (_, i) => BigInt(i) * 7919n + 3n);

/** Largest gap between each returned distance and the cosine distance (in double) of the caller's own vectors. */
function worstCosineError(result: SearchResult, queries: Float32Array, data: Float32Array, keys: BigUint64Array, dim = DIM): number {
  const rowByKey = new Map([...keys].map((key, r) => [key, r]));
  let worst = 0;
  for (let q = 0; q < queries.length / dim; q++) {
    for (let i = 0; i < result.counts[q]!; i++) {
      const r = rowByKey.get(result.keys[q * result.k + i]!)!;
      worst = Math.max(worst, Math.abs(result.distances[q * result.k + i]! - cosineDistance(rowOf(queries, q, dim), rowOf(data, r, dim))));
    }
  }
  return worst;
}

const engines: NativeAnnEngine[] = [];
const track = (engine: NativeAnnEngine): NativeAnnEngine => (engines.push(engine), engine);
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

describe('cosine float32 engines compare unit vectors by their dot product', () => {
  it('only a cosine float32 engine scales its vectors', () => {
    const cases: [Partial<EngineOptions>, boolean][] = [
      [{}, true],
      [{ precision: 'f16' }, false],
      [{ precision: 'i8' }, false],
      [{ metric: 'l2sq' }, false],
      [{ metric: 'ip' }, false],
    ];
    for (const [overrides, expected] of cases) {
      expect(track(nativeEngine.create({ ...OPTIONS, ...overrides })).unitVectors(), JSON.stringify(overrides)).toBe(expected);
    }
  });

  it("distances are the cosine distances of the caller's unscaled vectors, and the caller's arrays are left as they were", async () => {
    const engine = track(nativeEngine.create(OPTIONS));
    const data = unscaled(2000, DIM, 1);
    const keys = keysOf(2000);
    const given = data.slice();
    await engine.add(keys, data);
    expect(data).toEqual(given);
    const queries = unscaled(50, DIM, 2);
    const asked = queries.slice();
    const exact = await engine.search(queries, 10, { exact: true });
    expect(worstCosineError(exact, queries, data, keys)).toBeLessThan(2e-6);
    const graph = await engine.search(queries, 10, { expansionSearch: 256 });
    expect(worstCosineError(graph, queries, data, keys)).toBeLessThan(2e-6);
    // One query at a time takes the calling-thread path (searchSync): the same answers.
    for (const q of [0, 17, 49]) {
      const one = await engine.search(rowOf(queries, q), 10, { expansionSearch: 256 });
      expect([...one.keys]).toEqual([...graph.keys.subarray(q * 10, q * 10 + 10)]);
      expect(worstCosineError(one, rowOf(queries, q), data, keys)).toBeLessThan(2e-6);
    }
    expect(queries).toEqual(asked);
    // Each stored vector is its own nearest, at distance 0: never below it (rounding can take a dot past 1).
    const own = await engine.search(data.subarray(0, 200 * DIM), 1, { exact: true });
    expect([...own.keys]).toEqual([...keys.subarray(0, 200)]);
    for (const d of own.distances) {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(1e-6);
    }
    // Scaling a query changes nothing.
    const scaled = queries.map((v) => v * 1234.5);
    const again = await engine.search(scaled, 10, { exact: true });
    expect(again.keys).toEqual(exact.keys);
    expect(worstCosineError(again, queries, data, keys)).toBeLessThan(2e-6);
  });

  it('every dimension takes the same path to the right distance: the wide loop, the 8-wide one and the tail (37, 96, 100, 1536)', async () => {
    for (const dim of [37, 96, 100, 1536]) {
      const engine = track(nativeEngine.create({ ...OPTIONS, dimension: dim }));
      const data = unscaled(300, dim, dim);
      const keys = keysOf(300);
      await engine.add(keys, data);
      const queries = unscaled(10, dim, dim + 1);
      const result = await engine.search(queries, 10, { exact: true });
      expect(worstCosineError(result, queries, data, keys, dim), `dimension ${dim}`).toBeLessThan(1e-5);
    }
  });

  it('vectors of extreme length (components near the smallest subnormal or near the largest float32) are scaled right', async () => {
    const engine = track(nativeEngine.create(OPTIONS));
    const tiny = new Float32Array(DIM);
    tiny[0] = 1e-40; // length ~1e-40: its scale, 1e40, does not fit a float32
    const huge = new Float32Array(DIM).fill(3e38); // squares overflow float32
    const plain = new Float32Array(DIM);
    plain[1] = 1;
    await engine.add(keysOf(3), new Float32Array([...tiny, ...huge, ...plain]));
    const probe = new Float32Array(DIM);
    probe[0] = 1e-41;
    const result = await engine.search(new Float32Array([...probe, ...huge, ...plain]), 3, { exact: true });
    const near = (q: number) => [...result.keys.subarray(q * 3, q * 3 + 3)].map((k, i) => [k, result.distances[q * 3 + i]!] as const);
    const expected = (q: ArrayLike<number>) => [tiny, huge, plain].map((v) => cosineDistance(q, v));
    for (const [q, query] of [probe, huge, plain].entries()) {
      for (const [key, distance] of near(q)) {
        expect(Number.isFinite(distance)).toBe(true);
        expect(Math.abs(distance - expected(query)[Number((key - 3n) / 7919n)]!), `query ${q}`).toBeLessThan(2e-6);
      }
    }
    expect(near(0)[0]).toEqual([keysOf(1)[0], 0]); // the tiny vector's own direction, at distance 0
  });

  it('bytes with unscaled vectors (as an older vecvault or stock usearch wrote them) load with the cosine kernel and answer as before', async () => {
    const data = unscaled(3000, DIM, 3);
    const keys = keysOf(3000);
    const { stock, bytes } = await stockIndexBytes({ dimensions: DIM, metric: 'cos', expansionSearch: 64, keys, vectors: data });
    const queries = unscaled(40, DIM, 4);
    const theirs = stock.search(queries, 10, 1);

    const engine = track(await nativeEngine.deserialize(bytes, OPTIONS));
    expect(engine.unitVectors()).toBe(false);
    const ours = await engine.search(queries, 10);
    expect(ours.keys).toEqual(theirs.keys);
    expect(worstCosineError(ours, queries, data, keys)).toBeLessThan(2e-6);
    // New vectors are scaled as they come, but the old ones are not: the cosine kernel stays.
    const more = unscaled(10, DIM, 5);
    await engine.add(keysOf(3010).subarray(3000), more);
    expect(engine.unitVectors()).toBe(false);
    const all = new Float32Array([...data, ...more]);
    expect(worstCosineError(await engine.search(queries, 10, { exact: true }), queries, all, keysOf(3010))).toBeLessThan(2e-6);

    // Negative control: the same bytes vouched for as unit length. The dot product of unscaled vectors is not
    // their cosine: the distances go wrong (a snapshot must never claim this for bytes it did not scale).
    const vouched = track(await nativeEngine.deserialize(bytes, OPTIONS, { unitVectors: true }));
    expect(vouched.unitVectors()).toBe(true);
    const wrong = await vouched.search(queries, 10, { exact: true });
    expect(worstCosineError(wrong, queries, data, keys)).toBeGreaterThan(0.05);
  });
});

describe('cosine float32 indexes: the snapshot records that its vectors are unit length', () => {
  const vectors = Array.from({ length: 400 }, (_, r) => Array.from(rowOf(unscaled(400, DIM, 6), r)));
  const ids = vectors.map((_, i) => `v${i}`);
  const queries = Array.from({ length: 8 }, (_, q) => Array.from(rowOf(unscaled(8, DIM, 7), q)));

  async function answers(index: Awaited<ReturnType<typeof openFresh>>['index']) {
    const { results } = await index.query({ queryVectors: queries, topK: 10, include: ['distance'] });
    return results;
  }

  function expectCosine(results: Awaited<ReturnType<typeof answers>>): void {
    results.forEach((row, q) => {
      for (const hit of row) {
        expect(Math.abs(hit.distance! - cosineDistance(queries[q]!, vectors[Number(hit.id.slice(1))]!))).toBeLessThan(2e-6);
      }
    });
  }

  it('closed and reopened: the flag is set, and the reopened index answers exactly as before', async () => {
    const fresh = await openFresh({ indexName: 'u', metric: 'cosine', dimension: DIM });
    await fresh.index.upsert({ ids, vectors });
    await fresh.index.train(); // answered by the graph, not an exact scan of a small index
    const before = await answers(fresh.index);
    expectCosine(before);
    await fresh.client.close();
    expect((await manifestOf(fresh.path, fresh.key, 'u')).manifest.snapshot?.unitVectors).toBe(true);
    const opened = await reopen(fresh.path, fresh.key, 'u');
    try {
      expect(await answers(opened.index)).toEqual(before);
    } finally {
      await opened.client.close();
    }
  });

  it('a snapshot without the flag (written before it existed) opens with the cosine kernel, and its next snapshot carries none until a compaction rebuilds the graph', async () => {
    const fresh = await openFresh({ indexName: 'u', metric: 'cosine', dimension: DIM });
    await fresh.index.upsert({ ids, vectors });
    await fresh.index.train();
    const before = await answers(fresh.index);
    await fresh.client.close();
    await makeUnsigned(fresh.path, 'u', fresh.key); // an unsigned manifest can be re-sealed with the key alone
    const { manifest, put, seal } = await manifestOf(fresh.path, fresh.key, 'u');
    const { unitVectors: _dropped, ...older } = manifest.snapshot!;
    await put(seal({ ...manifest, snapshot: older }));

    let opened = await reopen(fresh.path, fresh.key, 'u');
    const after = await answers(opened.index);
    expect(after.map((row) => row.map((hit) => hit.id))).toEqual(before.map((row) => row.map((hit) => hit.id)));
    expectCosine(after);
    await opened.index.upsert({ ids: ['extra'], vectors: [vectors[0]!.map((v) => v * 3)] });
    await opened.client.close();
    expect((await manifestOf(fresh.path, fresh.key, 'u')).manifest.snapshot?.unitVectors).toBeUndefined();

    opened = await reopen(fresh.path, fresh.key, 'u');
    await opened.index.delete({ ids: ['extra'] });
    await opened.index.compact(); // rebuilds the graph from the records, every vector scaled as it is added
    expectCosine(await answers(opened.index));
    await opened.client.close();
    expect((await manifestOf(fresh.path, fresh.key, 'u')).manifest.snapshot?.unitVectors).toBe(true);
    opened = await reopen(fresh.path, fresh.key, 'u');
    try {
      expectCosine(await answers(opened.index));
    } finally {
      await opened.client.close();
    }
  });
});
