/**
 * `npm run bench:filtered [-- --quick]`: vecvault's filtered query QPS at 50%,
 * 10%, 1% and 0.1% selectivity as a ratio to unfiltered QPS on the same index
 * in the same run, with recall@10 against exact filtered ground truth (brute
 * force over the matching rows). Writes bench/results/FILTERED.md.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { clusteredVectors, datasetUnavailable, exactDistance, loadDataset, type VectorSet } from '../src/cli/datasets.js';
import { Client, type Metric, type QueryResultItem } from '../src/index.js';
import { machineInfo, projectRoot } from './lib/machine.js';
import { medianOf, timedPass } from './lib/measure.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const SELECTIVITIES = [0.5, 0.1, 0.01, 0.001];
const QUERIES = 100;
const PASS_MS = args.quick ? 300 : 1000;
const REPS = 3;
/** A pseudo-random bucket 0..999 per row, uncorrelated with the vectors. */
const bucketOf = (row: number) => (row * 7919 + 13) % 1000;

interface Row {
  dataset: string;
  selectivity: number;
  matching: number;
  recall: number;
  qps: number;
  ratio: number;
}

async function benchDataset(name: string, base: VectorSet, queries: VectorSet, metric: Metric): Promise<Row[]> {
  const dim = base.dimension;
  const row = (set: VectorSet, i: number) => set.data.subarray(i * dim, (i + 1) * dim);
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-bench-filtered-'));
  const client = new Client({ path: dir });
  try {
    const index = await client.createIndex({ indexName: name, indexKey: Client.generateKey(), metric });
    const ids = Array.from({ length: base.count }, (_, i) => String(i));
    for (let start = 0; start < ids.length; start += 50_000) {
      const slice = ids.slice(start, start + 50_000);
      await index.upsert({ ids: slice, vectors: slice.map((_, j) => row(base, start + j)), metadata: slice.map((_, j) => ({ bucket: bucketOf(start + j) })) });
    }
    const qs = Array.from({ length: Math.min(QUERIES, queries.count) }, (_, q) => row(queries, q));
    const qps = async (filters?: Record<string, unknown>) => {
      const passes: number[] = [];
      for (let r = 0; r < REPS; r++) {
        passes.push(await timedPass(PASS_MS, async (i) => void (await index.query({ queryVectors: qs[i % qs.length]!, topK: 10, filters })), qs.length));
      }
      return medianOf(passes);
    };
    const unfiltered = await qps();
    const rows: Row[] = [{ dataset: name, selectivity: 1, matching: base.count, recall: Number.NaN, qps: unfiltered, ratio: 1 }];
    for (const selectivity of SELECTIVITIES) {
      const limit = Math.round(selectivity * 1000);
      const filters = { bucket: { $lt: limit } };
      const matching = ids.map(Number).filter((i) => bucketOf(i) < limit);
      // Check before timing: recall against exact filtered ground truth, every hit satisfies the filter.
      let hits = 0;
      let expected = 0;
      for (const q of qs.slice(0, 50)) {
        const truth = new Set(
          matching
            .map((i) => [exactDistance(metric as 'euclidean' | 'cosine', row(base, i), q), i] as const)
            .sort((a, b) => a[0] - b[0] || a[1] - b[1])
            .slice(0, 10)
            .map(([, i]) => i),
        );
        const { results } = await index.query({ queryVectors: q, topK: 10, filters, include: ['metadata'] });
        for (const r of results as QueryResultItem[]) {
          if (!((r.metadata!.bucket as number) < limit)) throw new Error(`${name}: a result does not satisfy the filter`);
          if (truth.has(Number(r.id))) hits++;
        }
        expected += truth.size;
      }
      const filteredQps = await qps(filters);
      rows.push({ dataset: name, selectivity, matching: matching.length, recall: hits / expected, qps: filteredQps, ratio: filteredQps / unfiltered });
      console.log(`${name} ${selectivity * 100}%: ${matching.length} match, recall@10 ${(hits / expected).toFixed(3)}, ${filteredQps.toFixed(0)} QPS = ${(filteredQps / unfiltered).toFixed(2)}× unfiltered (${unfiltered.toFixed(0)})`);
    }
    return rows;
  } finally {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const skipped: string[] = [];
  for (const name of ['sift5k', 'glove25'] as const) {
    const reason = datasetUnavailable(name);
    if (reason) {
      skipped.push(reason);
      console.log(`skipping ${reason}`);
      continue;
    }
    const data = loadDataset(name);
    rows.push(...(await benchDataset(name, data.base, data.queries, data.metric)));
  }
  const n = args.quick ? 20_000 : 100_000;
  rows.push(...(await benchDataset(`synthetic-${n / 1000}k×64`, clusteredVectors(n, 64, { seed: 7 }), clusteredVectors(QUERIES, 64, { seed: 8 }), 'euclidean')));

  const m = machineInfo() as unknown as Record<string, unknown>;
  const lines = [
    '# vecvault filtered queries',
    '',
    `Generated by \`npm run bench:filtered${args.quick ? ' -- --quick' : ''}\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. Machine: ${String(m.cpuModel)}, ${String(m.cores ?? '')} cores, Node ${process.version}. Single queries, k = 10, default settings; QPS is the median of ${REPS} passes of ≥ ${PASS_MS} ms; recall@10 on the first 50 queries against exact filtered ground truth (brute force over the matching rows). Metadata: \`{ bucket: (row · 7919 + 13) mod 1000 }\`, filter \`{ bucket: { $lt: selectivity · 1000 } }\`.`,
    '',
    '| dataset | selectivity | matching rows | recall@10 | QPS | × unfiltered |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.dataset} | ${r.selectivity === 1 ? 'none (unfiltered)' : `${r.selectivity * 100}%`} | ${r.matching} | ${Number.isNaN(r.recall) ? '–' : r.recall.toFixed(3)} | ${Math.round(r.qps).toLocaleString('en-US')} | ${r.ratio.toFixed(2)}× |`),
    '',
    ...skipped.map((s) => `Skipped: ${s}`),
    '',
  ];
  const out = join(projectRoot(), 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'FILTERED.md'), lines.join('\n'));
  console.log(`wrote ${join(out, 'FILTERED.md')}`);
}

await main();
