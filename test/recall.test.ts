/** Recall@10 against the exact ground truth shipped with ../shared/data (skipped when absent). */
import { describe, expect, it } from 'vitest';
import { datasetUnavailable, loadDataset, type DatasetName } from './support/datasets.js';
import { openFresh } from './support/fixtures.js';
import { recallAtK, rowsOf } from './support/vectors.js';

const cases: [DatasetName, number][] = [
  ['sift5k', 0.95],
  ['glove25', 0.95],
];

describe('recall on real data with default settings', () => {
  for (const [name, floor] of cases) {
    const reason = datasetUnavailable(name);
    if (reason) console.warn(`skipping recall on ${name}: ${reason}`);
    it.skipIf(reason !== undefined)(`${name}: recall@10 ≥ ${floor}`, async () => {
      const data = loadDataset(name);
      const { index } = await openFresh({ indexName: name, metric: data.metric });
      const dim = data.base.dimension;
      const ids = Array.from({ length: data.base.count }, (_, i) => String(i));
      const vectors = rowsOf(data.base);
      await index.upsert({ ids, vectors });
      const { results } = await index.query({ queryVectors: data.queries.data, dimension: dim, topK: 10 });
      const found = (results as { id: string }[][]).map((row) => row.map((r) => Number(r.id)));
      const recall = recallAtK(data, found, 10);
      console.log(`${name}: recall@10 = ${recall.toFixed(4)} (${data.base.count} × ${dim}, ${data.queries.count} queries)`);
      expect(recall).toBeGreaterThanOrEqual(floor);
      // expansionSearch per query trades recall for speed without changing the index default.
      if (name === 'sift5k') {
        const narrow = await index.query({ queryVectors: data.queries.data, dimension: dim, topK: 10, expansionSearch: 10 });
        const narrowRecall = recallAtK(
          data,
          (narrow.results as { id: string }[][]).map((row) => row.map((r) => Number(r.id))),
          10,
        );
        console.log(`${name}: recall@10 at expansionSearch 10 = ${narrowRecall.toFixed(4)}`);
        expect(narrowRecall).toBeLessThan(recall);
        const again = await index.query({ queryVectors: data.queries.data, dimension: dim, topK: 10 });
        expect(again).toEqual({ results });
      }
    });
  }
});
