/**
 * Measures one system on one dataset, start to finish. Runs inside its own
 * child process (bench/child.ts) so peak RSS belongs to that system alone.
 * Every figure is checked for correctness before it is timed: the first
 * answers must be k distinct, in-range row ids, and recall is always scored
 * against the dataset's exact ground truth, never against another engine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dataset } from '../../test/support/datasets.js';
import { recallAtK } from '../../test/support/vectors.js';
import type { SystemAdapter, SystemInstance, SystemSpec } from '../systems/types.js';
import { medianOf, peakRssMiB, rssMiB, timedPass, withLoopDelay, yieldToLoop, type LoopDelay } from './measure.js';

export interface RunParams {
  k: number;
  connectivity: number;
  expansionAdd: number;
  /** ef used while building and for the "default" figures. */
  defaultEf: number;
  efSweep: number[];
  /** Also measure vecvault alternately with raw usearch in its own process (the headline QPS ratios). */
  paired: boolean;
  /** Timed repetitions per figure; the median is reported. */
  iterations: number;
  /** Minimum length of one timed pass, ms. */
  minPassMs: number;
  /** Recall is scored on the first this-many queries (null: all of them). */
  recallQueries: number | null;
  /** Queries per call in the timed batched passes (null: all recall queries). */
  batchSize: number | null;
  quick: boolean;
}

export interface SweepPoint {
  ef: number | null;
  recall: number;
  /** Recall of the batched answers (should equal `recall`). */
  recallBatch: number;
  qpsSingle: number;
  qpsBatch: number;
  qpsSingleSamples: number[];
  qpsBatchSamples: number[];
}

/** One ef of a paired measurement: QPS samples of both systems, taken alternately. */
export interface PairedPoint {
  ef: number;
  recallReference: number;
  recallSubject: number;
  singleReference: number[];
  singleSubject: number[];
  batchReference: number[];
  batchSubject: number[];
}

export interface PairedRun {
  /** The system measured alongside (raw usearch). */
  reference: string;
  points: PairedPoint[];
}

export interface SystemRun {
  system: string;
  dataset: string;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  insert?: { count: number; seconds: number; vectorsPerSecond: number; loopDelay: LoopDelay };
  persistSeconds?: number;
  open?: { medianMs: number; samplesMs: number[] };
  /** Rebuild (insert) time divided by open time. */
  rebuildOverOpen?: number;
  sweep?: SweepPoint[];
  /** Queries recall was scored on, and the batch size of the timed batched passes. */
  recallQueries?: number;
  batchSize?: number;
  queryLoopDelay?: { single: LoopDelay; batch: LoopDelay };
  memory?: { rssAfterLoadMiB: number; peakBeforeSystemMiB: number; peakMiB: number; peakDeltaMiB: number };
  extras?: Record<string, number>;
  note?: string;
  /** QPS of this system and the reference measured alternately in one process (vecvault only). */
  paired?: PairedRun;
  /** 1-minute load average when this system's measurement started (the machines are shared). */
  loadAverage1m?: number;
  durationSeconds?: number;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** The first answers must be k distinct row ids of the base set. */
function checkAnswer(rows: ArrayLike<number>, k: number, count: number, what: string): void {
  if (rows.length !== k) throw new Error(`${what}: returned ${rows.length} results, expected ${k}`);
  const seen = new Set<number>();
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (!Number.isInteger(r) || r < 0 || r >= count) throw new Error(`${what}: result ${r} is not a row of the base set`);
    if (seen.has(r)) throw new Error(`${what}: row ${r} returned twice`);
    seen.add(r);
  }
}

/**
 * Alternating timed passes of `reference` (built here, in the same process)
 * and `subject` (already open) at every ef: both see the same load at the
 * same moments, so their ratio is far steadier than one taken across two
 * processes minutes apart. Runs after the subject's peak RSS was recorded.
 */
async function pairedPasses(
  referenceAdapter: SystemAdapter,
  subject: SystemInstance,
  dataset: Dataset,
  params: RunParams,
  subjectSpec: SystemSpec,
): Promise<PairedRun> {
  const dir = mkdtempSync(join(tmpdir(), `vecvault-bench-pair-${referenceAdapter.key}-`));
  const spec: SystemSpec = { ...subjectSpec, dir };
  const { k } = params;
  const d = dataset.base.dimension;
  const nq = Math.min(dataset.queries.count, params.recallQueries ?? Infinity);
  const nb = Math.min(nq, params.batchSize ?? Infinity);
  const queryRow = (i: number) => dataset.queries.data.subarray((i % nq) * d, ((i % nq) + 1) * d);
  const reference = await referenceAdapter.create(spec);
  try {
    await reference.insert(dataset.base.data, dataset.base.count);
    await reference.persist();
    const points: PairedPoint[] = [];
    for (const ef of params.efSweep) {
      if ((await reference.setExpansionSearch(ef)) !== 'ok' || (await subject.setExpansionSearch(ef)) !== 'ok') continue;
      const recall = async (inst: SystemInstance) => {
        const found: ArrayLike<number>[] = [];
        for (let q = 0; q < nq; q++) found.push(await inst.query(queryRow(q), k));
        return recallAtK(dataset, found, k);
      };
      const point: PairedPoint = {
        ef,
        recallReference: await recall(reference),
        recallSubject: await recall(subject),
        singleReference: [],
        singleSubject: [],
        batchReference: [],
        batchSubject: [],
      };
      const single = (inst: SystemInstance) => timedPass(params.minPassMs, async (i) => void (await inst.query(queryRow(i), k)));
      const batch = async (inst: SystemInstance) =>
        nb * (await timedPass(params.minPassMs, async () => void (await inst.queryBatch(dataset.queries.data.subarray(0, nb * d), nb, k))));
      for (let it = 0; it < params.iterations; it++) {
        // Alternate who goes first, so neither always gets the warmer cache.
        if (it % 2 === 0) {
          point.singleReference.push(await single(reference));
          point.singleSubject.push(await single(subject));
          point.batchReference.push(await batch(reference));
          point.batchSubject.push(await batch(subject));
        } else {
          point.singleSubject.push(await single(subject));
          point.singleReference.push(await single(reference));
          point.batchSubject.push(await batch(subject));
          point.batchReference.push(await batch(reference));
        }
      }
      points.push(point);
    }
    return { reference: referenceAdapter.key, points };
  } finally {
    await reference.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runSystem(adapter: SystemAdapter, dataset: Dataset, params: RunParams, pairWith?: SystemAdapter): Promise<SystemRun> {
  const started = performance.now();
  const base: SystemRun = { system: adapter.key, dataset: dataset.name, status: 'ok', loadAverage1m: Math.round(loadavg()[0]! * 100) / 100 };
  const reason = await adapter.unavailable({ metric: dataset.metric, count: dataset.base.count, dimension: dataset.base.dimension, quick: params.quick });
  if (reason) return { ...base, status: 'skipped', reason };

  gc();
  const rssAfterLoadMiB = rssMiB();
  const peakBeforeSystemMiB = peakRssMiB();
  const dir = mkdtempSync(join(tmpdir(), `vecvault-bench-${adapter.key}-`));
  const spec: SystemSpec = {
    dimension: dataset.base.dimension,
    metric: dataset.metric,
    connectivity: params.connectivity,
    expansionAdd: params.expansionAdd,
    expansionSearch: params.defaultEf,
    dir,
  };
  const { k } = params;
  const d = dataset.base.dimension;
  const nq = Math.min(dataset.queries.count, params.recallQueries ?? Infinity);
  const nb = Math.min(nq, params.batchSize ?? Infinity);
  const queryRow = (i: number) => dataset.queries.data.subarray((i % nq) * d, ((i % nq) + 1) * d);
  let instance: SystemInstance | undefined;
  try {
    // Insert (= full build, including any index training) with the loop monitored.
    instance = await adapter.create(spec);
    const created = instance;
    const insertStart = performance.now();
    const { delay: insertDelay } = await withLoopDelay(async () => {
      await created.insert(dataset.base.data, dataset.base.count);
    });
    const insertSeconds = (performance.now() - insertStart) / 1000;
    const persistStart = performance.now();
    await instance.persist();
    const persistSeconds = (performance.now() - persistStart) / 1000;
    checkAnswer(await instance.query(queryRow(0), k), k, dataset.base.count, `${adapter.key} after insert`);
    await instance.close();
    instance = undefined;
    gc();

    // Open what was persisted, until the first answer; median of `iterations`.
    const openSamples: number[] = [];
    for (let it = 0; it < Math.max(1, params.iterations); it++) {
      if (instance) {
        await instance.close();
        instance = undefined;
        gc();
      }
      const t0 = performance.now();
      instance = await adapter.open(spec);
      const first = await instance.query(queryRow(0), k);
      openSamples.push(performance.now() - t0);
      checkAnswer(first, k, dataset.base.count, `${adapter.key} after open`);
    }
    const opened = instance!;

    // ef sweep on the reopened index: recall over all queries first, then timed passes.
    const sweep: SweepPoint[] = [];
    for (const ef of params.efSweep) {
      const support = await opened.setExpansionSearch(ef);
      if (support === 'unsupported') continue;
      const hasEf = support === 'ok';
      const found: ArrayLike<number>[] = [];
      for (let q = 0; q < nq; q++) found.push(await opened.query(queryRow(q), k));
      const recall = recallAtK(dataset, found, k);
      const batchFound = await opened.queryBatch(dataset.queries.data.subarray(0, nq * d), nq, k);
      if (batchFound.length !== nq) throw new Error(`${adapter.key}: batch returned ${batchFound.length} rows for ${nq} queries`);
      const recallBatch = recallAtK(dataset, batchFound, k);
      const single: number[] = [];
      const batch: number[] = [];
      for (let it = 0; it < params.iterations; it++) {
        single.push(await timedPass(params.minPassMs, async (i) => void (await opened.query(queryRow(i), k))));
        if (adapter.batchIsLoop) continue;
        batch.push(nb * (await timedPass(params.minPassMs, async () => void (await opened.queryBatch(dataset.queries.data.subarray(0, nb * d), nb, k)))));
      }
      sweep.push({
        ef: hasEf ? ef : null,
        recall,
        recallBatch,
        qpsSingle: medianOf(single),
        qpsBatch: medianOf(adapter.batchIsLoop ? single : batch),
        qpsSingleSamples: single,
        qpsBatchSamples: adapter.batchIsLoop ? single : batch,
      });
      if (!hasEf) break;
    }

    // Event loop while serving: one query per macrotask (as a server would), then one batch call.
    await opened.setExpansionSearch(params.defaultEf);
    const { delay: singleDelay } = await withLoopDelay(async () => {
      const until = performance.now() + Math.max(params.minPassMs, 50);
      let i = 0;
      do {
        await opened.query(queryRow(i++), k);
        await yieldToLoop();
      } while (performance.now() < until || i < Math.min(nq, 20));
    });
    const { delay: batchDelay } = await withLoopDelay(async () => {
      await opened.queryBatch(dataset.queries.data.subarray(0, nb * d), nb, k);
    });

    const extras = opened.extras
      ? await opened.extras({
          queries: dataset.queries.data,
          queryCount: nq,
          baseCount: dataset.base.count,
          k,
          minPassMs: params.minPassMs,
          iterations: params.iterations,
        })
      : undefined;

    const note = opened.note?.();
    const peakMiB = peakRssMiB();
    const paired = pairWith ? await pairedPasses(pairWith, opened, dataset, params, spec) : undefined;
    await opened.close();
    instance = undefined;
    const openMedian = medianOf(openSamples);
    return {
      ...base,
      insert: { count: dataset.base.count, seconds: insertSeconds, vectorsPerSecond: dataset.base.count / insertSeconds, loopDelay: insertDelay },
      persistSeconds,
      open: { medianMs: openMedian, samplesMs: openSamples },
      rebuildOverOpen: (insertSeconds * 1000) / openMedian,
      sweep,
      recallQueries: nq,
      batchSize: nb,
      queryLoopDelay: { single: singleDelay, batch: batchDelay },
      memory: { rssAfterLoadMiB, peakBeforeSystemMiB, peakMiB, peakDeltaMiB: peakMiB - rssAfterLoadMiB },
      ...(extras ? { extras } : {}),
      ...(note ? { note } : {}),
      ...(paired ? { paired } : {}),
      durationSeconds: (performance.now() - started) / 1000,
    };
  } catch (error) {
    if (instance) await instance.close().catch(() => undefined);
    return { ...base, status: 'failed', reason: (error as Error).message.split('\n')[0], durationSeconds: (performance.now() - started) / 1000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
