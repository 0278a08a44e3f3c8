/**
 * Demo (`npm start`): creates an encrypted index, loads real vectors from
 * ../shared/data when present (generated clusters otherwise), queries it,
 * reopens it from disk, and shows that a wrong key gets nothing.
 *   npx tsx examples/demo.ts [--path DIR] [--dataset glove25|glove50|sift5k]
 * Dataset reading, generated vectors and recall come from the dev tooling in
 * test/support/ (not part of the package).
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, InvalidKeyError, type Metric, type QueryResultItem } from '../src/index.js';
import { datasetUnavailable, loadDataset, type DatasetName } from '../test/support/datasets.js';
import { clusteredVectors, recallAtK } from '../test/support/vectors.js';

const { values: args } = parseArgs({ options: { path: { type: 'string' }, dataset: { type: 'string', default: 'glove25' } } });

function dirBytes(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const st = statSync(join(dir, name));
    if (st.isFile()) {
      files++;
      bytes += st.size;
    }
  }
  return { files, bytes };
}

async function main(): Promise<void> {
  const path = args.path ? resolve(args.path) : mkdtempSync(join(tmpdir(), 'vecvault-demo-'));
  const name = args.dataset as DatasetName;
  const missing = datasetUnavailable(name);
  let base, queries, metric: Metric, truth;
  if (missing) {
    console.log(`${missing}\n→ using 20,000 generated clustered vectors (128-d) instead.`);
    base = clusteredVectors(20_000, 128, { seed: 1 });
    queries = clusteredVectors(5, 128, { seed: 2 });
    metric = 'euclidean' as const;
  } else {
    const data = loadDataset(name);
    ({ base, queries } = data);
    metric = data.metric;
    truth = data;
    console.log(`Dataset ${name}: ${base.count} × ${base.dimension} (${metric}), ${queries.count} queries with exact ground truth.`);
  }
  const dim = base.dimension;
  const indexKey = Client.generateKey();
  const client = new Client({ path });
  console.log(`Store: ${path}`);

  let t = performance.now();
  const index = await client.createIndex({ indexName: `demo-${name}`, indexKey, metric });
  const ids = Array.from({ length: base.count }, (_, i) => `vec-${i}`);
  for (let start = 0; start < base.count; start += 5000) {
    const end = Math.min(base.count, start + 5000);
    await index.upsert({
      ids: ids.slice(start, end),
      vectors: ids.slice(start, end).map((_, j) => base.data.subarray((start + j) * dim, (start + j + 1) * dim)),
      metadata: ids.slice(start, end).map((_, j) => ({ row: start + j, bucket: (start + j) % 10 })),
    });
  }
  console.log(`Upserted ${base.count} encrypted records in ${((performance.now() - t) / 1000).toFixed(2)} s.`);

  const { results } = await index.query({ queryVectors: queries.data.subarray(0, dim), topK: 5, include: ['distance', 'metadata'] });
  console.log('\nTop 5 for query 0:');
  for (const r of results as QueryResultItem[]) console.log(`  ${r.id.padEnd(10)} distance ${r.distance!.toFixed(4)}  metadata ${JSON.stringify(r.metadata)}`);

  const filtered = await index.query({
    queryVectors: queries.data.subarray(0, dim),
    topK: 3,
    filters: { bucket: { $in: [3, 7] } },
    include: ['distance', 'metadata'],
  });
  console.log('\nTop 3 for query 0 among records with bucket 3 or 7 (filter evaluated in memory on decrypted metadata):');
  for (const r of filtered.results as QueryResultItem[])
    console.log(`  ${r.id.padEnd(10)} distance ${r.distance!.toFixed(4)}  metadata ${JSON.stringify(r.metadata)}`);

  if (truth) {
    t = performance.now();
    const batch = await index.query({ queryVectors: queries.data, dimension: dim, topK: 10 });
    const ms = performance.now() - t;
    const found = (batch.results as { id: string }[][]).map((row) => row.map((r) => Number(r.id.slice(4))));
    console.log(`\n${queries.count} queries in ${ms.toFixed(0)} ms; recall@10 against exact ground truth: ${recallAtK(truth, found, 10).toFixed(4)}`);
  }
  await client.close();

  t = performance.now();
  const reopened = new Client({ path });
  const again = await reopened.loadIndex({ indexName: `demo-${name}`, indexKey });
  console.log(
    `\nReopened from disk in ${(performance.now() - t).toFixed(0)} ms: ${(await again.listIds()).count} records, stats ${JSON.stringify(again.stats())}`,
  );
  try {
    await reopened.loadIndex({ indexName: `demo-${name}`, indexKey: Client.generateKey() });
  } catch (error) {
    if (!(error instanceof InvalidKeyError)) throw error;
    console.log(`A wrong key gets nothing: ${error.code}`);
  }
  await reopened.close();
  const { files, bytes } = dirBytes(path);
  console.log(`On disk: ${files} files, ${(bytes / 1e6).toFixed(1)} MB, all record data AES-256-GCM encrypted.`);
  if (!args.path) rmSync(path, { recursive: true, force: true });
}

await main();
