/**
 * `npm run bench:postgres [-- --count N]`: the PostgreSQL store beside the
 * LevelDB store on the same data, in one process: upsert throughput (batches
 * of 5,000), open + first query, and single-vector query QPS ('strong', the
 * default, which asks the database for the counter first, and 'eventual').
 * Starts a throwaway local cluster (test/support/postgres.ts; fsync off, as in
 * the tests, so the database's durability cost is not measured: a real server
 * adds its commit fsync to each upsert). Writes bench/results/POSTGRES.md.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '../src/index.js';
import { PgCluster } from '../test/support/postgres.js';
import { clusteredVectors } from '../test/support/vectors.js';
import { machineInfo, projectRoot } from './lib/machine.js';
import { medianOf, timedPass } from './lib/measure.js';

const { values: args } = parseArgs({ options: { count: { type: 'string' }, reps: { type: 'string' } } });
const COUNT = Number(args.count ?? 20_000);
const REPS = Number(args.reps ?? 3);
const DIM = 96;
const BATCH = 5_000;
const CONFIG = { connectivity: 16, expansionAdd: 128, expansionSearch: 64 };

interface Result {
  upsertPerSec: number;
  openMs: number;
  strongQps: number;
  eventualQps: number;
}

const base = clusteredVectors(COUNT, DIM, { seed: 42 });
const row = (i: number) => base.data.subarray(i * DIM, (i + 1) * DIM);
const ids = Array.from({ length: COUNT }, (_, i) => `id-${i}`);

async function run(label: string, options: () => ConstructorParameters<typeof Client>[0]): Promise<Result> {
  const key = Client.generateKey();
  const ups: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const client = new Client(options());
    const name = `bench${rep}`;
    const index = await client.createIndex({ indexName: name, indexKey: key, dimension: DIM, indexConfig: CONFIG });
    const t0 = performance.now();
    for (let start = 0; start < COUNT; start += BATCH) {
      const slice = ids.slice(start, start + BATCH);
      await index.upsert({ ids: slice, vectors: slice.map((_, j) => row(start + j)) });
    }
    ups.push((COUNT * 1000) / (performance.now() - t0));
    await client.close(); // writes the snapshot
  }
  const opens: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const client = new Client(options());
    const index = await client.loadIndex({ indexName: `bench${REPS - 1}`, indexKey: key });
    await index.query({ queryVectors: row(0), topK: 10 });
    opens.push(performance.now() - t0);
    await client.close();
  }
  const client = new Client(options());
  const index = await client.loadIndex({ indexName: `bench${REPS - 1}`, indexKey: key });
  const strong = await timedPass(2000, (i) => index.query({ queryVectors: row(i % COUNT), topK: 10 }).then(() => undefined));
  const eventual = await timedPass(2000, (i) => index.query({ queryVectors: row(i % COUNT), topK: 10, consistency: 'eventual' }).then(() => undefined));
  await client.close();
  const result = { upsertPerSec: medianOf(ups), openMs: medianOf(opens), strongQps: strong, eventualQps: eventual };
  console.log(`${label}: ${JSON.stringify(result)}`);
  return result;
}

const dir = mkdtempSync(join(tmpdir(), 'vecvault-bench-pg-'));
const cluster = await PgCluster.start();
let level: Result;
let pg: Result;
try {
  level = await run('leveldb', () => ({ path: join(dir, 'store') }));
  pg = await run('postgres', () => ({ store: { kind: 'postgres', connectionString: cluster.connectionString } }));
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}

const machine = machineInfo();
const f = (x: number, d = 0) => x.toFixed(d);
const report = [
  '# PostgreSQL store vs LevelDB store, paired in one process',
  '',
  `Command: \`npm run bench:postgres${args.count ? ` -- --count ${COUNT}` : ''}\` · ${new Date().toISOString()} · commit ${machine.commit} · ${machine.cores} × ${machine.cpuModel} · Node ${machine.node} · load average (1 min) ${machine.loadAverage1m.toFixed(2)}`,
  '',
  `${COUNT} × ${DIM} clustered vectors, euclidean, HNSW M=${CONFIG.connectivity}, ef_add=${CONFIG.expansionAdd}, ef=${CONFIG.expansionSearch}; upserts of ${BATCH} per call, median of ${REPS}; open = new Client + loadIndex + 1 query, median of 5; QPS = single-vector top-10 queries back to back for 2 s. PostgreSQL 15 on the same machine over TCP loopback, fsync off (the durability cost of a real server is not in these figures).`,
  '',
  '| store | upserts/s | open + 1st query ms | QPS (strong) | QPS (eventual) |',
  '|---|---|---|---|---|',
  `| LevelDB | ${f(level!.upsertPerSec)} | ${f(level!.openMs, 1)} | ${f(level!.strongQps)} | ${f(level!.eventualQps)} |`,
  `| PostgreSQL | ${f(pg!.upsertPerSec)} | ${f(pg!.openMs, 1)} | ${f(pg!.strongQps)} | ${f(pg!.eventualQps)} |`,
  `| PostgreSQL ÷ LevelDB | ${f(pg!.upsertPerSec / level!.upsertPerSec, 2)} | ${f(pg!.openMs / level!.openMs, 2)} | ${f(pg!.strongQps / level!.strongQps, 2)} | ${f(pg!.eventualQps / level!.eventualQps, 2)} |`,
  '',
].join('\n');
const out = join(projectRoot(), 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'POSTGRES.md'), report);
console.log(report);
