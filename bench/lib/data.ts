/**
 * Which datasets a run uses, and loading them in the child processes.
 * Real sets come from `../shared/data` via test/support/datasets.ts; generated
 * sets (synthetic clusters, the smoke test's tiny set) are written once as
 * fvecs/ivecs into a cache directory with exact ground truth from
 * test/support/vectors.ts (the tests' brute force), so every system is scored
 * against the same exact answers.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { datasetUnavailable, loadDataset, loadVecsDir, writeVecs, type Dataset, type DatasetName } from '../../test/support/datasets.js';
import { clusteredVectors, exactNeighbours, type VectorSet } from '../../test/support/vectors.js';
import type { BenchMetric } from '../systems/types.js';

export interface DatasetPlan {
  name: string;
  metric: BenchMetric;
  /** `shared`: ../shared/data (or Debian's Fashion-MNIST); `files`: generated into `dir`. */
  source: 'shared' | 'files';
  dir?: string;
  description: string;
}

export interface GeneratedSpec {
  name: string;
  count: number;
  queries: number;
  dimension: number;
  clusters: number;
  metric: BenchMetric;
  seed: number;
}

export type RunMode = 'full' | 'quick' | 'tiny';

const SHARED_DESCRIPTIONS: Record<DatasetName, string> = {
  glove25: 'GloVe Twitter 25-d, 11,425 × 25, 500 queries, cosine',
  sift5k: 'SIFT, 5,000 × 128, 100 queries, euclidean',
  glove50: 'GloVe 6B 50-d, 9,500 × 50, 500 queries, cosine',
  'fashion-mnist': 'Fashion-MNIST, 60,000 × 784, 10,000 queries, euclidean',
};

const SHARED_METRICS: Record<DatasetName, BenchMetric> = {
  glove25: 'cosine',
  sift5k: 'euclidean',
  glove50: 'cosine',
  'fashion-mnist': 'euclidean',
};

export function syntheticSpec(mode: RunMode): GeneratedSpec {
  if (mode === 'full') return { name: 'synthetic-200k', count: 200_000, queries: 200, dimension: 384, clusters: 256, metric: 'cosine', seed: 42 };
  if (mode === 'quick') return { name: 'synthetic-10k', count: 10_000, queries: 200, dimension: 96, clusters: 64, metric: 'cosine', seed: 42 };
  return { name: 'tiny', count: 600, queries: 20, dimension: 16, clusters: 8, metric: 'cosine', seed: 7 };
}

/** The datasets of a run and the reasons the others were skipped. */
export function planDatasets(mode: RunMode, only?: readonly string[]): { plans: DatasetPlan[]; skipped: { name: string; reason: string }[] } {
  const plans: DatasetPlan[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const wanted = (name: string) => !only || only.includes(name);
  if (mode !== 'tiny') {
    for (const name of ['glove25', 'sift5k', 'glove50', 'fashion-mnist'] as const) {
      if (!wanted(name)) continue;
      if (name === 'fashion-mnist' && mode === 'quick') {
        skipped.push({ name, reason: 'quick run: Fashion-MNIST (60k × 784) only runs in the full suite' });
        continue;
      }
      const reason = datasetUnavailable(name);
      if (reason) skipped.push({ name, reason });
      else plans.push({ name, metric: SHARED_METRICS[name], source: 'shared', description: SHARED_DESCRIPTIONS[name] });
    }
  }
  const synth = syntheticSpec(mode);
  if (wanted(synth.name) || wanted('synthetic')) {
    plans.push({
      name: synth.name,
      metric: synth.metric,
      source: 'files',
      dir: generatedDir(synth),
      description: `seeded Gaussian clusters (${synth.clusters} centres, seed ${synth.seed}), ${synth.count.toLocaleString('en-US')} × ${synth.dimension}, ${synth.queries} queries, ${synth.metric}`,
    });
  }
  return { plans, skipped };
}

function cacheRoot(): string {
  return process.env.VECVAULT_BENCH_CACHE ?? join(tmpdir(), 'vecvault-bench-cache');
}

function generatedDir(spec: GeneratedSpec): string {
  return join(cacheRoot(), `${spec.name}-n${spec.count}-q${spec.queries}-d${spec.dimension}-c${spec.clusters}-s${spec.seed}-${spec.metric}`);
}

/** Writes the generated set of `plan` if its cache is missing. Returns seconds spent. */
export function ensureGenerated(spec: GeneratedSpec, k = 10): number {
  const dir = generatedDir(spec);
  if (existsSync(join(dir, 'groundtruth.ivecs'))) return 0;
  const start = performance.now();
  mkdirSync(dir, { recursive: true });
  const all = clusteredVectors(spec.count + spec.queries, spec.dimension, { clusters: spec.clusters, seed: spec.seed });
  const base: VectorSet = { data: all.data.subarray(0, spec.count * spec.dimension), count: spec.count, dimension: spec.dimension };
  const queries: VectorSet = { data: all.data.subarray(spec.count * spec.dimension), count: spec.queries, dimension: spec.dimension };
  const truth = exactNeighbours(base, queries, spec.metric, k);
  writeVecs(join(dir, 'base.fvecs'), base.data, base.count, base.dimension);
  writeVecs(join(dir, 'query.fvecs'), queries.data, queries.count, queries.dimension);
  writeVecs(join(dir, 'groundtruth.ivecs'), truth, queries.count, k);
  return (performance.now() - start) / 1000;
}

/** Loads a planned dataset (in the child process that benchmarks one system). */
export function loadPlan(plan: DatasetPlan): Dataset {
  if (plan.source === 'shared') return loadDataset(plan.name as DatasetName);
  return loadVecsDir(plan.dir!, plan.name, plan.metric);
}
