/**
 * Filtered search returns the true filtered top-k: recall@10 against exact
 * filtered ground truth at 50%, 10%, 1% and 0.1% selectivity, on real data
 * (skipped when ../shared/data is absent) and on generated data (always).
 */
import { describe, expect, it } from 'vitest';
import { datasetUnavailable, loadDataset, type DatasetName } from './support/datasets.js';
import type { Metric } from '../src/index.js';
import { openFresh, reopen } from './support/fixtures.js';
import { rejectsWithCode } from './support/helpers.js';
import { bucketOf, clusteredVectors, exactTopK, FILTER_SELECTIVITIES, recall as recallOf, rowOf, selectivityCase, type VectorSet } from './support/vectors.js';

async function checkFilteredRecall(name: string, base: VectorSet, queries: VectorSet, metric: Metric, queryCount: number) {
  const { index } = await openFresh({ indexName: name, metric });
  const ids = Array.from({ length: base.count }, (_, i) => String(i));
  await index.upsert({
    ids,
    vectors: ids.map((_, i) => rowOf(base, i)),
    metadata: ids.map((_, i) => ({ bucket: bucketOf(i), parity: i % 2 ? 'odd' : 'even' })),
  });
  const report: string[] = [];
  for (const selectivity of FILTER_SELECTIVITIES) {
    const { limit, filters, matching } = selectivityCase(selectivity, base.count);
    const found: number[][] = [];
    const truth: number[][] = [];
    for (let q = 0; q < queryCount; q++) {
      const query = rowOf(queries, q);
      truth.push(exactTopK(base, query, 10, { metric, rows: matching }).map((n) => n.row));
      const { results } = await index.query({ queryVectors: Array.from(query), topK: 10, filters, include: ['metadata'] });
      expect(results.length).toBe(Math.min(10, matching.length));
      for (const r of results) expect((r.metadata!.bucket as number) < limit).toBe(true);
      found.push(results.map((r) => Number(r.id)));
    }
    const recall = recallOf(found, truth);
    report.push(`${selectivity * 100}%: ${recall.toFixed(3)} (${matching.length} match)`);
    expect(recall, `${name} at ${selectivity * 100}%`).toBeGreaterThanOrEqual(0.95);
  }
  console.log(`${name} filtered recall@10 — ${report.join(', ')}`);
}

describe('filtered query recall against exact filtered ground truth', () => {
  it('generated clustered data (always runs)', async () => {
    const base = clusteredVectors(12_000, 32, { seed: 5, clusters: 40 }); // 50% = 6,000 matches: the graph path; the others: exact
    const queries = clusteredVectors(50, 32, { seed: 6, clusters: 40 });
    await checkFilteredRecall('generated', base, queries, 'euclidean', 50);
  });

  for (const name of ['sift5k', 'glove25'] as DatasetName[]) {
    const reason = datasetUnavailable(name);
    if (reason) console.warn(`skipping filtered recall on ${name}: ${reason}`);
    it.skipIf(reason !== undefined)(name, async () => {
      const data = loadDataset(name);
      await checkFilteredRecall(name, data.base, data.queries, data.metric, Math.min(100, data.queries.count));
    });
  }
});

describe('filters through the index API', () => {
  it('nested paths, arrays, logical operators; get-side behaviour; invalid filters name their path', async () => {
    const fresh = await openFresh({ indexName: 'f', dimension: 2 });
    let { client, index } = fresh;
    await index.upsert([
      { id: 'ada', vector: [1, 0], metadata: { author: { name: 'Ada' }, tags: ['math', 'code'], year: 1843 } },
      { id: 'alan', vector: [0.9, 0.1], metadata: { author: { name: 'Alan' }, tags: ['code'], year: 1936 } },
      { id: 'grace', vector: [0, 1], metadata: { author: { name: 'Grace' }, tags: ['navy'], year: 1952 } },
      { id: 'none', vector: [0.5, 0.5] },
    ]);
    const ids = async (filters: Record<string, unknown>) =>
      ((await index.query({ queryVectors: [1, 0], topK: 10, filters })).results as { id: string }[]).map((r) => r.id).sort();
    expect(await ids({ 'author.name': 'Ada' })).toEqual(['ada']);
    expect(await ids({ tags: 'code' })).toEqual(['ada', 'alan']);
    expect(await ids({ tags: { $in: ['navy', 'math'] } })).toEqual(['ada', 'grace']);
    expect(await ids({ $or: [{ year: { $lt: 1900 } }, { year: { $gt: 1950 } }] })).toEqual(['ada', 'grace']);
    expect(await ids({ year: { $exists: false } })).toEqual(['none']);
    expect(await ids({ year: { $ne: 1936 } })).toEqual(['ada', 'grace', 'none']);
    expect(await ids({ year: '1843' })).toEqual([]); // no coercion
    expect(await ids({})).toEqual(['ada', 'alan', 'grace', 'none']);
    expect((await index.listIds({ filters: { tags: 'code' } })).ids.sort()).toEqual(['ada', 'alan']);
    expect((await index.listIds({ filters: {} })).count).toBe(4);
    const err = await rejectsWithCode(index.query({ queryVectors: [1, 0], filters: { tags: { $in: 'code' } } }), 'VECVAULT_VALIDATION');
    expect((err as { path?: string }).path).toContain('tags');
    await rejectsWithCode(index.query({ queryVectors: [1, 0], filters: { year: { $regex: 'x' } } }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.query({ queryVectors: [1, 0], filters: JSON.parse('{"__proto__": {"a": 1}}') }), 'VECVAULT_VALIDATION');
    // Filters survive a reopen (metadata comes back from the snapshot and the change log).
    await client.close();
    ({ client, index } = await reopen(fresh.path, fresh.key, 'f'));
    await index.upsert([{ id: 'late', vector: [1, 1], metadata: { tags: ['code'] } }]);
    expect(await ids({ tags: 'code' })).toEqual(['ada', 'alan', 'late']);
    await client.close();
    ({ index } = await reopen(fresh.path, fresh.key, 'f'));
    expect(await ids({ tags: 'code' })).toEqual(['ada', 'alan', 'late']);
  });

  it('metadata is copied: mutating the caller object later changes neither filters nor snapshots', async () => {
    const fresh = await openFresh({ indexName: 'x', dimension: 2 });
    let { client, index } = fresh;
    const meta = { tag: 'a' };
    await index.upsert([{ id: 'r1', vector: [1, 2], metadata: meta }]);
    meta.tag = 'b';
    await index.upsert([{ id: 'r2', vector: [2, 1], metadata: meta }]);
    expect((await index.listIds({ filters: { tag: 'a' } })).ids).toEqual(['r1']);
    // Query results carry copies too (metadata is served from memory).
    const { results } = await index.query({ queryVectors: [1, 2], topK: 1, include: ['metadata'] });
    expect(results).toEqual([{ id: 'r1', metadata: { tag: 'a' } }]);
    (results[0]!.metadata as { tag: string }).tag = 'z';
    expect((await index.listIds({ filters: { tag: 'a' } })).ids).toEqual(['r1']);
    await client.close();
    ({ client, index } = await reopen(fresh.path, fresh.key, 'x'));
    expect((await index.listIds({ filters: { tag: 'a' } })).ids).toEqual(['r1']);
  });
});
