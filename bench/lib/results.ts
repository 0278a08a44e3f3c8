/** The shape of `bench/results/<date>.json`, and the figures derived from it. */
import type { CipherRow } from '../cipher.js';
import type { MachineInfo } from './machine.js';
import type { RunMode } from './data.js';
import type { PairedRun, RunParams, SweepPoint, SystemRun } from './runner.js';
import { medianOf } from './measure.js';

export const RECALL_TARGET = 0.95;

export interface SystemSummary {
  system: string;
  /** Best single-query QPS among sweep points with recall@10 ≥ 0.95 (null: none reached it). */
  qpsAtTargetSingle: number | null;
  efAtTargetSingle: number | null;
  qpsAtTargetBatch: number | null;
  maxRecall: number | null;
  /** Ratios to raw usearch in the same run (null when either side is missing). */
  ratios: {
    qpsAtTargetSingle: number | null;
    qpsAtTargetBatch: number | null;
    insert: number | null;
    open: number | null;
    peakMemory: number | null;
  };
  /** From alternating passes with raw usearch in one process (vecvault only): the steadier QPS ratios. */
  paired?: PairedSummary;
}

export interface PairedSummary {
  qpsAtTargetSingle: number | null;
  qpsAtTargetBatch: number | null;
  efSubject: number | null;
  efReference: number | null;
  /** Per ef: median over repetitions of (subject ÷ reference) QPS. */
  sameEf: { ef: number; recallSubject: number; recallReference: number; single: number; batch: number }[];
}

export function summarisePaired(paired: PairedRun): PairedSummary {
  const best = (pick: (p: PairedRun['points'][number]) => { recall: number; qps: number }) => {
    let out: { ef: number; qps: number } | null = null;
    for (const p of paired.points) {
      const { recall, qps } = pick(p);
      if (recall >= RECALL_TARGET && (!out || qps > out.qps)) out = { ef: p.ef, qps };
    }
    return out;
  };
  const refSingle = best((p) => ({ recall: p.recallReference, qps: medianOf(p.singleReference) }));
  const subSingle = best((p) => ({ recall: p.recallSubject, qps: medianOf(p.singleSubject) }));
  const refBatch = best((p) => ({ recall: p.recallReference, qps: medianOf(p.batchReference) }));
  const subBatch = best((p) => ({ recall: p.recallSubject, qps: medianOf(p.batchSubject) }));
  const ratios = (a: number[], b: number[]) => medianOf(a.map((v, i) => v / b[i]!));
  return {
    qpsAtTargetSingle: ratio(subSingle?.qps, refSingle?.qps),
    qpsAtTargetBatch: ratio(subBatch?.qps, refBatch?.qps),
    efSubject: subSingle?.ef ?? null,
    efReference: refSingle?.ef ?? null,
    sameEf: paired.points.map((p) => ({
      ef: p.ef,
      recallSubject: p.recallSubject,
      recallReference: p.recallReference,
      single: ratios(p.singleSubject, p.singleReference),
      batch: ratios(p.batchSubject, p.batchReference),
    })),
  };
}

export interface DatasetResult {
  name: string;
  description: string;
  metric: string;
  count: number;
  dimension: number;
  queries: number;
  runs: SystemRun[];
  summaries: SystemSummary[];
}

export interface BenchResults {
  format: 1;
  mode: RunMode;
  command: string;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  machine: MachineInfo;
  params: RunParams;
  datasets: DatasetResult[];
  skippedDatasets: { name: string; reason: string }[];
  systems: { key: string; label: string; indexKind: string; batchMode: string }[];
  notRun: { system: string; label: string; reason: string }[];
  cipher: CipherRow[] | { error: string };
}

function bestAtTarget(sweep: SweepPoint[], field: 'single' | 'batch'): { qps: number; ef: number | null } | null {
  let best: { qps: number; ef: number | null } | null = null;
  for (const p of sweep) {
    const recall = field === 'single' ? p.recall : p.recallBatch;
    const qps = field === 'single' ? p.qpsSingle : p.qpsBatch;
    if (recall >= RECALL_TARGET && (!best || qps > best.qps)) best = { qps, ef: p.ef };
  }
  return best;
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return a / b;
}

export function summarise(runs: SystemRun[], reference: string): SystemSummary[] {
  const ref = runs.find((r) => r.system === reference && r.status === 'ok');
  const refSingle = ref?.sweep ? bestAtTarget(ref.sweep, 'single') : null;
  const refBatch = ref?.sweep ? bestAtTarget(ref.sweep, 'batch') : null;
  return runs
    .filter((r) => r.status === 'ok' && r.sweep)
    .map((r) => {
      const single = bestAtTarget(r.sweep!, 'single');
      const batch = bestAtTarget(r.sweep!, 'batch');
      return {
        system: r.system,
        qpsAtTargetSingle: single?.qps ?? null,
        efAtTargetSingle: single?.ef ?? null,
        qpsAtTargetBatch: batch?.qps ?? null,
        maxRecall: r.sweep!.length ? Math.max(...r.sweep!.map((p) => p.recall)) : null,
        ratios: {
          qpsAtTargetSingle: ratio(single?.qps, refSingle?.qps),
          qpsAtTargetBatch: ratio(batch?.qps, refBatch?.qps),
          insert: ratio(r.insert?.vectorsPerSecond, ref?.insert?.vectorsPerSecond),
          open: ratio(r.open?.medianMs, ref?.open?.medianMs),
          peakMemory: ratio(r.memory?.peakDeltaMiB, ref?.memory?.peakDeltaMiB),
        },
        ...(r.paired && r.paired.points.length ? { paired: summarisePaired(r.paired) } : {}),
      };
    });
}
