/**
 * The native engine against the real addon (no mocks): exact answers vs
 * brute force, recall, serialization, filtered search, event-loop
 * responsiveness, concurrency, SIMD, lifecycle and hostile bytes.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { afterAll, describe, expect, it } from 'vitest';

import { keyDigestAsync } from '../src/crypto/bulk.js';
import { nativeEngine, simdCapabilities, type NativeAnnEngine } from '../src/engine/native.js';
import type { EngineMetric, EngineOptions, EnginePrecision, SearchResult } from '../src/engine/types.js';
import { exactTopK, randomFlat as randomVectors, recall as recallOf, seededRandom as rng } from './support/vectors.js';
import { tsWorkerBoot } from './support/helpers.js';
import { stockIndexBytes } from './support/stock-usearch.js';

// ------------------------------------------------------------- helpers --

function sequentialKeys(n: number, first = 1): BigUint64Array {
  const keys = new BigUint64Array(n);
  for (let i = 0; i < n; i++) keys[i] = BigInt(first + i);
  return keys;
}

interface Hit {
  key: bigint;
  distance: number;
}

/** Exact top-k by brute force (test/support/vectors.ts), optionally over allowed keys only. */
function bruteForce(metric: EngineMetric, data: Float32Array, keys: BigUint64Array, query: Float32Array, k: number, allowed?: Set<bigint>): Hit[] {
  const base = { data, count: keys.length, dimension: query.length };
  const rows = allowed ? Array.from(keys.keys()).filter((i) => allowed.has(keys[i]!)) : undefined;
  return exactTopK(base, query, k, { metric, rows }).map(({ row, distance }) => ({ key: keys[row]!, distance }));
}

function row(result: SearchResult, q: number): Hit[] {
  const hits: Hit[] = [];
  for (let i = 0; i < result.counts[q]!; i++) {
    hits.push({ key: result.keys[q * result.k + i]!, distance: result.distances[q * result.k + i]! });
  }
  return hits;
}

function recall(result: SearchResult, truth: Hit[][]): number {
  return recallOf(
    truth.map((_, q) => row(result, q).map((h) => h.key)),
    truth.map((expected) => expected.map((h) => h.key)),
  );
}

function options(overrides: Partial<EngineOptions> = {}): EngineOptions {
  return {
    dimension: 16,
    metric: 'l2sq',
    precision: 'f32',
    connectivity: 16,
    expansionAdd: 64,
    expansionSearch: 64,
    ...overrides,
  };
}

const open: NativeAnnEngine[] = [];
function track<T extends NativeAnnEngine>(engine: T): T {
  open.push(engine);
  return engine;
}
afterAll(async () => {
  await Promise.all(open.map((e) => e.close()));
});

async function built(n: number, opts: Partial<EngineOptions> = {}, seed = 1): Promise<{ engine: NativeAnnEngine; data: Float32Array; keys: BigUint64Array }> {
  const o = options(opts);
  const engine = track(nativeEngine.create(o));
  const data = randomVectors(n, o.dimension, seed, o.metric !== 'l2sq');
  const keys = sequentialKeys(n);
  await engine.add(keys, data);
  return { engine, data, keys };
}

function queriesOf(data: Float32Array, dim: number, rows: number[]): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => out.set(data.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}

/**
 * Runs `body` as a TypeScript module in a fresh Node process (`nativeEngine` imported for it), with `nodeFlags`
 * and `env`; checks it wrote nothing to stderr and exited 0, and returns its stdout.
 */
function runEngineScript(body: string, { nodeFlags = [], env = process.env }: { nodeFlags?: string[]; env?: NodeJS.ProcessEnv } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-script-'));
  try {
    const nativeTs = fileURLToPath(new URL('../src/engine/native.ts', import.meta.url));
    const script = join(dir, 'script.mts');
    writeFileSync(script, `import { nativeEngine } from ${JSON.stringify(nativeTs)};\n${body}`);
    const child = spawnSync(process.execPath, [...nodeFlags, '--import', 'tsx', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      timeout: 60_000,
      env,
    });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    return child.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// --------------------------------------------------------------- tests --

describe('native engine: build and SIMD', () => {
  it('reports a SIMD kernel (not serial) on x86_64 for every f32 metric', () => {
    const caps = simdCapabilities();
    expect(caps.compiled).toContain('serial');
    if (arch() !== 'x64') return;
    // NumKong's probe tests the compiler only; a failed probe silently builds serial kernels.
    expect(caps.compiled).toContain('haswell');
    expect(caps.available.filter((isa) => isa !== 'serial').length).toBeGreaterThan(0);
    for (const metric of ['l2sq', 'cos', 'ip'] as const) {
      const engine = track(nativeEngine.create(options({ metric })));
      expect(engine.isa(), metric).not.toBe('serial');
      expect(caps.available).toContain(engine.isa());
      // Float32 l2sq, ip and (unit) cosine use our kernels (f32-kernels.h), which report AVX2's name; NumKong's
      // own would report the CPU's best (skylake on an AVX-512 machine).
      if (caps.available.includes('haswell')) expect(engine.isa(), metric).toBe('haswell');
    }
  });

  it('the portable float32 kernels (forced by VECVAULT_F32_KERNELS=portable) give the float64 distances at every tail length', () => {
    const script = `let seed = 7;
const next = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const distance = (metric: string, a: Float32Array, b: Float32Array) => {
  let dot = 0, aa = 0, bb = 0, l2 = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i]! * b[i]!; aa += a[i]! * a[i]!; bb += b[i]! * b[i]!; l2 += (a[i]! - b[i]!) ** 2; }
  return metric === 'l2sq' ? l2 : metric === 'ip' ? 1 - dot : 1 - dot / Math.sqrt(aa * bb);
};
const isas: string[] = [];
let worst = 0;
for (const metric of ['l2sq', 'ip', 'cos'] as const) {
  for (const dimension of [1, 7, 8, 9, 31, 32, 33, 100]) {
    const e = nativeEngine.create({ dimension, metric, precision: 'f32', connectivity: 8, expansionAdd: 32, expansionSearch: 32 });
    isas.push(e.isa());
    const n = 50;
    const data = Float32Array.from({ length: n * dimension }, next);
    await e.add(BigUint64Array.from({ length: n }, (_, i) => BigInt(i)), data);
    for (let q = 0; q < 5; q++) {
      const query = Float32Array.from({ length: dimension }, next);
      const found = await e.search(query, 3, { exact: true });
      for (let j = 0; j < 3; j++) {
        const row = Number(found.keys[j]);
        const truth = distance(metric, data.subarray(row * dimension, (row + 1) * dimension), query);
        worst = Math.max(worst, Math.abs(found.distances[j]! - truth) / Math.max(1, Math.abs(truth)));
      }
    }
    await e.close();
  }
}
console.log(JSON.stringify({ isas: [...new Set(isas)], worst }));
`;
    const run = (env: NodeJS.ProcessEnv) => JSON.parse(runEngineScript(script, { env })) as { isas: string[]; worst: number };
    const portable = run({ ...process.env, VECVAULT_F32_KERNELS: 'portable' });
    expect(portable.isas).toEqual(['serial']);
    expect(portable.worst).toBeLessThan(1e-5);
    // Without the variable the same script runs the AVX2 kernels where the CPU has them.
    const usual = run({ ...process.env, VECVAULT_F32_KERNELS: '' });
    if (arch() === 'x64' && simdCapabilities().available.includes('haswell')) expect(usual.isas).toEqual(['haswell']);
    expect(usual.worst).toBeLessThan(1e-5);
  });

  it('rejects bad options with ValidationError', () => {
    for (const bad of [
      { dimension: 0 },
      { dimension: 1.5 },
      { metric: 'hamming' as EngineMetric },
      { precision: 'f64' as EnginePrecision },
      { connectivity: 1 },
      { expansionSearch: 0 },
      { precision: 'i8' as EnginePrecision, metric: 'l2sq' as EngineMetric }, // usearch normalizes int8 vectors
    ]) {
      expect(() => nativeEngine.create(options(bad)), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'VECVAULT_VALIDATION' }));
    }
  });
});

describe('native engine: answers', () => {
  const n = 400;
  const dim = 12;

  for (const metric of ['l2sq', 'cos', 'ip'] as const) {
    it(`${metric}: exact search and a wide graph search both match brute force`, async () => {
      const { engine, data, keys } = await built(n, { metric, dimension: dim }, 7);
      const queries = randomVectors(20, dim, 99, metric !== 'l2sq');
      const exact = await engine.search(queries, 5, { exact: true });
      const wide = await engine.search(queries, 5, { expansionSearch: n });
      for (let q = 0; q < 20; q++) {
        const truth = bruteForce(metric, data, keys, queries.subarray(q * dim, (q + 1) * dim), 5);
        for (const result of [exact, wide]) {
          const got = row(result, q);
          expect(got.map((h) => h.key)).toEqual(truth.map((h) => h.key));
          got.forEach((h, i) => expect(h.distance).toBeCloseTo(truth[i]!.distance, 4));
        }
      }
    });
  }

  // Our float32 l2sq and ip kernels (native/engine/f32-kernels.h) sum 32 floats per round, then 8, then one at
  // a time: dimensions around those steps catch a lane or a tail left out. Exact search uses the index's kernel.
  for (const metric of ['l2sq', 'ip'] as const) {
    it(`${metric} float32: exact distances equal a float64 sum at every tail length`, async () => {
      for (const dimension of [1, 3, 7, 8, 9, 31, 32, 33, 40, 63, 100, 128, 784]) {
        const { engine, data, keys } = await built(200, { metric, dimension }, dimension);
        const queries = randomVectors(10, dimension, 1000 + dimension, metric !== 'l2sq');
        const exact = await engine.search(queries, 5, { exact: true });
        for (let q = 0; q < 10; q++) {
          const truth = bruteForce(metric, data, keys, queries.subarray(q * dimension, (q + 1) * dimension), 5);
          const got = row(exact, q);
          // At one dimension unit vectors are ±1: ties everywhere, ordered by the graph's own rule.
          if (dimension > 1 || metric === 'l2sq')
            expect(
              got.map((h) => h.key),
              `dimension ${dimension}`,
            ).toEqual(truth.map((h) => h.key));
          got.forEach((h, i) =>
            expect(Math.abs(h.distance - truth[i]!.distance), `dimension ${dimension}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(truth[i]!.distance))),
          );
        }
        if (metric === 'l2sq') expect((await engine.search(data.subarray(0, dimension), 1, { exact: true })).distances[0]).toBe(0); // itself: exactly 0
      }
    });
  }

  // A batch runs on the pool as lanes that claim queries a few at a time (search.h SearchBatch), in
  // several calls when large; a single query runs on the calling thread. The graph walk is the same
  // function of the same bytes, so every row must equal its query asked alone, exactly. The queries
  // are not unit length (each lane scales the rows it claims), and the allowed keys come shuffled and
  // repeated (the first lane sorts them for all).
  it('a batch answers row for row as its queries asked one at a time, and reads the caller’s arrays only during the call', async () => {
    const dim = 16;
    const { engine, keys } = await built(3000, { metric: 'cos', dimension: dim }, 11);
    const allowedKeys = keys.filter((_, i) => i % 3 !== 0);
    const allowedSet = new Set(allowedKeys);
    const random = rng(5);
    const shuffled = [...allowedKeys, ...allowedKeys.subarray(0, 500)].sort(() => random() - 0.5);
    for (const count of [7, 100, 1300]) {
      const queries = randomVectors(count, dim, 1000 + count);
      for (let q = 0; q < count; q++) {
        const scale = 0.01 + 20 * random();
        for (let j = 0; j < dim; j++) queries[q * dim + j]! *= scale;
      }
      const asked = queries.slice();
      const allowedArg = BigUint64Array.from(shuffled);
      const pending = [
        engine.search(queries, 10, { expansionSearch: 24 }),
        engine.search(queries, 10, { expansionSearch: 24, allowedKeys: allowedArg }),
        engine.search(queries, 10, { exact: true }),
      ];
      queries.fill(Number.NaN); // after the calls returned: what the batch searches was taken before
      allowedArg.fill(0n);
      const [batch, filtered, exact] = await Promise.all(pending);
      for (let q = 0; q < count; q++) {
        const query = asked.subarray(q * dim, (q + 1) * dim);
        expect(batch!.counts[q]).toBe(10);
        expect(row(batch!, q)).toEqual(row(await engine.search(query, 10, { expansionSearch: 24 }), 0));
        expect(row(filtered!, q)).toEqual(row(await engine.search(query, 10, { expansionSearch: 24, allowedKeys }), 0));
        expect(row(filtered!, q).every((hit) => allowedSet.has(hit.key))).toBe(true);
        expect(row(exact!, q)).toEqual(row(await engine.search(query, 10, { exact: true }), 0));
      }
    }
  });

  it('returns fewer than k hits when the index is small, and empty rows for an empty index', async () => {
    const { engine } = await built(3);
    const result = await engine.search(randomVectors(2, 16, 5), 10);
    expect([...result.counts]).toEqual([3, 3]);
    const empty = track(nativeEngine.create(options()));
    const none = await empty.search(randomVectors(1, 16, 5), 4);
    expect([...none.counts]).toEqual([0]);
  });

  it('f16 and i8 storage keep high recall against float32 ground truth', async () => {
    const size = 2000;
    for (const precision of ['f16', 'i8'] as const) {
      const { engine, data, keys } = await built(size, { metric: 'cos', precision, dimension: 32 }, 3);
      const queries = randomVectors(50, 32, 4, true);
      const truth = Array.from({ length: 50 }, (_, q) => bruteForce('cos', data, keys, queries.subarray(q * 32, (q + 1) * 32), 10));
      const result = await engine.search(queries, 10, { expansionSearch: 128 });
      expect(recall(result, truth), precision).toBeGreaterThan(0.9);
    }
  });

  it('recall@10 ≥ 0.95 on 10k vectors; per-call ef changes results without changing the default', async () => {
    const dim = 24;
    const { engine, data, keys } = await built(10_000, { dimension: dim, expansionAdd: 128 }, 11);
    const queries = randomVectors(100, dim, 12);
    const truth = Array.from({ length: 100 }, (_, q) => bruteForce('l2sq', data, keys, queries.subarray(q * dim, (q + 1) * dim), 10));
    const before = await engine.search(queries, 10);
    const narrow = await engine.search(queries, 10, { expansionSearch: 10 });
    const wide = await engine.search(queries, 10, { expansionSearch: 256 });
    const after = await engine.search(queries, 10);
    expect(recall(wide, truth)).toBeGreaterThanOrEqual(0.95);
    expect(recall(narrow, truth)).toBeLessThan(recall(wide, truth));
    expect(after.keys).toEqual(before.keys);
    expect(after.distances).toEqual(before.distances);
    expect(engine.options.expansionSearch).toBe(64);
    // The 100-query batch ran as several tasks; its rows are where single queries put them.
    for (const q of [0, 63, 64, 99]) {
      const single = await engine.search(queries.subarray(q * dim, (q + 1) * dim), 10);
      expect(row(single, 0)).toEqual(row(before, q));
    }
  });
});

describe('native engine: filtered search', () => {
  it('allowedKeys returns only allowed keys with high recall; exact over allowed keys is exact', async () => {
    const dim = 16;
    const { engine, data, keys } = await built(10_000, { dimension: dim }, 21);
    const pick = rng(22);
    const queries = randomVectors(50, dim, 23);
    // 0.5 takes the addon's other exact path (a predicate scan of all members).
    for (const fraction of [0.5, 0.1, 0.01]) {
      const allowedList = [...keys].filter(() => pick() < fraction);
      const allowed = new Set(allowedList);
      const allowedKeys = BigUint64Array.from(allowedList);
      const truth = Array.from({ length: 50 }, (_, q) => bruteForce('l2sq', data, keys, queries.subarray(q * dim, (q + 1) * dim), 10, allowed));
      const graph = await engine.search(queries, 10, { allowedKeys });
      const exact = await engine.search(queries, 10, { allowedKeys, exact: true });
      for (let q = 0; q < 50; q++) {
        for (const hit of row(graph, q)) expect(allowed.has(hit.key)).toBe(true);
        expect(row(exact, q).map((h) => h.key)).toEqual(truth[q]!.map((h) => h.key));
      }
      expect(recall(graph, truth), `fraction ${fraction}`).toBeGreaterThanOrEqual(0.95);
    }
  });

  it.each(['f16', 'i8'] as const)(
    'exact over allowed keys on %s storage gives the graph search distances (query cast to the index precision)',
    async (precision) => {
      const metric = precision === 'i8' ? 'cos' : 'l2sq';
      const { engine, data, keys } = await built(400, { precision, metric }, 44);
      const query = data.subarray(0, engine.options.dimension);
      const allowed = keys.slice(0, 20).sort();
      const exact = await engine.search(query, 3, { allowedKeys: allowed, exact: true });
      const graph = await engine.search(query, 3, { allowedKeys: allowed, expansionSearch: 400 });
      expect(row(exact, 0).map((hit) => hit.key)).toEqual(row(graph, 0).map((hit) => hit.key));
      row(exact, 0).forEach((hit, i) => expect(hit.distance).toBeCloseTo(row(graph, 0)[i]!.distance, 4));
      expect(row(exact, 0)[0]!.key).toBe(keys[0]); // the query's own vector is nearest
    },
  );

  it('ignores unknown and removed keys in allowedKeys', async () => {
    const { engine } = await built(500, {}, 31);
    await engine.remove(new BigUint64Array([1n, 2n]));
    const allowedKeys = new BigUint64Array([1n, 2n, 3n, 4n, 99_999n]);
    for (const exact of [false, true]) {
      const result = await engine.search(randomVectors(3, 16, 32), 5, { allowedKeys, exact });
      for (let q = 0; q < 3; q++) {
        expect(
          row(result, q)
            .map((h) => h.key)
            .sort(),
        ).toEqual([3n, 4n]);
      }
    }
  });
});

describe('native engine: writes', () => {
  it('add validates before writing anything', async () => {
    const { engine } = await built(100);
    const one = randomVectors(1, 16, 1);
    const cases: [BigUint64Array, Float32Array, string][] = [
      [new BigUint64Array([500n, 500n]), randomVectors(2, 16, 2), 'keys'], // same key twice
      [new BigUint64Array([501n, 5n]), randomVectors(2, 16, 2), 'keys'], // 5 already present
      [new BigUint64Array([502n]), new Float32Array(15), 'vectors'], // wrong width
      [new BigUint64Array([503n, 504n]), randomVectors(2, 16, 3).fill(Number.NaN, 20, 21), 'vectors'],
      [new BigUint64Array([505n]), one.map(() => Number.POSITIVE_INFINITY), 'vectors'],
      [new BigUint64Array([0xffff_ffff_ffff_ffffn]), one, 'keys'], // usearch's free-slot sentinel
    ];
    for (const [keys, vectors, path] of cases) {
      await expect(engine.add(keys, vectors)).rejects.toMatchObject({ code: 'VECVAULT_VALIDATION', path });
    }
    expect(engine.size()).toBe(100);
    expect(engine.contains(501n)).toBe(false);
  });

  it('remove counts present keys, and freed slots are reused by later adds', async () => {
    const { engine, data } = await built(1000, {}, 41);
    expect(await engine.remove(new BigUint64Array([1n, 2n, 3n, 123_456n]))).toBe(3);
    expect(engine.size()).toBe(997);
    expect(engine.contains(2n)).toBe(false);
    const capacity = engine.capacity();
    await engine.add(new BigUint64Array([2001n, 2002n, 2003n]), data.subarray(0, 48));
    expect(engine.size()).toBe(1000);
    expect(engine.capacity()).toBe(capacity);
    const result = await engine.search(data.subarray(0, 16), 1);
    expect(row(result, 0)[0]).toEqual({ key: 2001n, distance: 0 });
  });

  it('an exact scan skips removed vectors: k hits from the live ones, none removed', async () => {
    const { engine, data, keys } = await built(500, {}, 45);
    const removed = keys.slice(0, 400);
    await engine.remove(removed);
    const result = await engine.search(data.subarray(0, engine.options.dimension), 10, { exact: true });
    expect(result.counts[0]).toBe(10);
    expect(row(result, 0).some((hit) => removed.includes(hit.key))).toBe(false);
  });

  it('countPresent counts the keys the engine holds, on the pool', async () => {
    const { engine, keys } = await built(1000, {}, 43);
    await engine.remove(keys.subarray(5, 7));
    expect(await engine.countPresent(keys)).toBe(998);
    expect(await engine.countPresent(new BigUint64Array([keys[1]!, keys[5]!, 99_999_999n, keys[7]!]))).toBe(2);
    expect(await engine.countPresent(new BigUint64Array(0))).toBe(0);
    // The same keys as numbers (a snapshot table's key column), and bad numbers refused.
    expect(await engine.countPresent(Float64Array.from(keys, Number))).toBe(998);
    await expect(engine.countPresent(new Float64Array([1.5]))).rejects.toMatchObject({ code: 'VECVAULT_VALIDATION' });
    // Checked on the pool, each anywhere in the column: NaN, negatives, infinities, 2^53 and above.
    for (const bad of [Number.NaN, -1, -0.5, Number.POSITIVE_INFINITY, 2 ** 53, 2 ** 64]) {
      const column = Float64Array.from(keys, Number);
      column[500] = bad;
      await expect(engine.countPresent(column)).rejects.toMatchObject({ code: 'VECVAULT_VALIDATION' });
    }
    expect(await engine.countPresent(new Float64Array([0, 2 ** 53 - 1]))).toBe(keys.includes(0n) ? 1 : 0);
  });

  it('heavy overwrite churn on a small index keeps every key findable and removable (usearch key-table tombstones)', async () => {
    // The model-based test's shrunk pattern: 24 ids overwritten again and again. Before the key table
    // was rebuilt ahead of filling, a remove freed live nodes and the 37th batch failed ("Ring buffer is full").
    const engine = track(nativeEngine.create(options({ dimension: 4 })));
    const liveKey = new Map<number, bigint>();
    let next = 1n;
    let n = 0;
    for (let round = 0; round < 60; round++) {
      const ids = Array.from({ length: 1 + (round % 7) }, (_, i) => (round * 5 + i * 7) % 24);
      const batch = [...new Set(ids)];
      const keys = BigUint64Array.from(batch, () => next++);
      const vectors = Float32Array.from({ length: batch.length * 4 }, () => Math.sin(++n));
      await engine.add(keys, vectors);
      const replaced = batch.flatMap((id) => (liveKey.has(id) ? [liveKey.get(id)!] : []));
      batch.forEach((id, i) => liveKey.set(id, keys[i]!));
      if (replaced.length > 0) expect(await engine.remove(BigUint64Array.from(replaced))).toBe(replaced.length);
      expect(engine.size()).toBe(liveKey.size);
    }
    const live = BigUint64Array.from(liveKey.values());
    expect(await engine.countPresent(live)).toBe(live.length);
  });

  it('reserve grows capacity ahead of an add; memoryUsage grows with data', async () => {
    const engine = track(nativeEngine.create(options()));
    const empty = engine.memoryUsage();
    await engine.reserve(5000);
    expect(engine.capacity()).toBeGreaterThanOrEqual(5000);
    await engine.add(sequentialKeys(3000), randomVectors(3000, 16, 2));
    expect(engine.memoryUsage()).toBeGreaterThan(empty);
    expect(engine.memoryUsage()).toBeGreaterThan(3000 * 16 * 4);
  });

  it('memoryUsage while an add runs on the pool is the figure from before it (usearch walks nodes the add has not stored yet)', async () => {
    // Without the guard this crashed the process (SIGSEGV) within a few thousand calls: stats() during an upsert.
    const engine = track(nativeEngine.create(options()));
    await engine.add(sequentialKeys(1000), randomVectors(1000, 16, 3));
    const before = engine.memoryUsage();
    let done = false;
    let calls = 0;
    const adding = engine.add(sequentialKeys(40_000, 1001), randomVectors(40_000, 16, 4)).finally(() => (done = true));
    while (!done) {
      expect(engine.memoryUsage()).toBe(before);
      calls++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await adding;
    expect(calls).toBeGreaterThan(10);
    expect(engine.memoryUsage()).toBeGreaterThan(before);
  });
});

describe('native engine: serialization', () => {
  it('serialize → deserialize → serialize is byte-identical and answers identically', async () => {
    const { engine, data } = await built(3000, { metric: 'cos' }, 51);
    await engine.remove(sequentialKeys(100, 1)); // deleted nodes must survive the trip too
    const bytes = await engine.serialize();
    // Its vectors were scaled to unit length as they were added (cosine, f32): the copy may use the same kernel.
    const load = { unitVectors: engine.unitVectors() };
    expect(load.unitVectors).toBe(true);
    const copy = track(await nativeEngine.deserialize(bytes, engine.options, load));
    expect(Buffer.from(await copy.serialize()).equals(Buffer.from(bytes))).toBe(true);
    expect(copy.size()).toBe(engine.size());
    expect(copy.contains(50n)).toBe(false);
    expect(copy.contains(500n)).toBe(true);
    const queries = queriesOf(data, 16, [5, 500, 2999]);
    const a = await engine.search(queries, 10);
    const b = await copy.search(queries, 10);
    expect(b.keys).toEqual(a.keys);
    expect(b.distances).toEqual(a.distances);
    // The copy is a live index: it accepts new vectors.
    await copy.add(new BigUint64Array([10_000n]), data.subarray(0, 16));
    expect(copy.size()).toBe(engine.size() + 1);
    // The same bytes in parts cut at arbitrary points (nodes straddle parts) load to the same index.
    const rand = rng(77);
    const cuts = [...new Set(Array.from({ length: 40 }, () => Math.floor(rand() * bytes.length)))].sort((x, y) => x - y);
    const parts = [0, ...cuts, bytes.length].slice(1).map((end, i, ends) => bytes.subarray(i === 0 ? 0 : ends[i - 1]!, end));
    const fromParts = track(await nativeEngine.deserialize(parts, engine.options, load));
    expect(Buffer.from(await fromParts.serialize()).equals(Buffer.from(bytes))).toBe(true);
  });

  it("reads the stock usearch binding's saved file byte for byte and answers exactly as it does", async () => {
    // Same graph in both: proves the per-call ef emulation (ask usearch for
    // max(k, ef) with its own ef pinned) equals usearch's search at that ef.
    // Stored as f16, whose kernel stays usearch's own (float32 l2sq, ip and
    // unit cosine use ours, whose distances differ in the last bits: below).
    const dim = 16;
    const data = randomVectors(4000, dim, 111);
    const keys = sequentialKeys(4000);
    const { stock, bytes } = await stockIndexBytes({ dimensions: dim, metric: 'l2sq', quantization: 'f16', expansionSearch: 40, keys, vectors: data });
    const engine = track(await nativeEngine.deserialize(bytes, options({ dimension: dim, precision: 'f16', expansionSearch: 40 })));
    expect(Buffer.from(await engine.serialize()).equals(bytes)).toBe(true);
    const queries = randomVectors(200, dim, 112);
    const ours = await engine.search(queries, 10);
    const theirs = stock.search(queries, 10, 1);
    expect(ours.keys).toEqual(theirs.keys);
    expect(ours.distances).toEqual(theirs.distances);
  });

  for (const metric of ['l2sq', 'ip'] as const) {
    it(`loads the stock binding's float32 ${metric} file with our float32 kernel: the same bytes back, its answers, distances to float32 rounding`, async () => {
      const dim = 16;
      const data = randomVectors(4000, dim, 113);
      const keys = sequentialKeys(4000);
      const { stock, bytes } = await stockIndexBytes({ dimensions: dim, metric, expansionSearch: 40, keys, vectors: data });
      const engine = track(await nativeEngine.deserialize(bytes, options({ dimension: dim, metric, expansionSearch: 40 })));
      expect(Buffer.from(await engine.serialize()).equals(bytes)).toBe(true); // the header still names the metric: any reader loads it
      // The same kernel as an engine made here (not the loaded header's): bit-identical exact distances.
      const fresh = track(nativeEngine.create(options({ dimension: dim, metric })));
      await fresh.add(keys, data);
      const queries = randomVectors(200, dim, 114);
      const loadedExact = await engine.search(queries, 10, { exact: true });
      expect(loadedExact.distances).toEqual((await fresh.search(queries, 10, { exact: true })).distances);
      const ours = await engine.search(queries, 10);
      const theirs = stock.search(queries, 10, 1);
      let same = 0;
      for (let i = 0; i < ours.keys.length; i++) {
        if (ours.keys[i] === theirs.keys[i]) same++;
        expect(Math.abs(ours.distances[i]! - theirs.distances[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(theirs.distances[i]!)));
      }
      expect(same / ours.keys.length).toBeGreaterThan(0.99); // a near-tie may order differently
    });
  }

  it('an empty engine round-trips', async () => {
    const engine = track(nativeEngine.create(options()));
    const bytes = await engine.serialize();
    const copy = track(await nativeEngine.deserialize(bytes, engine.options));
    expect(copy.size()).toBe(0);
    expect(Buffer.from(await copy.serialize()).equals(Buffer.from(bytes))).toBe(true);
  });

  it('bytes that do not match the options, or are truncated or garbage, give NativeError', async () => {
    const { engine } = await built(500, {}, 61);
    const bytes = await engine.serialize();
    const bad: [string, Uint8Array, EngineOptions][] = [
      ['other dimension', bytes, options({ dimension: 17 })],
      ['other metric', bytes, options({ metric: 'cos' })],
      ['other precision', bytes, options({ precision: 'f16' })],
      ['other connectivity', bytes, options({ connectivity: 8 })],
      ['empty', new Uint8Array(0), options()],
      ['random', Uint8Array.from(randomVectors(4000, 1, 5), (v) => Math.floor((v + 1) * 128)), options()],
      ['trailing byte', Buffer.concat([bytes, new Uint8Array(1)]), options()],
    ];
    for (const cut of [1, 8, 9, 500 * 64 + 8, 500 * 64 + 8 + 64 + 20, bytes.length - 1]) {
      bad.push([`truncated at ${cut}`, bytes.subarray(0, cut), options()]);
    }
    for (const [name, input, opts] of bad) {
      await expect(nativeEngine.deserialize(input, opts), name).rejects.toMatchObject({ code: 'VECVAULT_NATIVE' });
    }
  });

  it('single flipped bytes never crash: rejected, or loaded and searchable', async () => {
    const { engine } = await built(300, {}, 71);
    const bytes = await engine.serialize();
    const next = rng(72);
    const graphStart = 8 + 300 * 64; // flips in the graph part are the dangerous ones
    let rejected = 0;
    for (let i = 0; i < 150; i++) {
      const copy = bytes.slice();
      const at = i < 100 ? graphStart + Math.floor(next() * (bytes.length - graphStart)) : Math.floor(next() * 64);
      copy[at] = copy[at]! ^ (1 << Math.floor(next() * 8));
      try {
        const loaded = await nativeEngine.deserialize(copy, engine.options);
        await loaded.search(randomVectors(2, 16, i), 5);
        await loaded.close();
      } catch (error) {
        expect(error).toMatchObject({ code: 'VECVAULT_NATIVE' });
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(0);
  });
});

describe('native engine: streamed serialize and load', () => {
  /** Chunks of `bytes` as separate buffers (each owning its memory, as snapshot chunks do). */
  async function* chunksOf(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < bytes.length; at += size) yield new Uint8Array(bytes.subarray(at, at + size));
  }

  it('serializeTo hands out the same bytes as serialize(), in full chunks but the last; deserializeFrom loads them to the same graph', async () => {
    const { engine, data } = await built(2000, {}, 101);
    const whole = Buffer.from(await engine.serialize());
    const parts: Buffer[] = [];
    const lasts: boolean[] = [];
    // A slow sink: the addon must wait for acks (it has 4 buffers), not overwrite unsealed chunks.
    const total = await engine.serializeTo(4096, async (chunk, index, last) => {
      expect(index).toBe(parts.length);
      parts.push(Buffer.from(chunk));
      lasts.push(last);
      if (index % 7 === 0) await new Promise((r) => setTimeout(r, 1));
    });
    expect(total).toBe(whole.length);
    expect(Buffer.concat(parts).equals(whole)).toBe(true);
    expect(parts.slice(0, -1).every((p) => p.length === 4096)).toBe(true);
    expect(lasts.filter(Boolean)).toHaveLength(1);
    expect(lasts.at(-1)).toBe(true);
    const copy = track(await nativeEngine.deserializeFrom(chunksOf(whole, 4096), engine.options, { bound: whole.length, release: true }));
    expect(Buffer.from(await copy.serialize()).equals(whole)).toBe(true);
    const q = queriesOf(data, 16, [0, 5, 9]);
    expect((await copy.search(q, 10)).keys).toEqual((await engine.search(q, 10)).keys);
  });

  it('deserializeFrom with a digest key digests the live keys of the graph it loads: the same digest as keyDigestAsync over them in any order, and no other set', async () => {
    const { engine, keys } = await built(1500, {}, 105);
    await engine.remove(keys.subarray(0, 10)); // deleted slots stay in the bytes, and are no keys
    const live = Array.from(keys.subarray(10), Number);
    const whole = await engine.serialize();
    const digestKey = randomBytes(32);
    const copy = track(await nativeEngine.deserializeFrom(chunksOf(whole, 4096), engine.options, { bound: whole.length, keyDigest: digestKey }));
    const loaded = copy.loadedKeyDigest();
    expect(loaded).toHaveLength(24);
    const digestOf = (numbers: number[], key = digestKey) => keyDigestAsync(key, Float64Array.from(numbers));
    const shuffled = [...live].sort(() => Math.random() - 0.5);
    expect(Buffer.from((await digestOf(shuffled))!).equals(Buffer.from(loaded!))).toBe(true);
    // One key fewer, one other key, a key twice in place of another, another digest key: all differ.
    const differs = async (numbers: number[], key = digestKey) => !Buffer.from((await digestOf(numbers, key))!).equals(Buffer.from(loaded!));
    expect(await differs(live.slice(1))).toBe(true);
    expect(await differs([Number(keys[0]!), ...live.slice(1)])).toBe(true);
    expect(await differs([live[1]!, ...live.slice(1)])).toBe(true);
    expect(await differs(live, randomBytes(32))).toBe(true);
    // Not engine keys at all: no digest.
    expect(await digestOf([1.5])).toBeNull();
    expect(await digestOf([-1])).toBeNull();
    expect(await digestOf([2 ** 53])).toBeNull();
    // Without a digest key, none is taken; a wrong-sized one is refused.
    const plain = track(await nativeEngine.deserializeFrom(chunksOf(whole, 4096), engine.options, { bound: whole.length }));
    expect(plain.loadedKeyDigest()).toBeUndefined();
    await expect(
      nativeEngine.deserializeFrom(chunksOf(whole, 4096), engine.options, { bound: whole.length, keyDigest: new Uint8Array(16) }),
    ).rejects.toMatchObject({
      code: 'VECVAULT_VALIDATION',
    });
  });

  it('a failing sink stops the stream with its error, and the engine keeps working', async () => {
    const { engine } = await built(1000, {}, 102);
    const stop = new Error('disk full');
    let calls = 0;
    await expect(
      engine.serializeTo(1024, async () => {
        if (++calls === 3) throw stop;
      }),
    ).rejects.toBe(stop);
    expect(calls).toBeLessThan(12); // stopped within the buffers already filled
    await engine.add(sequentialKeys(10, 50_000), randomVectors(10, 16, 103)); // the read hold was released
    expect(engine.size()).toBe(1010);
  });

  it('deserializeFrom refuses truncated, trailing, oversized and corrupted streams, and rethrows a failing source', async () => {
    const { engine } = await built(500, {}, 104);
    const bytes = await engine.serialize();
    const o = engine.options;
    const load = (input: Uint8Array, bound = input.length) => nativeEngine.deserializeFrom(chunksOf(input, 1000), o, { bound });
    for (const cut of [1, 9, 500 * 64 + 8 + 64 + 20, bytes.length - 1]) {
      await expect(load(bytes.subarray(0, cut)), `cut ${cut}`).rejects.toMatchObject({ code: 'VECVAULT_NATIVE' });
    }
    await expect(load(Buffer.concat([bytes, new Uint8Array(1)]))).rejects.toMatchObject({ code: 'VECVAULT_NATIVE' });
    await expect(load(bytes, 100)).rejects.toMatchObject({ code: 'VECVAULT_NATIVE' }); // the header claims more than the bound
    await expect(nativeEngine.deserializeFrom(chunksOf(bytes, 1000), options({ dimension: 17 }), { bound: bytes.length })).rejects.toMatchObject({
      code: 'VECVAULT_NATIVE',
    });
    // A neighbour slot out of range in the last node: caught as that node streams past.
    const bad = bytes.slice();
    new DataView(bad.buffer).setUint32(bad.length - 4, 0xfffffff0, true);
    const neighbourCount = new DataView(bad.buffer).getUint32(bad.length - 4 - 4 * 31, true); // base level: count, then 32 slots
    if (neighbourCount === 32) await expect(load(bad)).rejects.toMatchObject({ code: 'VECVAULT_NATIVE' });
    const failure = new Error('chunk 2 does not authenticate');
    async function* failing(): AsyncGenerator<Uint8Array> {
      let i = 0;
      for await (const chunk of chunksOf(bytes, 1000)) {
        if (i++ === 2) throw failure;
        yield chunk;
      }
    }
    await expect(nativeEngine.deserializeFrom(failing(), o, { bound: bytes.length })).rejects.toBe(failure);
  });
});

describe('native engine: concurrency and the event loop', () => {
  it('keeps the event loop free while adding 30k × 64 vectors', async () => {
    const n = 30_000;
    const dim = 64;
    const engine = track(nativeEngine.create(options({ dimension: dim, expansionAdd: 64 })));
    const data = randomVectors(n, dim, 81);
    const keys = sequentialKeys(n);
    const histogram = monitorEventLoopDelay({ resolution: 5 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    histogram.enable();
    const started = performance.now();
    await engine.add(keys, data);
    const seconds = (performance.now() - started) / 1000;
    histogram.disable();
    clearInterval(timer);
    const maxDelayMs = histogram.max / 1e6;
    console.log(
      `native add ${n}×${dim}: ${(n / seconds).toFixed(0)} vec/s, event-loop max delay ${maxDelayMs.toFixed(1)} ms (p99 ${(histogram.percentile(99) / 1e6).toFixed(1)} ms), ${ticks} ticks`,
    );
    expect(engine.size()).toBe(n);
    // A blocking add would freeze the loop for the whole add (seconds). The
    // bound is generous because CI machines are shared; bench/ measures the
    // ≤ 50 ms target precisely. p99 shows the loop ran steadily throughout.
    expect(maxDelayMs).toBeLessThan(300);
    expect(histogram.percentile(99) / 1e6).toBeLessThan(100);
    expect(ticks).toBeGreaterThan((seconds * 1000) / 10 / 4);
  });

  it('searches running during an add or a remove return only valid keys', async () => {
    const dim = 16;
    const { engine, data, keys } = await built(3000, { dimension: dim }, 91);
    const batch = randomVectors(12_000, dim, 92);
    const batchKeys = sequentialKeys(12_000, 10_001);
    const valid = new Set([...keys, ...batchKeys]);
    const seedRows = [0, 10, 200, 999, 1500, 2000, 2500, 2999];
    const queries = queriesOf(data, dim, seedRows); // each query's best hit is its own key
    let adding = true;
    let selfHits = 0;
    let total = 0;
    const add = engine.add(batchKeys, batch).finally(() => {
      adding = false;
    });
    let searches = 0;
    while (adding) {
      const results = await Promise.all([engine.search(queries, 10), engine.search(queries, 10, { expansionSearch: 32 })]);
      // Single queries may run on this thread; they must not wait for the add there.
      const single = await engine.search(queries.subarray(0, dim), 10);
      expect(single.counts[0]).toBe(10);
      for (const hit of row(single, 0)) expect(valid.has(hit.key)).toBe(true);
      for (const result of results) {
        for (let q = 0; q < 8; q++) {
          // A search racing an insert inside usearch can come back with one hit; the gate prevents it.
          expect(result.counts[q]).toBe(10);
          for (const hit of row(result, q)) expect(valid.has(hit.key)).toBe(true);
          if (row(result, q)[0]!.key === keys[seedRows[q]!]) selfHits++;
          total++;
        }
      }
      searches++;
    }
    await add;
    expect(searches).toBeGreaterThan(1);
    expect(selfHits / total).toBeGreaterThan(0.95);
    expect(engine.size()).toBe(15_000);

    // Remove half of the original keys while searching; afterwards none of them may come back.
    const removed = keys.filter((k) => k % 2n === 0n);
    const removal = engine.remove(removed);
    const during = await engine.search(queriesOf(data, dim, [0, 1, 2, 3]), 10);
    for (let q = 0; q < 4; q++) for (const hit of row(during, q)) expect(valid.has(hit.key)).toBe(true);
    expect(await removal).toBe(removed.length);
    const removedSet = new Set(removed);
    const after = await engine.search(queriesOf(data, dim, [1, 3, 5, 7]), 20);
    for (let q = 0; q < 4; q++) for (const hit of row(after, q)) expect(removedSet.has(hit.key)).toBe(false);
  });

  it('writes apply in call order; serialize sees exactly the writes called before it', async () => {
    const engine = track(nativeEngine.create(options()));
    const data = randomVectors(4000, 16, 95);
    const first = engine.add(sequentialKeys(2000), data.subarray(0, 2000 * 16));
    const removal = engine.remove(sequentialKeys(10));
    const snapshot = engine.serialize();
    const second = engine.add(sequentialKeys(2000, 5000), data.subarray(2000 * 16));
    const [, removedCount, bytes] = await Promise.all([first, removal, snapshot, second]);
    expect(removedCount).toBe(10);
    const copy = track(await nativeEngine.deserialize(bytes, engine.options));
    expect(copy.size()).toBe(1990);
    expect(engine.size()).toBe(3990);
  });
});

describe('native engine: lifecycle', () => {
  it('close waits for work in flight, then every call fails with ClosedError', async () => {
    const engine = nativeEngine.create(options());
    const data = randomVectors(5000, 16, 101);
    const add = engine.add(sequentialKeys(5000), data);
    const search = engine.search(data.subarray(0, 16), 3);
    const closing = engine.close();
    await expect(add).resolves.toBeUndefined();
    await expect(search).resolves.toMatchObject({ k: 3 });
    await closing;
    await expect(engine.search(data.subarray(0, 16), 3)).rejects.toMatchObject({ code: 'VECVAULT_CLOSED' });
    await expect(engine.add(new BigUint64Array([9n]), data.subarray(0, 16))).rejects.toMatchObject({
      code: 'VECVAULT_CLOSED',
    });
    await expect(engine.remove(new BigUint64Array([9n]))).rejects.toMatchObject({ code: 'VECVAULT_CLOSED' });
    await expect(engine.serialize()).rejects.toMatchObject({ code: 'VECVAULT_CLOSED' });
    expect(() => engine.size()).toThrow(expect.objectContaining({ code: 'VECVAULT_CLOSED' }));
    expect(() => engine.contains(1n)).toThrow(expect.objectContaining({ code: 'VECVAULT_CLOSED' }));
    expect(() => engine.memoryUsage()).toThrow(expect.objectContaining({ code: 'VECVAULT_CLOSED' }));
    await engine.close(); // twice is fine
  });

  it('works inside worker threads, including one terminated with work in flight', async () => {
    const nativeTs = fileURLToPath(new URL('../src/engine/native.ts', import.meta.url));
    const source = `import { parentPort, workerData } from 'node:worker_threads';
import { nativeEngine } from ${JSON.stringify(nativeTs)};
const e = nativeEngine.create({ dimension: 8, metric: 'cos', precision: 'f16', connectivity: 8, expansionAdd: 32, expansionSearch: 32 });
const keys = BigUint64Array.from({ length: 3000 }, (_, j) => BigInt(j + 1));
const vectors = Float32Array.from({ length: 3000 * 8 }, () => Math.random() - 0.5);
await e.add(keys, vectors);
const r = await e.search(vectors.subarray(8, 16), 1);
if (workerData.stall) { void e.add(keys.map((k) => k + 10000n), vectors); parentPort.postMessage('busy'); }
else { await e.close(); parentPort.postMessage(String(r.keys[0])); }
`;
    const dir = mkdtempSync(join(tmpdir(), 'vecvault-worker-'));
    try {
      const file = join(dir, 'worker.mts');
      writeFileSync(file, source);
      const boot = tsWorkerBoot(dir, file);
      const run = (stall: boolean): Promise<{ message: string; worker: Worker }> =>
        new Promise((resolve, reject) => {
          const worker = new Worker(boot, { workerData: { stall } });
          worker.once('message', (message: string) => resolve({ message, worker }));
          worker.once('error', reject);
        });
      const [a, b] = await Promise.all([run(false), run(false)]);
      expect([a.message, b.message]).toEqual(['2', '2']);
      const busy = await run(true);
      expect(busy.message).toBe('busy');
      await busy.worker.terminate(); // env teardown while an add is in flight must not crash us
      const again = await run(false);
      expect(again.message).toBe('2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('workers terminated while calling into the engine in a loop never abort the process (30 rounds)', async () => {
    // Measured before the fix: the process aborted ("terminate called after throwing an instance of
    // 'Napi::Error'") within 25–50 such rounds; node-addon-api rethrew into the dying environment.
    const nativeTs = fileURLToPath(new URL('../src/engine/native.ts', import.meta.url));
    const source = `import { parentPort } from 'node:worker_threads';
import { nativeEngine } from ${JSON.stringify(nativeTs)};
const e = nativeEngine.create({ dimension: 8, metric: 'cos', precision: 'f16', connectivity: 8, expansionAdd: 32, expansionSearch: 32 });
const keys = BigUint64Array.from({ length: 3000 }, (_, j) => BigInt(j + 1));
const vectors = Float32Array.from({ length: 3000 * 8 }, () => Math.random() - 0.5);
await e.add(keys, vectors);
parentPort.postMessage('busy');
for (;;) {
  const calls = [e.add(keys.map((k) => k + 10000n), vectors), e.search(vectors.subarray(8, 16), 1), e.remove(keys.subarray(0, 100))];
  for (const c of calls) c.catch(() => undefined);
  await Promise.race(calls).catch(() => undefined);
}
`;
    const dir = mkdtempSync(join(tmpdir(), 'vecvault-worker-'));
    try {
      const file = join(dir, 'worker.mts');
      writeFileSync(file, source);
      const boot = tsWorkerBoot(dir, file);
      for (let round = 0; round < 30; round++) {
        const worker = new Worker(boot);
        await new Promise((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        });
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
        await worker.terminate();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('garbage-collected engines that were never closed (some mid-search) do not crash the process', () => {
    const out = runEngineScript(
      `const opts = { dimension: 8, metric: 'l2sq', precision: 'f32', connectivity: 8, expansionAdd: 32, expansionSearch: 32 } as const;
const gc = (globalThis as { gc?: () => void }).gc!;
async function round(i: number) {
  const e = nativeEngine.create(opts);
  const keys = BigUint64Array.from({ length: 2000 }, (_, j) => BigInt(j + 1));
  const vectors = Float32Array.from({ length: 2000 * 8 }, () => Math.random());
  await e.add(keys, vectors);
  if (i % 2) void e.search(vectors.subarray(0, 16), 5); // two queries: pool tasks still running when dropped
}
for (let i = 0; i < 20; i++) { await round(i); gc(); }
await new Promise((r) => setTimeout(r, 100));
gc();
console.log('gc-ok');
`,
      { nodeFlags: ['--expose-gc'] },
    );
    expect(out.trim()).toBe('gc-ok');
  });
});
