/**
 * Readers for the real datasets in `../shared/data` (fvecs/ivecs, see its
 * README) and Debian's Fashion-MNIST (gzip'd IDX3). Used by the demo, the
 * recall tests and the benchmarks. Absent data is reported, never thrown.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

export interface VectorSet {
  /** Row-major, `count * dimension`. */
  data: Float32Array;
  count: number;
  dimension: number;
}

export interface Dataset {
  name: string;
  metric: 'euclidean' | 'cosine';
  base: VectorSet;
  queries: VectorSet;
  /** Exact neighbours, `queries.count * groundTruthK`, 0-based rows of `base`. */
  groundTruth: Int32Array;
  groundTruthK: number;
}

export type DatasetName = 'glove25' | 'glove50' | 'sift5k' | 'fashion-mnist';

const METRICS: Record<DatasetName, Dataset['metric']> = {
  glove25: 'cosine',
  glove50: 'cosine',
  sift5k: 'euclidean',
  'fashion-mnist': 'euclidean',
};

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';

/** `../shared/data` beside the project root (override with VECVAULT_DATA_DIR). */
export function dataDir(): string {
  if (process.env.VECVAULT_DATA_DIR) return resolve(process.env.VECVAULT_DATA_DIR);
  const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return resolve(projectRoot, '..', 'shared', 'data');
}

/** Parses `.fvecs` (`kind = 'f'`) or `.ivecs` (`'i'`): int32 dim, then dim values, per row. */
export function parseVecs(bytes: Uint8Array, kind: 'f' | 'i'): { values: Float32Array | Int32Array; count: number; dimension: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) throw new Error('vecs file is empty');
  const dimension = view.getInt32(0, true);
  const rowBytes = 4 + dimension * 4;
  if (dimension <= 0 || bytes.byteLength % rowBytes !== 0) throw new Error('vecs file is malformed');
  const count = bytes.byteLength / rowBytes;
  const values = kind === 'f' ? new Float32Array(count * dimension) : new Int32Array(count * dimension);
  for (let row = 0; row < count; row++) {
    const offset = row * rowBytes;
    if (view.getInt32(offset, true) !== dimension) throw new Error(`vecs row ${row} has another dimension`);
    for (let j = 0; j < dimension; j++) {
      values[row * dimension + j] = kind === 'f' ? view.getFloat32(offset + 4 + j * 4, true) : view.getInt32(offset + 4 + j * 4, true);
    }
  }
  return { values, count, dimension };
}

function readFvecs(path: string): VectorSet {
  const { values, count, dimension } = parseVecs(readFileSync(path), 'f');
  return { data: values as Float32Array, count, dimension };
}

function readIdx3(path: string): VectorSet {
  const bytes = gunzipSync(readFileSync(path));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, false) !== 0x00000803) throw new Error(`${path} is not IDX3`);
  const count = view.getUint32(4, false);
  const dimension = view.getUint32(8, false) * view.getUint32(12, false);
  const data = new Float32Array(count * dimension);
  for (let i = 0; i < data.length; i++) data[i] = bytes[16 + i]!;
  return { data, count, dimension };
}

/** Why `name` cannot be loaded here, or `undefined` when it can. */
export function datasetUnavailable(name: DatasetName): string | undefined {
  const dir = join(dataDir(), name);
  if (!existsSync(dir)) return `dataset ${name}: ${dir} is absent (it lives in ../shared/data beside the project)`;
  if (name === 'fashion-mnist' && !existsSync(join(FASHION_DIR, 'train-images-idx3-ubyte.gz'))) {
    return 'dataset fashion-mnist: install Debian package dataset-fashion-mnist for its vectors';
  }
  return undefined;
}

export function loadDataset(name: DatasetName): Dataset {
  const reason = datasetUnavailable(name);
  if (reason) throw new Error(reason);
  const dir = join(dataDir(), name);
  const base = name === 'fashion-mnist' ? readIdx3(join(FASHION_DIR, 'train-images-idx3-ubyte.gz')) : readFvecs(join(dir, 'base.fvecs'));
  const queries = name === 'fashion-mnist' ? readIdx3(join(FASHION_DIR, 't10k-images-idx3-ubyte.gz')) : readFvecs(join(dir, 'query.fvecs'));
  const gt = parseVecs(readFileSync(join(dir, 'groundtruth.ivecs')), 'i');
  return { name, metric: METRICS[name], base, queries, groundTruth: gt.values as Int32Array, groundTruthK: gt.dimension };
}

/** Mean recall@k of `found[q]` (row ids of base) against the exact ground truth. */
export function recallAtK(dataset: Pick<Dataset, 'groundTruth' | 'groundTruthK'>, found: ArrayLike<number>[], k: number): number {
  let hits = 0;
  for (let q = 0; q < found.length; q++) {
    const truth = new Set<number>();
    for (let j = 0; j < k; j++) truth.add(dataset.groundTruth[q * dataset.groundTruthK + j]!);
    const row = found[q]!;
    for (let j = 0; j < Math.min(k, row.length); j++) if (truth.has(row[j]!)) hits++;
  }
  return hits / (found.length * k);
}

/**
 * Exact distance for ground truth: 1 − cos for cosine, squared L2 otherwise
 * (same order as L2). Plain loops in float64: a reference, not a fast path.
 */
export function exactDistance(metric: 'euclidean' | 'cosine', a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let l2 = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
    l2 += (a[i]! - b[i]!) ** 2;
  }
  return metric === 'cosine' ? 1 - dot / Math.sqrt(na * nb) : l2;
}

/** Exact top-k among `rows` of `base` (row ids, nearest first; ties by the smaller id): filtered ground truth. */
export function exactTopK(base: VectorSet, rows: readonly number[], query: ArrayLike<number>, k: number, metric: 'euclidean' | 'cosine'): number[] {
  const dim = base.dimension;
  return rows
    .map((i) => [exactDistance(metric, base.data.subarray(i * dim, (i + 1) * dim), query), i] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i);
}

/** Selectivities the filtered-recall tests and bench:filtered measure. */
export const FILTER_SELECTIVITIES = [0.5, 0.1, 0.01, 0.001];

/** A pseudo-random bucket 0..999 per row, uncorrelated with the vectors: metadata `{ bucket }`. */
export function bucketOf(row: number): number {
  return (row * 7919 + 13) % 1000;
}

/** The filter selecting `selectivity` of rows by bucket, and which of `count` rows it matches. */
export function selectivityCase(selectivity: number, count: number): { limit: number; filters: { bucket: { $lt: number } }; matching: number[] } {
  const limit = Math.round(selectivity * 1000);
  const matching: number[] = [];
  for (let i = 0; i < count; i++) if (bucketOf(i) < limit) matching.push(i);
  return { limit, filters: { bucket: { $lt: limit } }, matching };
}

/** Deterministic PRNG (mulberry32) so generated data is reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Gaussian clusters: `count` vectors around `clusters` random centres. */
export function clusteredVectors(count: number, dimension: number, options: { clusters?: number; seed?: number; spread?: number } = {}): VectorSet {
  const rand = seededRandom(options.seed ?? 42);
  const clusters = options.clusters ?? 64;
  const spread = options.spread ?? 0.15;
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const centres = new Float32Array(clusters * dimension);
  for (let i = 0; i < centres.length; i++) centres[i] = gauss();
  const data = new Float32Array(count * dimension);
  for (let i = 0; i < count; i++) {
    const c = Math.floor(rand() * clusters);
    for (let j = 0; j < dimension; j++) data[i * dimension + j] = centres[c * dimension + j]! + spread * gauss();
  }
  return { data, count, dimension };
}
