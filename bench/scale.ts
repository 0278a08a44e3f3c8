/**
 * `npm run bench:engine -- --scale N`: vecvault beside raw usearch (the stock
 * binding) at N synthetic clustered 96-d cosine vectors, each phase in a fresh
 * child process after the same data was generated, so resident-set figures
 * are not polluted by the other system or an earlier phase:
 *
 *   raw-build   add all N, then save(file)          vv-build   upsert N (10k per call), snapshot() (the final snapshot), close()
 *   raw-open    load(file) + first query            vv-open    loadIndex + first query, then get 1,000 random ids with vectors
 *   query       both opened in one process (memory is not measured there): single and batched QPS
 *               alternated pass by pass, with recall@10 against exact ground truth on QUERIES held-out
 *               vectors, at the same ef and then each at the smallest ef reaching recall@10 0.95;
 *               `get` of 1,000 random ids with vectors in calls of 10 and 100
 *   vv-compact  (last: it changes the store) delete every 20th id, then compact()
 *
 * Memory is Linux's view: RSS growth over the child's baseline (taken after
 * the data (vectors, and the caller's ids or keys) exists and the modules are loaded), and the peak of each phase from
 * VmHWM, reset between phases through /proc/self/clear_refs. Steady state is
 * the RSS after a full GC, and 2 s idle after an open and after vecvault's
 * build (once its final snapshot is written: an idle index takes it by itself
 * 250 ms after the last write, and trims its memory once writes pause; the
 * figure right after the last upsert is reported beside it).
 */
import { readFileSync, rmSync, statSync, writeFileSync, mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineInfo, projectRoot } from './lib/machine.js';
import { rawScaleIndex, SCALE_CONFIG, SCALE_DIM } from './lib/scale-index.js';
import { duBytes, medianOf, sleep, timedPass, withLoopDelay, type LoopDelay } from './lib/measure.js';
import { runPhaseChild, servePhaseChild } from './lib/phase-child.js';

const DIM = SCALE_DIM;
const CONFIG = SCALE_CONFIG;
const UPSERT_CHUNK = 10_000;
const GETS = 1_000;

/** `--stream-ids` (bench/engine.ts sets this for the children): see the vv-build phase. */
const streamIds = () => process.env.VECVAULT_SCALE_STREAM_IDS === '1';
const idsNote = () => (streamIds() ? ' --stream-ids' : '');
/** The host's Node options, which the children inherit (e.g. a young-generation cap): named in the report's command. */
const nodeOptions = () => (process.env.NODE_OPTIONS ? `NODE_OPTIONS='${process.env.NODE_OPTIONS}' ` : '');

type Phase = 'raw-build' | 'vv-build' | 'raw-open' | 'vv-open' | 'query' | 'vv-compact';
/** Held-out queries of the query phase (the rows after the N indexed ones, same clusters). */
const QUERIES = 200;
const BATCH = 100;
const K = 10;
/** Alternated passes per system in the query phase, each at least PASS_MS. */
const QUERY_PASSES = 5;
const PASS_MS = 300;
/** "QPS at recall@10 ≥ 0.95" (issue 13): each system runs at the smallest ef of the sweep that reaches it. */
const TARGET_RECALL = 0.95;
const EF_SWEEP = [64, 96, 128, 192, 256, 384, 512, 768, 1024];

/** Single and batched QPS of both systems in one process, alternated pass by pass, each at its own ef. */
export interface PairedFigures {
  rawEf: number;
  vvEf: number;
  rawRecall: number;
  vvRecall: number;
  rawBatchRecall: number;
  vvBatchRecall: number;
  rawSingleQps: number;
  vvSingleQps: number;
  /** Median of per-pass ratios (vecvault ÷ raw), robust to load drifting between pairs. */
  singleRatio: number;
  rawBatchQps: number;
  vvBatchQps: number;
  batchRatio: number;
}

/** The query phase's figures. */
export interface QueryFigures {
  /** Both at the build's ef (CONFIG.expansionSearch). */
  atEf: PairedFigures;
  /** Each at the smallest ef of EF_SWEEP whose single-query recall@10 reaches TARGET_RECALL (`reached` false if none did). */
  atRecall: PairedFigures & { reached: boolean };
  getPerSec10: number;
  getPerSec100: number;
}

export interface PhaseResult {
  phase: Phase;
  baselineMiB: number;
  /** Build (raw add / vecvault upsert) */
  buildMs?: number;
  buildStall?: LoopDelay;
  /** Steady RSS growth after the build, MiB: vecvault after its snapshot, a GC and 2 s idle (its own cleanup runs when writes pause), raw after a GC. */
  afterBuildMiB?: number;
  /** vecvault: RSS growth right after the last upsert and a GC, before the snapshot and the idle cleanup, MiB. */
  atOnceAfterBuildMiB?: number;
  /** vecvault: close() after the explicit snapshot (nothing left to write). */
  closeMs?: number;
  closeStall?: LoopDelay;
  peakBuildMiB?: number;
  /** Anonymous-RSS peaks (growth over the baseline's anonymous RSS), MiB. */
  anonPeakBuildMiB?: number;
  anonPeakPersistMiB?: number;
  anonPeakOpenMiB?: number;
  /** raw save / vecvault snapshot() (the final snapshot); the vecvault peak also spans the idle wait and close() after it */
  persistMs?: number;
  persistStall?: LoopDelay;
  peakPersistMiB?: number;
  afterPersistMiB?: number;
  diskBytes?: number;
  openMs?: number;
  openStall?: LoopDelay;
  peakOpenMiB?: number;
  /** Steady RSS growth after the open, MiB. */
  afterOpenMiB?: number;
  getRecordsPerSec?: number;
  /** vv-compact: compact() after deleting every 20th record (a rebuild of the graph from the live records). */
  compactMs?: number;
  compactStall?: LoopDelay;
  peakCompactMiB?: number;
  anonPeakCompactMiB?: number;
  query?: QueryFigures;
  /** Diagnostics: where the memory is after the phase (growth of anonymous and file-backed RSS, MiB). */
  anonMiB?: number;
  fileMiB?: number;
  heapUsedMiB?: number;
  externalMiB?: number;
}

const mib = (bytes: number) => bytes / (1024 * 1024);

function status(field: 'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/**
 * Peak of anonymous RSS, sampled every 5 ms: memory the process owns, without
 * LevelDB's mapped table pages (page cache), which VmHWM also counts. Only
 * meaningful while the event loop runs (vecvault's phases; raw usearch blocks
 * it, so its peaks are VmHWM's, and it maps no files).
 */
let anonPeak = 0;
const sampler = setInterval(() => (anonPeak = Math.max(anonPeak, status('RssAnon'))), 5);
sampler.unref();

/** Starts a new peak window (VmHWM := VmRSS, anonymous peak := now). */
function resetPeak(): void {
  writeFileSync('/proc/self/clear_refs', '5');
  anonPeak = status('RssAnon');
}
const anonPeakNow = () => Math.max(anonPeak, status('RssAnon'));

async function settle(): Promise<number> {
  (globalThis as { gc?: () => void }).gc?.();
  await sleep(2000);
  (globalThis as { gc?: () => void }).gc?.();
  return status('VmRSS');
}

function heapDiag(): Pick<PhaseResult, 'heapUsedMiB' | 'externalMiB'> {
  const m = process.memoryUsage();
  return { heapUsedMiB: mib(m.heapUsed), externalMiB: mib(m.external) };
}

/** Recall@K of `found` rows (ids as numbers) against `truth` (K per query). */
function recallOf(found: ArrayLike<number>[], truth: BigUint64Array): number {
  let hits = 0;
  found.forEach((row, q) => {
    const want = new Set(Array.from(truth.subarray(q * K, (q + 1) * K), Number));
    for (let j = 0; j < Math.min(K, row.length); j++) if (want.has(row[j]!)) hits++;
  });
  return hits / (found.length * K);
}

/**
 * Raw usearch (loaded from its file) and vecvault (loadIndex) in one process: recall@10 of each against exact
 * neighbours and alternated single and batched passes, first at the same ef, then each at the smallest ef that
 * reaches TARGET_RECALL (the stock binding fixes ef at construction, so raw is loaded once per ef tried).
 */
async function runQueries(n: number, dir: string): Promise<QueryFigures> {
  const { clusteredVectors, normalized } = await import('../test/support/vectors.js');
  const usearch = (await import('usearch')).default;
  const { Client } = await import('../src/index.js');
  // The build used the first n rows of this generator; the QUERIES after them are held out.
  const all = normalized(clusteredVectors(n + QUERIES, DIM, { seed: 42 })).data;
  const data = all.subarray(0, n * DIM);
  const queries = all.slice(n * DIM);
  const row = (q: number) => queries.subarray(q * DIM, (q + 1) * DIM);
  const truth = (usearch.exactSearch(data, queries, DIM, K, usearch.MetricKind.Cos, 0) as unknown as { keys: BigUint64Array }).keys;
  type Raw = InstanceType<typeof usearch.Index>;
  const loadRaw = (ef: number): Raw => {
    const raw = rawScaleIndex(ef);
    raw.load(join(dir, 'raw.usearch'));
    return raw;
  };
  const client = new Client({ path: join(dir, 'vv') });
  const index = await client.loadIndex({ indexName: 'scale', indexKey: Buffer.from(readFileSync(join(dir, 'key'))) });
  const batchOf = (b: number) => queries.subarray(b * BATCH * DIM, (b + 1) * BATCH * DIM);
  const batches = QUERIES / BATCH;
  const rawOne = (raw: Raw, q: number) => Array.from(raw.search(row(q), K, 1).keys, Number);
  const vvOne = async (ef: number, q: number) =>
    ((await index.query({ queryVectors: row(q), topK: K, expansionSearch: ef })).results as { id: string }[]).map((r) => Number(r.id));
  const rawBatch = (raw: Raw, b: number) => {
    const m = raw.search(batchOf(b), K, 0) as unknown as { keys: BigUint64Array; counts: BigUint64Array };
    return Array.from({ length: BATCH }, (_, q) => Array.from(m.keys.subarray(q * K, q * K + Number(m.counts[q])), Number));
  };
  const vvBatch = async (ef: number, b: number) =>
    ((await index.query({ queryVectors: batchOf(b), dimension: DIM, topK: K, expansionSearch: ef })).results as { id: string }[][]).map((r) =>
      r.map((x) => Number(x.id)),
    );
  const rawRecall = (raw: Raw) =>
    recallOf(
      Array.from({ length: QUERIES }, (_, q) => rawOne(raw, q)),
      truth,
    );
  const vvRecall = async (ef: number) => {
    const rows: number[][] = [];
    for (let q = 0; q < QUERIES; q++) rows.push(await vvOne(ef, q));
    return recallOf(rows, truth);
  };

  /** Correct before timed: recalls, then QUERY_PASSES alternated single and batched passes. */
  const paired = async (raw: Raw, rawEf: number, vvEf: number): Promise<PairedFigures> => {
    const vvBatchRows: number[][] = [];
    for (let b = 0; b < batches; b++) vvBatchRows.push(...(await vvBatch(vvEf, b)));
    const single = { raw: [] as number[], vv: [] as number[], ratio: [] as number[] };
    const batch = { raw: [] as number[], vv: [] as number[], ratio: [] as number[] };
    for (let pass = 0; pass < QUERY_PASSES; pass++) {
      // Order alternated pass by pass, so neither system always runs first.
      const order = pass % 2 === 0 ? (['raw', 'vv'] as const) : (['vv', 'raw'] as const);
      for (const who of order) {
        const qps =
          who === 'raw'
            ? await timedPass(PASS_MS, (i) => void raw.search(row(i % QUERIES), K, 1))
            : await timedPass(PASS_MS, async (i) => void (await index.query({ queryVectors: row(i % QUERIES), topK: K, expansionSearch: vvEf })));
        single[who].push(qps);
      }
      single.ratio.push(single.vv.at(-1)! / single.raw.at(-1)!);
      for (const who of order) {
        const calls =
          who === 'raw'
            ? await timedPass(PASS_MS, (i) => void raw.search(batchOf(i % batches), K, 0))
            : await timedPass(
                PASS_MS,
                async (i) => void (await index.query({ queryVectors: batchOf(i % batches), dimension: DIM, topK: K, expansionSearch: vvEf })),
              );
        batch[who].push(calls * BATCH);
      }
      batch.ratio.push(batch.vv.at(-1)! / batch.raw.at(-1)!);
    }
    return {
      rawEf,
      vvEf,
      rawRecall: rawRecall(raw),
      vvRecall: await vvRecall(vvEf),
      rawBatchRecall: recallOf(Array.from({ length: batches }, (_, b) => rawBatch(raw, b)).flat(), truth),
      vvBatchRecall: recallOf(vvBatchRows, truth),
      rawSingleQps: medianOf(single.raw),
      vvSingleQps: medianOf(single.vv),
      singleRatio: medianOf(single.ratio),
      rawBatchQps: medianOf(batch.raw),
      vvBatchQps: medianOf(batch.vv),
      batchRatio: medianOf(batch.ratio),
    };
  };

  const ef = CONFIG.expansionSearch;
  const atEf = await paired(loadRaw(ef), ef, ef);
  // The sweep: the smallest ef reaching the target, for each system on its own graph.
  let rawEf = EF_SWEEP.at(-1)!;
  let reached = false;
  for (const candidate of EF_SWEEP) {
    const recall = rawRecall(loadRaw(candidate));
    globalThis.gc?.(); // let the finalizer free the index just measured (~N × 0.6 KB)
    if (recall >= TARGET_RECALL) {
      rawEf = candidate;
      reached = true;
      break;
    }
  }
  let vvEf = EF_SWEEP.at(-1)!;
  let vvReached = false;
  for (const candidate of EF_SWEEP) {
    if ((await vvRecall(candidate)) >= TARGET_RECALL) {
      vvEf = candidate;
      vvReached = true;
      break;
    }
  }
  const atRecall = { ...(await paired(loadRaw(rawEf), rawEf, vvEf)), reached: reached && vvReached };

  // get: 1,000 random ids with their vectors, in calls of 10 and of 100.
  let seed = 777;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * n;
  const ids = Array.from({ length: GETS }, () => String(Math.floor(rand())));
  const getRate = async (per: number) => {
    const t0 = performance.now();
    let got = 0;
    for (let i = 0; i < GETS; i += per) {
      const items = await index.get({ ids: ids.slice(i, i + per), include: ['vector'] });
      got += items.filter((item) => item.vector !== undefined).length;
    }
    if (got !== GETS) throw new Error(`get returned ${got} of ${GETS} vectors`);
    return (got * 1000) / (performance.now() - t0);
  };
  await getRate(100); // warm the block cache and the JIT as a running app's would be
  await getRate(10);
  const get10 = medianOf([await getRate(10), await getRate(10), await getRate(10)]);
  const get100 = medianOf([await getRate(100), await getRate(100), await getRate(100)]);
  await client.close();
  return { atEf, atRecall, getPerSec10: get10, getPerSec100: get100 };
}

/** Table rows for one paired run. */
function qpsRows(p: PairedFigures, label: string): string[] {
  const efs = p.rawEf === p.vvEf ? `ef ${p.rawEf}` : `ef ${p.rawEf} raw / ${p.vvEf} vecvault`;
  return [
    `| single-query QPS ${label} (${efs}; recall@10 on ${QUERIES} held-out queries: raw ${f(p.rawRecall, 3)}, vecvault ${f(p.vvRecall, 3)}) | ${f(p.rawSingleQps)} | ${f(p.vvSingleQps)} | ${f(p.singleRatio, 2)}× (median per pass) |`,
    `| batched QPS, ${BATCH} queries per call ${label} (${efs}; raw: \`search(…, threads 0)\`; recall@10 raw ${f(p.rawBatchRecall, 3)}, vecvault ${f(p.vvBatchRecall, 3)}) | ${f(p.rawBatchQps)} | ${f(p.vvBatchQps)} | ${f(p.batchRatio, 2)}× (median per pass) |`,
  ];
}

/** The query phase's rows. */
function queryRows(qf: QueryFigures): string[] {
  const target = qf.atRecall.reached ? `at recall@10 ≥ ${TARGET_RECALL}` : `at the sweep's largest ef (recall@10 ${TARGET_RECALL} not reached)`;
  return [
    ...qpsRows(qf.atEf, 'at equal ef'),
    ...qpsRows(qf.atRecall, target),
    `| \`get\` of ${GETS.toLocaleString('en-US')} random ids with vectors, calls of 10 / of 100 (query process, warm cache), records/s | — | ${f(qf.getPerSec10)} / ${f(qf.getPerSec100)} | |`,
  ];
}

/** `op`'s wall time (ms) and the event-loop delay while it ran. */
async function timedWithLoopDelay(op: () => unknown): Promise<{ ms: number; delay: LoopDelay }> {
  const { value: ms, delay } = await withLoopDelay(async () => {
    const t0 = performance.now();
    await op();
    return performance.now() - t0;
  });
  return { ms, delay };
}

async function runPhase(phase: Phase, n: number, dir: string): Promise<PhaseResult> {
  if (phase === 'query') return { phase, baselineMiB: status('VmRSS'), query: await runQueries(n, dir) };
  const { clusteredVectors, normalized } = await import('../test/support/vectors.js');
  const usearch = (await import('usearch')).default;
  const { Client } = await import('../src/index.js');
  const rawFile = join(dir, 'raw.usearch');
  const store = join(dir, 'vv');
  const key = Buffer.from(readFileSync(join(dir, 'key')));
  const rawIndex = () => rawScaleIndex();
  const building = phase.endsWith('build');
  // Build phases hold the data, as an app importing it would; open phases only a query.
  const data = building ? normalized(clusteredVectors(n, DIM, { seed: 42 })).data : null;
  // The caller's keys and ids are its data too, held before the baseline like the vectors (raw: a BigUint64Array;
  // vecvault: n strings, ~6 MiB at 200k that the build's figures counted until 2026-12).
  const rawKeys = phase === 'raw-build' ? BigUint64Array.from({ length: n }, (_, i) => BigInt(i)) : null;
  // --stream-ids: vecvault's ids are made per call instead, as a loader streaming its input would: V8's mark-compact
  // pauses grow with everything the host's heap holds, and 1M held id strings made them 41–49 ms (bench/stalls.ts).
  const ids = phase === 'vv-build' && !streamIds() ? Array.from({ length: n }, (_, i) => String(i)) : null;
  const query = normalized(clusteredVectors(1, DIM, { seed: 7 })).data;
  const baseline = await settle();
  const baseAnon = status('RssAnon');
  const baseFile = status('RssFile');
  const split = () => ({ anonMiB: status('RssAnon') - baseAnon, fileMiB: status('RssFile') - baseFile });
  const out: PhaseResult = { phase, baselineMiB: baseline };
  resetPeak();
  if (phase === 'raw-build') {
    const index = rawIndex();
    const { ms, delay } = await timedWithLoopDelay(() => index.add(rawKeys!, data!, 0));
    out.buildMs = ms;
    out.buildStall = delay;
    out.peakBuildMiB = status('VmHWM') - baseline;
    (globalThis as { gc?: () => void }).gc?.();
    out.afterBuildMiB = status('VmRSS') - baseline; // no background work to wait for
    resetPeak();
    const t0 = performance.now();
    index.save(rawFile);
    out.persistMs = performance.now() - t0;
    out.peakPersistMiB = status('VmHWM') - baseline;
    out.afterPersistMiB = (await settle()) - baseline;
    out.diskBytes = statSync(rawFile).size;
  } else if (phase === 'vv-build') {
    const client = new Client({ path: store });
    const index = await client.createIndex({ indexName: 'scale', indexKey: key, dimension: DIM, metric: 'cosine', indexConfig: CONFIG });
    const { ms, delay } = await timedWithLoopDelay(async () => {
      for (let start = 0; start < n; start += UPSERT_CHUNK) {
        const end = Math.min(n, start + UPSERT_CHUNK);
        // A flat Float32Array per call: the cheapest input shape the API takes.
        await index.upsert({
          ids: ids ? ids.slice(start, end) : Array.from({ length: end - start }, (_, j) => String(start + j)),
          vectors: Array.from({ length: end - start }, (_, j) => data!.subarray((start + j) * DIM, (start + j + 1) * DIM)),
        });
      }
    });
    out.buildMs = ms;
    out.buildStall = delay;
    out.peakBuildMiB = status('VmHWM') - baseline;
    out.anonPeakBuildMiB = anonPeakNow() - baseAnon;
    Object.assign(out, heapDiag());
    (globalThis as { gc?: () => void }).gc?.();
    out.atOnceAfterBuildMiB = status('VmRSS') - baseline;
    resetPeak();
    // The final snapshot, explicitly (an idle index takes it by itself 250 ms after the last write; close() would
    // take it otherwise), then the steady state of an open, idle index: its snapshot written and its cleanup run.
    const { ms: snapshotMs, delay: snapshotDelay } = await timedWithLoopDelay(() => index.snapshot());
    out.persistMs = snapshotMs;
    out.persistStall = snapshotDelay;
    out.afterBuildMiB = (await settle()) - baseline;
    Object.assign(out, split());
    const { ms: closeMs, delay: closeDelay } = await timedWithLoopDelay(() => client.close());
    out.closeMs = closeMs;
    out.closeStall = closeDelay;
    out.peakPersistMiB = status('VmHWM') - baseline;
    out.anonPeakPersistMiB = anonPeakNow() - baseAnon;
    out.afterPersistMiB = (await settle()) - baseline;
    out.diskBytes = duBytes(store);
  } else if (phase === 'raw-open') {
    const t0 = performance.now();
    const index = rawIndex();
    index.load(rawFile);
    index.search(query, 10, 1);
    out.openMs = performance.now() - t0;
    out.peakOpenMiB = status('VmHWM') - baseline;
    out.afterOpenMiB = (await settle()) - baseline;
    Object.assign(out, split());
    if (index.size() !== n) throw new Error('raw load lost vectors');
  } else if (phase === 'vv-compact') {
    const client = new Client({ path: store });
    const index = await client.loadIndex({ indexName: 'scale', indexKey: key });
    // VECVAULT_SCALE_DELETE_OFFSET (`--delete-offset K`): ids 20i + K, so a store compacted once has records to delete again.
    const offset = Number(process.env.VECVAULT_SCALE_DELETE_OFFSET ?? 0);
    const doomed = Array.from({ length: Math.floor(n / 20) }, (_, i) => String(i * 20 + offset));
    for (let i = 0; i < doomed.length; i += UPSERT_CHUNK) await index.delete({ ids: doomed.slice(i, i + UPSERT_CHUNK) });
    const live = index.stats().count;
    await settle();
    resetPeak();
    const { ms, delay } = await timedWithLoopDelay(() => index.compact());
    out.compactMs = ms;
    out.compactStall = delay;
    out.peakCompactMiB = status('VmHWM') - baseline;
    out.anonPeakCompactMiB = anonPeakNow() - baseAnon;
    if (index.stats().count !== live) throw new Error('compact lost records');
    await client.close();
  } else {
    // Raw usearch's addon is loaded by its import, before its timer starts; ours on first use. Load it first too.
    (await import('../src/util/native-addon.js')).loadNativeAddon();
    const { value, delay } = await withLoopDelay(async () => {
      const t0 = performance.now();
      const client = new Client({ path: store });
      const index = await client.loadIndex({ indexName: 'scale', indexKey: key });
      await index.query({ queryVectors: Array.from(query), topK: 10 });
      return { ms: performance.now() - t0, client, index };
    });
    out.openMs = value.ms;
    out.openStall = delay;
    out.peakOpenMiB = status('VmHWM') - baseline;
    out.anonPeakOpenMiB = anonPeakNow() - baseAnon;
    out.afterOpenMiB = (await settle()) - baseline;
    Object.assign(out, heapDiag(), split());
    // 1,000 random ids with their vectors, in calls of 100 (ids as a caller would hold them).
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * n;
    const ids = Array.from({ length: GETS }, () => String(Math.floor(rand())));
    const t0 = performance.now();
    let got = 0;
    for (let i = 0; i < GETS; i += 100) {
      const items = await value.index.get({ ids: ids.slice(i, i + 100), include: ['vector'] });
      got += items.filter((item) => item.vector !== undefined).length;
    }
    out.getRecordsPerSec = (got * 1000) / (performance.now() - t0);
    if (got !== GETS) throw new Error(`get returned ${got} of ${GETS} vectors`);
    await value.client.close();
  }
  return out;
}

function runChild(phase: Phase, n: number, dir: string): Promise<PhaseResult> {
  return runPhaseChild<PhaseResult>(import.meta.url, '--scale-child', phase, n, dir);
}

/** A stall's timer gaps over 50 ms, for the report: when in the phase, how long, GC inside. */
const gapsNote = (delay: LoopDelay | undefined) =>
  delay?.gaps === undefined
    ? ''
    : delay.gaps.length === 0
      ? ' (no timer gap over 50)'
      : ` (timer gaps: ${delay.gaps.map((g) => `at ${(g.atMs / 1000).toFixed(1)} s ${g.ms} ms, GC ${g.gcMs}`).join('; ')})`;
const f = (x: number | undefined, digits = 0) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(digits));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '—' : (a / b).toFixed(2) + '×');

/** Runs the four children (twice each for the open phases, medians) and writes bench/results/SCALE-<n>.md. */
const logPhase = (r: PhaseResult) =>
  console.log(`  ${r.phase}: ${JSON.stringify(r, (_, v: unknown) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v))}`);

/** The open phases, `reps` alternated pairs, on the stores in `dir`. */
async function runOpens(n: number, reps: number, dir: string): Promise<{ rawOpens: PhaseResult[]; vvOpens: PhaseResult[] }> {
  const rawOpens: PhaseResult[] = [];
  const vvOpens: PhaseResult[] = [];
  for (let rep = 0; rep < Math.max(1, reps); rep++) {
    // Alternated, page cache warm for both after the first pair.
    for (const phase of rep % 2 === 0 ? (['raw-open', 'vv-open'] as const) : (['vv-open', 'raw-open'] as const)) {
      const r = await runChild(phase, n, dir);
      logPhase(r);
      (phase === 'raw-open' ? rawOpens : vvOpens).push(r);
    }
  }
  return { rawOpens, vvOpens };
}

/**
 * `--reopen DIR`: only the open and query phases, on the stores an earlier run kept with `--keep` (after a change to
 * the open path, without building N vectors again). Writes bench/results/SCALE-<n>-reopen.md.
 */
/** `--reopen DIR --compact-only`: the vv-compact phase alone on kept stores (with `--delete-offset K` on a store compacted once). */
export async function runCompactOnly(n: number, dir: string): Promise<void> {
  const run = await runChild('vv-compact', n, dir);
  logPhase(run);
  console.log(
    `compact() ${f(run.compactMs)} ms; worst / p99 stall ${f(run.compactStall?.maxMs, 1)} / ${f(run.compactStall?.p99Ms, 1)} ms${gapsNote(run.compactStall)}; peak ${f(run.peakCompactMiB)} MiB (load ${machineInfo().loadAverage1m.toFixed(2)})`,
  );
}

export async function runReopen(n: number, reps: number, dir: string, { opensOnly = false }: { opensOnly?: boolean } = {}): Promise<void> {
  const loadBefore = machineInfo().loadAverage1m;
  const { rawOpens, vvOpens } = await runOpens(n, reps, dir);
  const queryRun = opensOnly ? undefined : await runChild('query', n, dir);
  if (queryRun) logPhase(queryRun);
  const med = (rs: PhaseResult[], pick: (r: PhaseResult) => number | undefined) => medianOf(rs.map(pick).filter((x): x is number => x !== undefined));
  const machine = machineInfo();
  const raw = (pick: (r: PhaseResult) => number | undefined) => med(rawOpens, pick);
  const vv = (pick: (r: PhaseResult) => number | undefined) => med(vvOpens, pick);
  const lines = [
    `# Scale, opens only: ${n.toLocaleString('en-US')} × ${DIM} cosine, vecvault vs raw usearch`,
    '',
    `Command: \`${nodeOptions()}npm run bench:engine -- --scale ${n} --reps ${reps} --reopen DIR${opensOnly ? ' --opens-only' : ''}\` (stores kept by an earlier \`--keep\` run) · ${new Date().toISOString()} · commit ${machine.commit} · ${machine.cores} × ${machine.cpuModel} · Node ${machine.node} · load average (1 min) ${loadBefore.toFixed(2)} → ${machine.loadAverage1m.toFixed(2)}`,
    '',
    `Medians of ${rawOpens.length} alternated opens, each in its own child process (open + first query, ms: raw ${rawOpens.map((r) => f(r.openMs)).join(', ')}; vecvault ${vvOpens.map((r) => f(r.openMs)).join(', ')}).`,
    '',
    '| figure | raw usearch | vecvault | ratio (vecvault ÷ raw) |',
    '|---|---|---|---|',
    `| open + first query, ms | ${f(raw((r) => r.openMs))} | ${f(vv((r) => r.openMs))} | ${ratio(
      vv((r) => r.openMs),
      raw((r) => r.openMs),
    )} |`,
    `| worst / p99 event-loop stall during the open, ms | — (blocks) | ${f(Math.max(...vvOpens.map((r) => r.openStall?.maxMs ?? 0)), 1)} / ${f(
      vv((r) => r.openStall?.p99Ms),
      1,
    )} | |`,
    `| peak RSS growth during the open, MiB (VmHWM; vecvault's anonymous peak in brackets) | ${f(raw((r) => r.peakOpenMiB))} | ${f(vv((r) => r.peakOpenMiB))} (${f(vv((r) => r.anonPeakOpenMiB))}) | ${ratio(
      vv((r) => r.peakOpenMiB),
      raw((r) => r.peakOpenMiB),
    )} |`,
    `| RSS growth after the open (steady), MiB | ${f(raw((r) => r.afterOpenMiB))} | ${f(vv((r) => r.afterOpenMiB))} | ${ratio(
      vv((r) => r.afterOpenMiB),
      raw((r) => r.afterOpenMiB),
    )} |`,
    `| \`get\` of ${GETS.toLocaleString('en-US')} random ids with vectors (calls of 100), records/s | — | ${f(vv((r) => r.getRecordsPerSec))} | |`,
    ...(queryRun ? queryRows(queryRun.query!) : []),
    '',
  ];
  const file = join(projectRoot(), 'bench', 'results', `SCALE-${n}-reopen${opensOnly ? '-opens' : ''}.md`);
  writeFileSync(file, lines.join('\n'));
  console.log(lines.join('\n'));
  console.log(`wrote ${file}`);
}

/** The build and persist rows of the report (raw usearch's build beside vecvault's, then its snapshot and close). */
function buildRows(n: number, rawBuild: PhaseResult, vvBuild: PhaseResult): string[] {
  const rawVector = DIM * 4;
  return [
    `| build: raw \`add\` (one call, all threads) / upsert (${UPSERT_CHUNK.toLocaleString('en-US')} per call, durable), vectors/s | ${f((n * 1000) / rawBuild.buildMs!)} | ${f((n * 1000) / vvBuild.buildMs!)} | ${ratio(rawBuild.buildMs!, vvBuild.buildMs!)} (throughput) |`,
    `| worst / p99 event-loop stall during the build, ms (a 2 ms timer's gaps over 50 ms) | ${f(rawBuild.buildStall?.maxMs)} / — (blocks) | ${f(vvBuild.buildStall?.maxMs, 1)} / ${f(vvBuild.buildStall?.p99Ms, 1)}${gapsNote(vvBuild.buildStall)} | |`,
    `| RSS growth after the build (steady: raw after a GC; vecvault after its final snapshot, a GC and 2 s idle), MiB | ${f(rawBuild.afterBuildMiB)} | ${f(vvBuild.afterBuildMiB)} | ${ratio(vvBuild.afterBuildMiB, rawBuild.afterBuildMiB)} |`,
    `| RSS growth right after the last upsert and a GC (before the snapshot and the idle cleanup), MiB | ${f(rawBuild.afterBuildMiB)} | ${f(vvBuild.atOnceAfterBuildMiB)} | ${ratio(vvBuild.atOnceAfterBuildMiB, rawBuild.afterBuildMiB)} |`,
    `| peak RSS growth during the build, MiB (VmHWM; vecvault's anonymous peak in brackets) | ${f(rawBuild.peakBuildMiB)} | ${f(vvBuild.peakBuildMiB)} (${f(vvBuild.anonPeakBuildMiB)}) | ${ratio(vvBuild.peakBuildMiB, rawBuild.peakBuildMiB)} (${ratio(vvBuild.anonPeakBuildMiB, rawBuild.peakBuildMiB)}) |`,
    `| persist: raw \`save(file)\` / \`snapshot()\` (final encrypted snapshot), ms | ${f(rawBuild.persistMs)} | ${f(vvBuild.persistMs)} | ${ratio(vvBuild.persistMs, rawBuild.persistMs)} |`,
    `| worst / p99 event-loop stall during the snapshot / during close() after it (${f(vvBuild.closeMs)} ms), ms (a 2 ms timer's gaps over 50 ms) | — (blocks) | ${f(vvBuild.persistStall?.maxMs, 1)} / ${f(vvBuild.persistStall?.p99Ms, 1)}${gapsNote(vvBuild.persistStall)}; ${f(vvBuild.closeStall?.maxMs, 1)} / ${f(vvBuild.closeStall?.p99Ms, 1)}${gapsNote(vvBuild.closeStall)} | |`,
    `| peak RSS growth during save / snapshot + idle + close (over the pre-build baseline), MiB (VmHWM; anonymous in brackets) | ${f(rawBuild.peakPersistMiB)} | ${f(vvBuild.peakPersistMiB)} (${f(vvBuild.anonPeakPersistMiB)}) | ${ratio(vvBuild.peakPersistMiB, rawBuild.peakPersistMiB)} (${ratio(vvBuild.anonPeakPersistMiB, rawBuild.peakPersistMiB)}) |`,
    `| disk bytes per vector (raw vector: ${rawVector} B) | ${f(rawBuild.diskBytes! / n)} | ${f(vvBuild.diskBytes! / n)} | ${ratio(vvBuild.diskBytes, rawBuild.diskBytes)} |`,
  ];
}

/**
 * `--build-only`: only the two build phases (each system's build, then raw \`save\` / vecvault's snapshot + close),
 * for paired before/after runs of the write path; writes bench/results/SCALE-<n>-build.md.
 */
export async function runBuildOnly(n: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-bench-scale-'));
  writeFileSync(join(dir, 'key'), crypto.getRandomValues(new Uint8Array(32)));
  try {
    const rawBuild = await runChild('raw-build', n, dir);
    logPhase(rawBuild);
    const vvBuild = await runChild('vv-build', n, dir);
    logPhase(vvBuild);
    const machine = machineInfo();
    const lines = [
      `# Scale, build and persist only: ${n.toLocaleString('en-US')} × ${DIM} cosine (synthetic clustered), vecvault vs raw usearch`,
      '',
      `Command: \`${nodeOptions()}npm run bench:engine -- --scale ${n} --build-only${idsNote()}\` · ${new Date().toISOString()} · commit ${machine.commit} · ${machine.cores} × ${machine.cpuModel} · Node ${machine.node} · load average (1 min) ${machine.loadAverage1m.toFixed(2)}`,
      '',
      '| figure | raw usearch | vecvault | ratio (vecvault ÷ raw) |',
      '|---|---|---|---|',
      ...buildRows(n, rawBuild, vvBuild),
      '',
      `Diagnostics after vecvault's build: V8 heap used ${f(vvBuild.heapUsedMiB)} MiB, external ${f(vvBuild.externalMiB)} MiB, RSS growth ${f(vvBuild.anonMiB)} MiB anonymous + ${f(vvBuild.fileMiB)} MiB file-backed.`,
      '',
    ];
    const outDir = join(projectRoot(), 'bench', 'results');
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `SCALE-${n}-build.md`);
    writeFileSync(file, lines.join('\n'));
    console.log(lines.join('\n'));
    console.log(`wrote ${file}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the children (the open phases `reps` times each, medians) and writes bench/results/SCALE-<n>.md; `keep` leaves the stores for `--reopen`. */
export async function runScale(n: number, reps = 1, keep = false): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-bench-scale-'));
  writeFileSync(join(dir, 'key'), crypto.getRandomValues(new Uint8Array(32)));
  try {
    const log = logPhase;
    const rawBuild = await runChild('raw-build', n, dir);
    log(rawBuild);
    const vvBuild = await runChild('vv-build', n, dir);
    log(vvBuild);
    const { rawOpens, vvOpens } = await runOpens(n, reps, dir);
    const queryRun = await runChild('query', n, dir);
    log(queryRun);
    const qf = queryRun.query!;
    const vvCompact = await runChild('vv-compact', n, dir);
    log(vvCompact);
    const med = (rs: PhaseResult[], pick: (r: PhaseResult) => number | undefined) => medianOf(rs.map(pick).filter((x): x is number => x !== undefined));
    const rawOpen = { openMs: med(rawOpens, (r) => r.openMs), peak: med(rawOpens, (r) => r.peakOpenMiB), after: med(rawOpens, (r) => r.afterOpenMiB) };
    const vvOpen = {
      openMs: med(vvOpens, (r) => r.openMs),
      peak: med(vvOpens, (r) => r.peakOpenMiB),
      anonPeak: med(vvOpens, (r) => r.anonPeakOpenMiB),
      after: med(vvOpens, (r) => r.afterOpenMiB),
      stall: Math.max(...vvOpens.map((r) => r.openStall?.maxMs ?? 0)),
      gaps: { maxMs: 0, p99Ms: 0, samples: 0, gaps: vvOpens.flatMap((r) => r.openStall?.gaps ?? []) } satisfies LoopDelay,
      p99: med(vvOpens, (r) => r.openStall?.p99Ms),
      get: med(vvOpens, (r) => r.getRecordsPerSec),
    };
    const machine = machineInfo();
    const lines = [
      `# Scale: ${n.toLocaleString('en-US')} × ${DIM} cosine (synthetic clustered), vecvault vs raw usearch`,
      '',
      `Command: \`${nodeOptions()}npm run bench:engine -- --scale ${n}${reps > 1 ? ` --reps ${reps}` : ''}${idsNote()}\` · ${new Date().toISOString()} · commit ${machine.commit} · ${machine.cores} × ${machine.cpuModel} · Node ${machine.node} · load average (1 min) ${machine.loadAverage1m.toFixed(2)}`,
      '',
      `HNSW M=${CONFIG.connectivity}, ef_add=${CONFIG.expansionAdd}. Each phase ran in its own child process after the same data was generated; memory is resident-set growth over that child's baseline (MiB); peaks from VmHWM reset per phase; steady = after a full GC, and 2 s idle after an open and after vecvault's build (once its final snapshot is written). Open figures are medians of ${rawOpens.length} alternated runs.`,
      '',
      '| figure | raw usearch | vecvault | ratio (vecvault ÷ raw) |',
      '|---|---|---|---|',
      ...buildRows(n, rawBuild, vvBuild),
      `| open + first query, ms | ${f(rawOpen.openMs)} | ${f(vvOpen.openMs)} | ${ratio(vvOpen.openMs, rawOpen.openMs)} |`,
      `| worst / p99 event-loop stall during the open, ms (a 2 ms timer's gaps over 50 ms, every open) | — (blocks) | ${f(vvOpen.stall, 1)} / ${f(vvOpen.p99, 1)}${gapsNote(vvOpen.gaps)} | |`,
      `| peak RSS growth during the open, MiB (VmHWM; vecvault's anonymous peak in brackets) | ${f(rawOpen.peak)} | ${f(vvOpen.peak)} (${f(vvOpen.anonPeak)}) | ${ratio(vvOpen.peak, rawOpen.peak)} (${ratio(vvOpen.anonPeak, rawOpen.peak)}) |`,
      `| RSS growth after the open (steady), MiB | ${f(rawOpen.after)} | ${f(vvOpen.after)} | ${ratio(vvOpen.after, rawOpen.after)} |`,
      `| \`get\` of ${GETS.toLocaleString('en-US')} random ids with vectors (calls of 100), records/s | — | ${f(vvOpen.get)} | |`,
      ...queryRows(qf),
      `| compact() after deleting every 20th record (graph rebuilt from the live records), ms | — | ${f(vvCompact.compactMs)} | |`,
      `| worst / p99 event-loop stall during compact(), ms (a 2 ms timer's gaps over 50 ms: when in the compaction, length, GC inside) | — | ${f(vvCompact.compactStall?.maxMs, 1)} / ${f(vvCompact.compactStall?.p99Ms, 1)}${gapsNote(vvCompact.compactStall)} | |`,
      `| peak RSS growth during compact(), MiB (VmHWM; anonymous in brackets) | — | ${f(vvCompact.peakCompactMiB)} (${f(vvCompact.anonPeakCompactMiB)}) | ${ratio(vvCompact.peakCompactMiB, rawOpen.after)} of raw's index |`,
      '',
      `Diagnostics after vecvault's build: V8 heap used ${f(vvBuild.heapUsedMiB)} MiB, external ${f(vvBuild.externalMiB)} MiB, RSS growth ${f(vvBuild.anonMiB)} MiB anonymous + ${f(vvBuild.fileMiB)} MiB file-backed; ` +
        `after its open: heap used ${f(med(vvOpens, (r) => r.heapUsedMiB))} MiB, external ${f(med(vvOpens, (r) => r.externalMiB))} MiB, RSS growth ${f(med(vvOpens, (r) => r.anonMiB))} MiB anonymous + ${f(med(vvOpens, (r) => r.fileMiB))} MiB file-backed ` +
        `(raw usearch after its open: ${f(med(rawOpens, (r) => r.anonMiB))} + ${f(med(rawOpens, (r) => r.fileMiB))}).`,
      '',
    ];
    const outDir = join(projectRoot(), 'bench', 'results');
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `SCALE-${n}.md`);
    writeFileSync(file, lines.join('\n'));
    console.log(lines.join('\n'));
    console.log(`wrote ${file}`);
  } finally {
    if (keep) console.log(`kept the stores in ${dir} (npm run bench:engine -- --scale ${n} --reopen ${dir})`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

servePhaseChild('--scale-child', runPhase);
