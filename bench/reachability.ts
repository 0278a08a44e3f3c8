/**
 * `npm run bench:reachability [-- --seeds 3] [--scale 100000,300000]`: live
 * records an HNSW graph cannot reach, before and after vecvault's repair
 * (native/engine/reachability.h), on the stock usearch binding and on ours,
 * with the same operations. Writes bench/results/REACHABILITY.md.
 *
 * "Lost" is the ground truth: a live record whose own exact vector, searched
 * at ef 65,536 (more than the graph's size, so the walk covers everything it
 * can reach) with k 32, does not return its key. "Check" is the native
 * reachability check (a base-layer walk from the entry point). The stock
 * binding's graph is also loaded into our engine (same file format) so the
 * check and the repair run on the stock build too.
 *
 * Cases: one-shot builds of the real sets in ../shared/data (skipped with the
 * reason when absent), and the churn recipe of issue 13: 6,000 random 48-d
 * vectors (cosine), then 30 % overwrites (remove the old key, add a new key
 * with a new vector, 100 per batch), then 3 % deletes, per seed. With
 * `--scale`, the cost of the check and repair at each size (clustered 96-d).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import usearch from 'usearch';
import { nativeEngine, type NativeAnnEngine } from '../src/engine/native.js';
import type { EngineMetric } from '../src/engine/types.js';
import { datasetUnavailable, loadDataset, type DatasetName } from '../test/support/datasets.js';
import { clusteredVectors, randomFlat, seededRandom } from '../test/support/vectors.js';
import { machineInfo, projectRoot } from './lib/machine.js';

const { values: args } = parseArgs({
  options: {
    seeds: { type: 'string', default: '3' },
    scale: { type: 'string', default: '' },
    only: { type: 'string', default: '' },
    out: { type: 'string', default: '' },
    sample: { type: 'string', default: '2000' },
  },
});

/** Probing every live record at ef 65,536 costs O(n²) distances: sets larger than this are probed on a sample (plus every flagged record). */
const SAMPLE = Number(args.sample);

const CONNECTIVITY = 16;
const EXPANSION_ADD = 128;
const PROBE_EF = 65_536;
const PROBE_K = 32;

type Op = { kind: 'add'; keys: BigUint64Array; vectors: Float32Array } | { kind: 'remove'; keys: BigUint64Array };

interface Case {
  name: string;
  dimension: number;
  metric: EngineMetric;
  ops: Op[];
  /** Live key → its vector, after all ops. */
  live: Map<bigint, Float32Array>;
  /** The live keys probed for "lost" (all of them unless the set is larger than `--sample`). */
  probe?: BigUint64Array;
}

/** Probe every live key, or `SAMPLE` random ones plus `flagged` (the check's findings on either graph). */
function chooseProbe(c: Case, flagged: BigUint64Array[]): void {
  if (c.live.size <= SAMPLE) return;
  const rand = seededRandom(99);
  const all = [...c.live.keys()];
  const chosen = new Set<bigint>();
  while (chosen.size < SAMPLE) chosen.add(all[Math.floor(rand() * all.length)]!);
  for (const keys of flagged) for (const key of keys) chosen.add(key);
  c.probe = BigUint64Array.from(chosen);
}

/** Spread keys, as the encrypted index does (an odd multiplier mod 2^48 is a bijection). */
const keyOf = (id: number): bigint => (BigInt(id) * 2654435761n) % 2n ** 48n;

function oneShot(name: string, values: Float32Array, count: number, dimension: number, metric: EngineMetric): Case {
  const keys = BigUint64Array.from({ length: count }, (_, i) => keyOf(i));
  const live = new Map<bigint, Float32Array>();
  keys.forEach((key, i) => live.set(key, values.subarray(i * dimension, (i + 1) * dimension)));
  return { name, dimension, metric, ops: [{ kind: 'add', keys, vectors: values.subarray(0, count * dimension) }], live };
}

function churn(seed: number, count = 6000, dimension = 48, overwrite = 0.3, remove = 0.03): Case {
  const rand = seededRandom(seed * 7919);
  const live = new Map<bigint, Float32Array>();
  const ops: Op[] = [];
  let nextId = 0;
  let fresh = randomFlat(count, dimension, seed);
  const add = (vectors: Float32Array, n: number) => {
    const keys = new BigUint64Array(n);
    for (let i = 0; i < n; i++) {
      keys[i] = keyOf(nextId++);
      live.set(keys[i]!, vectors.subarray(i * dimension, (i + 1) * dimension));
    }
    ops.push({ kind: 'add', keys, vectors });
  };
  const pick = (n: number): BigUint64Array => {
    const all = [...live.keys()];
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(rand() * (all.length - i));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    const keys = BigUint64Array.from(all.slice(0, n));
    for (const key of keys) live.delete(key);
    ops.push({ kind: 'remove', keys });
    return keys;
  };
  for (let start = 0; start < count; start += 500)
    add(fresh.subarray(start * dimension, Math.min(count, start + 500) * dimension), Math.min(500, count - start));
  const overwrites = Math.round(count * overwrite);
  fresh = randomFlat(overwrites, dimension, seed + 1000);
  for (let done = 0; done < overwrites; done += 100) {
    const n = Math.min(100, overwrites - done);
    pick(n);
    add(fresh.subarray(done * dimension, (done + n) * dimension), n);
  }
  const deletes = Math.round(count * remove);
  for (let done = 0; done < deletes; done += 60) pick(Math.min(60, deletes - done));
  return { name: `churn ${count}×${dimension} seed ${seed}`, dimension, metric: 'cos', ops, live };
}

/**
 * The same mix as vecvault sees it: upserts of 100 items where each item
 * overwrites a random live record with probability 0.3 (a new key is added,
 * then the old key removed, as an encrypted-index upsert does), plus deletes
 * of 3 % of each batch, until `count` records are live.
 */
function churnInterleaved(seed: number, count = 6000, dimension = 48, overwrite = 0.3, remove = 0.03): Case {
  const rand = seededRandom(seed * 104_729);
  const live = new Map<bigint, Float32Array>();
  const order: bigint[] = [];
  const ops: Op[] = [];
  let nextId = 0;
  const pool = randomFlat(Math.ceil(count * 2), dimension, seed + 2000);
  let used = 0;
  const takeRandomLive = (): bigint => {
    for (;;) {
      const key = order[Math.floor(rand() * order.length)]!;
      if (live.has(key)) return key;
    }
  };
  while (live.size < count) {
    const n = Math.min(100, Math.max(1, count - live.size + 10));
    const keys = new BigUint64Array(n);
    const vectors = new Float32Array(n * dimension);
    const replaced: bigint[] = [];
    for (let i = 0; i < n; i++) {
      if (live.size > 0 && rand() < overwrite) {
        const old = takeRandomLive();
        if (!replaced.includes(old)) replaced.push(old);
      }
      keys[i] = keyOf(nextId++);
      vectors.set(pool.subarray((used % (pool.length / dimension)) * dimension, ((used % (pool.length / dimension)) + 1) * dimension), i * dimension);
      used++;
    }
    ops.push({ kind: 'add', keys, vectors });
    for (let i = 0; i < n; i++) {
      live.set(keys[i]!, vectors.subarray(i * dimension, (i + 1) * dimension));
      order.push(keys[i]!);
    }
    for (const old of replaced) live.delete(old);
    if (replaced.length) ops.push({ kind: 'remove', keys: BigUint64Array.from(replaced) });
    const deletes: bigint[] = [];
    for (let i = 0; i < Math.round(n * remove); i++) {
      const key = takeRandomLive();
      if (!deletes.includes(key)) deletes.push(key);
    }
    for (const key of deletes) live.delete(key);
    if (deletes.length) ops.push({ kind: 'remove', keys: BigUint64Array.from(deletes) });
  }
  return { name: `upsert churn ${count}×${dimension} seed ${seed}`, dimension, metric: 'cos', ops, live };
}

function flatLive(c: Case): { keys: BigUint64Array; vectors: Float32Array } {
  const keys = c.probe ?? BigUint64Array.from(c.live.keys());
  const vectors = new Float32Array(keys.length * c.dimension);
  keys.forEach((key, i) => vectors.set(c.live.get(key)!, i * c.dimension));
  return { keys, vectors };
}

function countLost(keys: BigUint64Array, found: BigUint64Array, counts: ArrayLike<number | bigint>, k: number): number {
  let lost = 0;
  for (let i = 0; i < keys.length; i++) {
    const n = Number(counts[i]);
    let hit = false;
    for (let j = 0; j < n && !hit; j++) hit = found[i * k + j] === keys[i];
    if (!hit) lost++;
  }
  return lost;
}

async function lostOurs(engine: NativeAnnEngine, c: Case): Promise<number> {
  const { keys, vectors } = flatLive(c);
  const r = await engine.search(vectors, PROBE_K, { expansionSearch: PROBE_EF });
  return countLost(keys, r.keys, r.counts, PROBE_K);
}

type StockIndex = InstanceType<typeof usearch.Index>;

function lostStock(index: StockIndex, c: Case): number {
  const { keys, vectors } = flatLive(c);
  const m = index.search(vectors, PROBE_K, 0) as unknown as { keys: BigUint64Array; counts: BigUint64Array };
  return countLost(keys, m.keys, m.counts, PROBE_K);
}

function engineOptions(c: Case) {
  return { dimension: c.dimension, metric: c.metric, precision: 'f32' as const, connectivity: CONNECTIVITY, expansionAdd: EXPANSION_ADD, expansionSearch: 200 };
}

async function runOurs(c: Case): Promise<NativeAnnEngine> {
  const engine = nativeEngine.create(engineOptions(c));
  for (const op of c.ops) {
    if (op.kind === 'add') await engine.add(op.keys, op.vectors);
    else await engine.remove(op.keys);
  }
  return engine;
}

function runStock(c: Case): StockIndex {
  const index = new usearch.Index({
    dimensions: c.dimension,
    metric: c.metric === 'cos' ? usearch.MetricKind.Cos : usearch.MetricKind.L2sq,
    quantization: usearch.ScalarKind.F32,
    connectivity: CONNECTIVITY,
    expansion_add: EXPANSION_ADD,
    expansion_search: PROBE_EF,
    multi: false,
  });
  for (const op of c.ops) {
    if (op.kind === 'add') index.add(op.keys, op.vectors, 0);
    else index.remove(op.keys);
  }
  return index;
}

interface Row {
  name: string;
  live: number;
  probed: number;
  stockLost: number;
  stockCheck: number;
  stockLostAfter: number;
  oursLost: number;
  oursCheck: number;
  relinked: number;
  remaining: number;
  oursLostAfter: number;
  checkMs: number;
  repairMs: number;
}

async function measure(c: Case, dir: string): Promise<Row> {
  const stock = runStock(c);
  const file = join(dir, 'stock.usearch');
  stock.save(file);
  const loaded = await nativeEngine.deserialize(new Uint8Array(readFileSync(file)), engineOptions(c));
  const ours = await runOurs(c);
  const stockFound = await loaded.checkGraph({ repair: false });
  const onlyCheck = await ours.checkGraph({ repair: false });
  chooseProbe(c, [stockFound.keys, onlyCheck.keys]);
  const stockLost = lostStock(stock, c);
  const stockRepair = await loaded.checkGraph();
  const stockLostAfter = await lostOurs(loaded, c);
  await loaded.close();

  const oursLost = await lostOurs(ours, c);
  const repair = await ours.checkGraph();
  const oursLostAfter = await lostOurs(ours, c);
  await ours.close();
  return {
    name: c.name,
    live: c.live.size,
    probed: c.probe?.length ?? c.live.size,
    stockLost,
    stockCheck: stockRepair.unreachable,
    stockLostAfter,
    oursLost,
    oursCheck: onlyCheck.unreachable,
    relinked: repair.relinked,
    remaining: repair.remaining,
    oursLostAfter,
    checkMs: onlyCheck.ms,
    repairMs: repair.ms,
  };
}

interface ScaleRow {
  count: number;
  buildS: number;
  checkMs: number;
  found: number;
  repairMs: number;
  relinked: number;
  remaining: number;
}

async function scaleRow(count: number): Promise<ScaleRow> {
  const dimension = 96;
  const set = clusteredVectors(count, dimension, { clusters: 256, seed: 5 });
  const engine = nativeEngine.create({
    dimension,
    metric: 'cos',
    precision: 'f32',
    connectivity: CONNECTIVITY,
    expansionAdd: EXPANSION_ADD,
    expansionSearch: 200,
  });
  const started = performance.now();
  for (let start = 0; start < count; start += 10_000) {
    const end = Math.min(count, start + 10_000);
    await engine.add(
      BigUint64Array.from({ length: end - start }, (_, i) => keyOf(start + i)),
      set.data.subarray(start * dimension, end * dimension),
    );
  }
  const buildS = (performance.now() - started) / 1000;
  const checks: number[] = [];
  let found = 0;
  for (let i = 0; i < 3; i++) {
    const r = await engine.checkGraph({ repair: false });
    checks.push(r.ms);
    found = r.unreachable;
  }
  const repair = await engine.checkGraph();
  await engine.close();
  checks.sort((a, b) => a - b);
  return { count, buildS, checkMs: checks[1]!, found, repairMs: repair.ms, relinked: repair.relinked, remaining: repair.remaining };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-reach-'));
  const rows: Row[] = [];
  const skipped: string[] = [];
  const only = args.only ? args.only.split(',') : null;
  const want = (name: string) => !only || only.some((o) => name.startsWith(o));
  const load = [loadavg()[0]!];
  try {
    for (const name of ['glove25', 'sift5k', 'glove50', 'fashion-mnist'] as DatasetName[]) {
      if (!want(name)) continue;
      const reason = datasetUnavailable(name);
      if (reason) {
        skipped.push(reason);
        console.log(`skip: ${reason}`);
        continue;
      }
      const data = loadDataset(name);
      const c = oneShot(`${name} build`, data.base.data, data.base.count, data.base.dimension, data.metric === 'cosine' ? 'cos' : 'l2sq');
      rows.push(await measure(c, dir));
      console.log(rows.at(-1));
    }
    const seeds = Number(args.seeds);
    for (let seed = 1; seed <= seeds; seed++) {
      if (!want('churn')) break;
      rows.push(await measure(churn(seed), dir));
      console.log(rows.at(-1));
    }
    for (let seed = 1; seed <= seeds; seed++) {
      if (!want('upsert')) break;
      rows.push(await measure(churnInterleaved(seed), dir));
      console.log(rows.at(-1));
    }
    for (let seed = 1; seed <= seeds; seed++) {
      if (!want('build6k')) break;
      const values = randomFlat(6000, 48, 100 + seed);
      rows.push(await measure(oneShot(`random 6000×48 build seed ${seed}`, values, 6000, 48, 'cos'), dir));
      console.log(rows.at(-1));
    }
    const scale: ScaleRow[] = [];
    for (const n of args.scale.split(',').filter(Boolean).map(Number)) {
      scale.push(await scaleRow(n));
      console.log(scale.at(-1));
    }
    load.push(loadavg()[0]!);
    const out = args.out || join(projectRoot(), 'bench', 'results', 'REACHABILITY.md');
    mkdirSync(join(out, '..'), { recursive: true });
    writeFileSync(out, report(rows, scale, skipped, load));
    console.log(`wrote ${out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(rows: Row[], scale: ScaleRow[], skipped: string[], load: number[]): string {
  const m = machineInfo();
  const lines = [
    '# Records the graph cannot reach',
    '',
    `Generated by \`npm run bench:reachability${process.argv.slice(2).length ? ' -- ' + process.argv.slice(2).join(' ') : ''}\` (bench/reachability.ts) on ${new Date().toISOString().slice(0, 10)}.`,
    `Machine: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, commit ${m.commit}; load average ${load.map((l) => l.toFixed(2)).join(' → ')} (2 shared cores).`,
    `HNSW M ${CONNECTIVITY}, expansionAdd ${EXPANSION_ADD}, f32. "Lost": live records whose own exact vector, searched at ef ${PROBE_EF.toLocaleString('en')} with k ${PROBE_K}, does not return them.`,
    '"Check": the native reachability check (base-layer walk from the entry point). Stock = the npm `usearch` binding\'s own `add`/`remove` (threads 0);',
    "its saved graph is then loaded into our engine for the check and the repair. Ours = vecvault's engine (2 parallel add lanes).",
    '',
    `Sets larger than ${SAMPLE.toLocaleString('en')} live records are probed on ${SAMPLE.toLocaleString('en')} random records plus every record either check flagged ("probed"); the check itself covers all.`,
    '',
    '| case | live | probed | stock lost | stock check | stock lost after repair | ours lost | ours check | relinked | remaining | ours lost after repair | check ms | check + repair ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.live} | ${r.probed} | ${r.stockLost} | ${r.stockCheck} | ${r.stockLostAfter} | ${r.oursLost} | ${r.oursCheck} | ${r.relinked} | ${r.remaining} | ${r.oursLostAfter} | ${r.checkMs.toFixed(1)} | ${r.repairMs.toFixed(1)} |`,
    ),
  ];
  if (skipped.length) lines.push('', 'Skipped: ' + skipped.join('; '));
  if (scale.length) {
    lines.push(
      '',
      '## Cost at scale',
      '',
      'Clustered 96-d cosine, built with our engine in batches of 10,000; check = median of 3 check-only calls (ms), on the pool.',
      '',
      '| vectors | build s | check ms | unreachable | check + repair ms | relinked | remaining |',
      '|---:|---:|---:|---:|---:|---:|---:|',
      ...scale.map(
        (s) => `| ${s.count} | ${s.buildS.toFixed(1)} | ${s.checkMs.toFixed(1)} | ${s.found} | ${s.repairMs.toFixed(1)} | ${s.relinked} | ${s.remaining} |`,
      ),
    );
  }
  return lines.join('\n') + '\n';
}

await main();
