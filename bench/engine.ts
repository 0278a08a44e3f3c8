/**
 * `npm run bench:engine [-- --quick]`: the native-engine goals (docs/performance.md) as
 * paired ratios against raw usearch (the stock binding) in one process, on a
 * 100k synthetic set and the real sets in ../shared/data:
 *   - upsert throughput ÷ raw `add` (fresh index each repetition, order alternated),
 *   - open + first query ÷ raw `load` of a plaintext file + first query (alternated),
 *   - rebuild (upsert) time ÷ open time,
 *   - the worst event-loop stall while vecvault upserts and answers queries.
 * Medians over repetitions; writes bench/results/ENGINE.md.
 *
 * `npm run bench:engine -- --scale N [--reps R] [--keep | --reopen DIR [--opens-only] | --build-only] [--stream-ids]`: the scale bench instead (bench/scale.ts),
 * memory, stalls, open and get at N vectors beside raw usearch; writes bench/results/SCALE-N.md. `--opens-only` (with
 * `--reopen`): the alternated opens alone, without the query phase (for paired runs of an open-path change).
 * `--reopen DIR --compact-only [--delete-offset K]`: the compaction phase alone on kept stores (deleting ids 20i + K).
 * `--stream-ids`: vecvault's build makes each call's ids as it goes instead of holding all N strings from the start (a
 * streaming loader's heap, not a host holding its whole data set; the report's command line says which).
 *
 * `npm run bench:engine -- --postgres [--count N] [--reps R]`: the PostgreSQL row instead
 * (bench/postgres.ts, also `npm run bench:postgres`): the PostgreSQL store beside the LevelDB
 * store on the same data, upsert throughput, open + first query and QPS with their ratios;
 * writes bench/results/POSTGRES.md.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import usearch from 'usearch';
import { datasetUnavailable, loadDataset, type DatasetName } from '../test/support/datasets.js';
import { clusteredVectors, type VectorSet } from '../test/support/vectors.js';
import { Client, type Metric } from '../src/index.js';
import { machineInfo, projectRoot } from './lib/machine.js';
import { medianOf, withLoopDelay } from './lib/measure.js';
import { runBuildOnly, runCompactOnly, runReopen, runScale } from './scale.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    reps: { type: 'string' },
    scale: { type: 'string' },
    keep: { type: 'boolean' },
    'build-only': { type: 'boolean' },
    reopen: { type: 'string' },
    'opens-only': { type: 'boolean' },
    'stream-ids': { type: 'boolean' },
    'compact-only': { type: 'boolean' },
    'delete-offset': { type: 'string' },
    postgres: { type: 'boolean' },
    count: { type: 'string' },
  },
});
if (args.postgres) {
  // Its own process: it starts (and stops) a throwaway PostgreSQL cluster.
  const pass = [...(args.count ? ['--count', args.count] : []), ...(args.reps ? ['--reps', args.reps] : [])];
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot(), 'bench', 'postgres.ts'), ...pass], { stdio: 'inherit' });
  process.exit(run.status ?? 1);
}
if (args.scale !== undefined) {
  // The scale bench (bench/scale.ts): memory, stalls and open at N vectors, each phase in its own process.
  if (args['stream-ids']) process.env.VECVAULT_SCALE_STREAM_IDS = '1'; // read by the phase children
  if (args['delete-offset'] !== undefined) process.env.VECVAULT_SCALE_DELETE_OFFSET = args['delete-offset'];
  if (args.reopen !== undefined && args['compact-only']) await runCompactOnly(Number(args.scale), args.reopen);
  else if (args.reopen !== undefined) await runReopen(Number(args.scale), Number(args.reps ?? 3), args.reopen, { opensOnly: args['opens-only'] === true });
  else if (args['build-only']) await runBuildOnly(Number(args.scale));
  else await runScale(Number(args.scale), Number(args.reps ?? 3), args.keep === true);
  process.exit(0);
}
const REPS = Number(args.reps ?? (args.quick ? 3 : 5));
const OPENS = 5;
const CONFIG = { connectivity: 16, expansionAdd: 128, expansionSearch: 64 };
const UPSERT_CHUNK = 50_000;

interface Row {
  dataset: string;
  count: number;
  dimension: number;
  upsertRatio: number;
  rawAddMs: number;
  upsertMs: number;
  openMs: number;
  loadMs: number;
  openRatio: number;
  rebuildOverOpen: number;
  worstStallMs: number;
  p99StallMs: number;
}

function rawIndex(dim: number, metric: Metric) {
  return new usearch.Index({
    dimensions: dim,
    metric: metric === 'cosine' ? usearch.MetricKind.Cos : usearch.MetricKind.L2sq,
    quantization: usearch.ScalarKind.F32,
    connectivity: CONFIG.connectivity,
    expansion_add: CONFIG.expansionAdd,
    expansion_search: CONFIG.expansionSearch,
    multi: false,
  });
}

async function benchDataset(name: string, base: VectorSet, metric: Metric): Promise<Row> {
  const dim = base.dimension;
  const n = base.count;
  const row = (i: number) => base.data.subarray(i * dim, (i + 1) * dim);
  const keys = BigUint64Array.from({ length: n }, (_, i) => BigInt(i));
  const ids = Array.from({ length: n }, (_, i) => String(i));
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-bench-engine-'));
  const rawFile = join(dir, 'raw.usearch');
  const key = Client.generateKey();
  const ratios: number[] = [];
  const rawMs: number[] = [];
  const upMs: number[] = [];
  const stalls: number[] = [];
  const p99s: number[] = [];
  try {
    const runRaw = () => {
      const t0 = performance.now();
      const index = rawIndex(dim, metric);
      index.add(keys, base.data, 0);
      const ms = performance.now() - t0;
      index.save(rawFile);
      return ms;
    };
    const runVecvault = async (rep: number) => {
      const client = new Client({ path: join(dir, `vv${rep}`) });
      const index = await client.createIndex({ indexName: 'bench', indexKey: key, dimension: dim, metric, indexConfig: CONFIG });
      // Queries keep coming while the upsert runs, as in an app serving reads during an import.
      let querying = true;
      const queries = (async () => {
        for (let q = 0; querying; q++) {
          await new Promise((r) => setTimeout(r, 5));
          await index.query({ queryVectors: row(q % n), topK: 10 });
        }
      })();
      const { value: ms, delay } = await withLoopDelay(async () => {
        const t0 = performance.now();
        for (let start = 0; start < n; start += UPSERT_CHUNK) {
          const slice = ids.slice(start, start + UPSERT_CHUNK);
          await index.upsert({ ids: slice, vectors: slice.map((_, j) => row(start + j)) });
        }
        return performance.now() - t0;
      });
      querying = false;
      await queries;
      stalls.push(delay.maxMs);
      p99s.push(delay.p99Ms);
      await client.close(); // writes the snapshot
      return ms;
    };
    for (let rep = 0; rep < REPS; rep++) {
      let raw: number;
      let up: number;
      if (rep % 2 === 0) {
        raw = runRaw();
        up = await runVecvault(rep);
      } else {
        up = await runVecvault(rep);
        raw = runRaw();
      }
      rawMs.push(raw);
      upMs.push(up);
      ratios.push(raw / up);
      if (rep > 0) rmSync(join(dir, `vv${rep - 1}`), { recursive: true, force: true });
      console.log(`  ${name} rep ${rep + 1}/${REPS}: raw add ${raw.toFixed(0)} ms, vecvault upsert ${up.toFixed(0)} ms → ${(raw / up).toFixed(2)}×`);
    }
    const store = join(dir, `vv${REPS - 1}`);
    const loads: number[] = [];
    const opens: number[] = [];
    const openOnce = async () => {
      const t0 = performance.now();
      const client = new Client({ path: store });
      const index = await client.loadIndex({ indexName: 'bench', indexKey: key });
      await index.query({ queryVectors: row(0), topK: 10 });
      const ms = performance.now() - t0;
      await client.close();
      return ms;
    };
    const loadOnce = () => {
      const t0 = performance.now();
      const index = rawIndex(dim, metric);
      index.load(rawFile);
      index.search(row(0), 10, 1);
      return performance.now() - t0;
    };
    await openOnce(); // warm the page cache for both files
    loadOnce();
    for (let i = 0; i < OPENS; i++) {
      if (i % 2 === 0) {
        loads.push(loadOnce());
        opens.push(await openOnce());
      } else {
        opens.push(await openOnce());
        loads.push(loadOnce());
      }
    }
    const openMs = medianOf(opens);
    const loadMs = medianOf(loads);
    const result: Row = {
      dataset: name,
      count: n,
      dimension: dim,
      upsertRatio: medianOf(ratios),
      rawAddMs: medianOf(rawMs),
      upsertMs: medianOf(upMs),
      openMs,
      loadMs,
      openRatio: openMs / loadMs,
      rebuildOverOpen: medianOf(upMs) / openMs,
      worstStallMs: Math.max(...stalls),
      p99StallMs: medianOf(p99s),
    };
    console.log(
      `  ${name}: upsert ${result.upsertRatio.toFixed(2)}× raw add; open ${openMs.toFixed(1)} ms vs load ${loadMs.toFixed(1)} ms → ${result.openRatio.toFixed(2)}×; ` +
        `rebuild/open ${result.rebuildOverOpen.toFixed(0)}×; worst stall ${result.worstStallMs.toFixed(1)} ms`,
    );
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
const synthetic = { count: 100_000, dimension: 96 };
console.log(`synthetic-100k (${synthetic.count} × ${synthetic.dimension}, clustered, euclidean)`);
rows.push(await benchDataset('synthetic-100k', clusteredVectors(synthetic.count, synthetic.dimension, { seed: 42 }), 'euclidean'));
const real: DatasetName[] = args.quick ? ['glove25'] : ['glove25', 'sift5k', 'glove50'];
const skipped: string[] = [];
for (const name of real) {
  const why = datasetUnavailable(name);
  if (why) {
    console.log(`${name}: skipped (${why})`);
    skipped.push(`${name}: ${why}`);
    continue;
  }
  const dataset = loadDataset(name);
  console.log(`${name} (${dataset.base.count} × ${dataset.base.dimension}, ${dataset.metric})`);
  rows.push(await benchDataset(name, dataset.base, dataset.metric));
}

const fmt = (x: number, digits = 2) => x.toFixed(digits);
const machine = machineInfo();
const report = [
  '# Native engine goals: vecvault vs raw usearch, paired in one process',
  '',
  `Command: \`npm run bench:engine${args.quick ? ' -- --quick' : ''}\` · ${new Date().toISOString()} · commit ${machine.commit} · ${machine.cores} × ${machine.cpuModel} · Node ${machine.node} · load average (1 min) ${machine.loadAverage1m.toFixed(2)}`,
  '',
  `HNSW M=${CONFIG.connectivity}, ef_add=${CONFIG.expansionAdd}, ef=${CONFIG.expansionSearch}; ${REPS} repetitions of each insert (order alternated), ${OPENS} alternated opens. Ratios are medians; absolute times move with machine load.`,
  '',
  '| dataset | rows × dim | upsert ÷ raw add (goal ≥ 0.8) | raw add ms | upsert ms | open + 1st query ms | raw load + 1st query ms | open ÷ load (goal ≤ 2) | rebuild ÷ open (goal ≥ 20) | worst stall ms (goal ≤ 50) | p99 stall ms |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.dataset} | ${r.count} × ${r.dimension} | ${fmt(r.upsertRatio)} | ${fmt(r.rawAddMs, 0)} | ${fmt(r.upsertMs, 0)} | ${fmt(r.openMs, 1)} | ${fmt(r.loadMs, 1)} | ${fmt(r.openRatio)} | ${fmt(r.rebuildOverOpen, 0)} | ${fmt(r.worstStallMs, 1)} | ${fmt(r.p99StallMs, 1)} |`,
  ),
  '',
  "vecvault's upsert is durable when it resolves (records sealed with AES-256-GCM, one fsync'd LevelDB batch); raw usearch's `add` keeps everything in memory. " +
    'Open = `new Client` + `loadIndex` (authenticate, read and decrypt the snapshot chunks, load the graph) + one query; raw = `Index.load(file)` + one search. ' +
    'Stalls: `monitorEventLoopDelay` while the upsert runs and a query is issued every 5 ms.',
  ...(skipped.length ? ['', `Skipped: ${skipped.join('; ')}`] : []),
  '',
].join('\n');
const out = join(projectRoot(), 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'ENGINE.md'), report);
console.log(`\nwrote ${join(out, 'ENGINE.md')}`);
