/**
 * `onProgress({ done, total })` on the long calls that had none: a large
 * `upsert` (reported as vectors join the graph, in steps) and `compact`
 * (as live records are re-inserted). `verify` and `recoverIndex` are covered
 * in test/verify-recover.test.ts.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client, type Progress } from '../src/index.js';
import { PROGRESS_STEP } from '../src/core/writes.js';
import { onCleanup, randomVectors, rejectsWithCode, tempStore } from './support/helpers.js';

async function openFresh(dimension = 4) {
  const client = new Client({ path: join(tempStore(), 'store') });
  onCleanup(() => client.close());
  const index = await client.createIndex({ indexName: 'p', indexKey: Client.generateKey(), dimension, metric: 'euclidean' });
  return index;
}

describe('onProgress', () => {
  it('a large upsert reports each step of the graph insert, in order, ending at the total', async () => {
    const index = await openFresh();
    const n = 2 * PROGRESS_STEP + 345;
    const vectors = randomVectors(n, 4, 1);
    const seen: Progress[] = [];
    const ids = vectors.map((_, i) => `v${i}`);
    await index.upsert({ ids, vectors, onProgress: (p) => seen.push(p) });
    expect(seen).toEqual([
      { done: PROGRESS_STEP, total: n },
      { done: 2 * PROGRESS_STEP, total: n },
      { done: n, total: n },
    ]);
    // Every vector made it into the graph, not only into the records.
    const { results } = await index.query({ queryVectors: [vectors[n - 1]!, vectors[0]!, vectors[PROGRESS_STEP]!], topK: 1, exact: false });
    expect(results.map((r) => r[0]!.id)).toEqual([`v${n - 1}`, 'v0', `v${PROGRESS_STEP}`]);
    // The { items } shape takes it too; a small batch reports once.
    const items: Progress[] = [];
    await index.upsert({ items: [{ id: 'x', vector: [1, 2, 3, 4] }], onProgress: (p) => items.push(p) });
    expect(items).toEqual([{ done: 1, total: 1 }]);
  });

  it('a callback that throws fails the upsert and nothing of it is written', async () => {
    const index = await openFresh();
    await index.upsert({ ids: ['keep'], vectors: [[0, 0, 0, 0]] });
    const before = index.stats().commitCounter;
    const vectors = randomVectors(PROGRESS_STEP + 10, 4, 2);
    const boom = new Error('stop');
    await expect(
      index.upsert({
        ids: vectors.map((_, i) => `n${i}`),
        vectors,
        onProgress: () => {
          throw boom;
        },
      }),
    ).rejects.toBe(boom);
    expect(index.stats().commitCounter).toBe(before);
    expect((await index.listIds()).ids).toEqual(['keep']);
    // The graph holds only what was committed: the nearest vector to a withdrawn one is the kept one.
    const { results } = await index.query({ queryVectors: vectors[0]!, topK: 1, exact: false });
    expect(results.map((r) => r.id)).toEqual(['keep']);
  });

  it('rejects an onProgress that is not a function, before anything is written', async () => {
    const index = await openFresh();
    await rejectsWithCode(index.upsert({ ids: ['a'], vectors: [[1, 2, 3, 4]], onProgress: 'yes' as never }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.compact({ onProgress: 1 as never }), 'VECVAULT_VALIDATION');
    expect(index.stats().commitCounter).toBe(0);
  });

  it('compact reports the live records re-inserted, ending at the live count', async () => {
    const index = await openFresh();
    const vectors = randomVectors(9_000, 4, 3);
    await index.upsert({ ids: vectors.map((_, i) => String(i)), vectors });
    await index.delete({ ids: vectors.slice(0, 500).map((_, i) => String(i)) });
    const seen: Progress[] = [];
    await index.compact({ onProgress: (p) => seen.push(p) });
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.at(-1)).toEqual({ done: 8_500, total: 8_500 });
    expect(seen.every((p, i) => p.total === 8_500 && (i === 0 || p.done > seen[i - 1]!.done))).toBe(true);
  });
});
