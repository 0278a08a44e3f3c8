/**
 * The real datasets in `../shared/data` beside the project (fvecs/ivecs with
 * exact ground truth, see that folder's README) and Debian's Fashion-MNIST
 * (gzip'd IDX3), for the recall tests, the benchmarks and the demo. Dev-only.
 * The folder is absent on a fresh clone: `datasetUnavailable` says why a set
 * cannot be loaded, so callers skip with a printed reason instead of failing.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import type { VectorSet } from './vectors.js';

export type { VectorSet } from './vectors.js';

export interface Dataset {
  name: string;
  metric: 'euclidean' | 'cosine';
  base: VectorSet;
  queries: VectorSet;
  /** Exact neighbours, `queries.count * groundTruthK`, 0-based rows of `base`, ties to the smaller row. */
  groundTruth: Int32Array;
  groundTruthK: number;
}

export type DatasetName = 'glove25' | 'glove50' | 'sift5k' | 'fashion-mnist';

export const DATASET_METRICS: Record<DatasetName, Dataset['metric']> = {
  glove25: 'cosine',
  glove50: 'cosine',
  sift5k: 'euclidean',
  'fashion-mnist': 'euclidean',
};

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';

/** The project root (this file is test/support/datasets.ts). */
const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `../shared/data` beside the project root (override with VECVAULT_DATA_DIR). */
export function dataDir(): string {
  if (process.env.VECVAULT_DATA_DIR) return resolve(process.env.VECVAULT_DATA_DIR);
  return resolve(PROJECT_ROOT, '..', 'shared', 'data');
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

/** Writes `.fvecs` (Float32Array) or `.ivecs` (Int32Array) atomically (temp file, then rename). */
export function writeVecs(path: string, values: Float32Array | Int32Array, count: number, dimension: number): void {
  const bytes = new Uint8Array(count * (4 + dimension * 4));
  const view = new DataView(bytes.buffer);
  for (let row = 0; row < count; row++) {
    const offset = row * (4 + dimension * 4);
    view.setInt32(offset, dimension, true);
    for (let j = 0; j < dimension; j++) {
      const v = values[row * dimension + j]!;
      if (values instanceof Float32Array) view.setFloat32(offset + 4 + j * 4, v, true);
      else view.setInt32(offset + 4 + j * 4, v, true);
    }
  }
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
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

/** The files a dataset is read from. */
function sourcesOf(name: DatasetName): { base: string; queries: string; groundTruth: string } {
  const dir = join(dataDir(), name);
  if (name === 'fashion-mnist') {
    return {
      base: join(FASHION_DIR, 'train-images-idx3-ubyte.gz'),
      queries: join(FASHION_DIR, 't10k-images-idx3-ubyte.gz'),
      groundTruth: join(dir, 'groundtruth.ivecs'),
    };
  }
  return { base: join(dir, 'base.fvecs'), queries: join(dir, 'query.fvecs'), groundTruth: join(dir, 'groundtruth.ivecs') };
}

/** Why `name` cannot be loaded here, or `undefined` when it can. */
export function datasetUnavailable(name: DatasetName): string | undefined {
  const dir = join(dataDir(), name);
  if (!existsSync(dir)) return `dataset ${name}: ${dir} is absent (it lives in ../shared/data beside the project)`;
  const files = sourcesOf(name);
  if (name === 'fashion-mnist' && !existsSync(files.base)) {
    return 'dataset fashion-mnist: install Debian package dataset-fashion-mnist for its vectors';
  }
  for (const file of [files.base, files.queries, files.groundTruth]) {
    if (!existsSync(file)) return `dataset ${name}: ${file} is missing`;
  }
  return undefined;
}

/** Reads `base.fvecs`, `query.fvecs` and `groundtruth.ivecs` from `dir` (a generated set's cache, say). */
export function loadVecsDir(dir: string, name: string, metric: Dataset['metric']): Dataset {
  const truth = parseVecs(readFileSync(join(dir, 'groundtruth.ivecs')), 'i');
  return {
    name,
    metric,
    base: readFvecs(join(dir, 'base.fvecs')),
    queries: readFvecs(join(dir, 'query.fvecs')),
    groundTruth: truth.values as Int32Array,
    groundTruthK: truth.dimension,
  };
}

/** Loads a real dataset; throws with `datasetUnavailable`'s reason when it cannot. */
export function loadDataset(name: DatasetName): Dataset {
  const reason = datasetUnavailable(name);
  if (reason) throw new Error(reason);
  if (name !== 'fashion-mnist') return loadVecsDir(join(dataDir(), name), name, DATASET_METRICS[name]);
  const files = sourcesOf(name);
  const gt = parseVecs(readFileSync(files.groundTruth), 'i');
  return {
    name,
    metric: DATASET_METRICS[name],
    base: readIdx3(files.base),
    queries: readIdx3(files.queries),
    groundTruth: gt.values as Int32Array,
    groundTruthK: gt.dimension,
  };
}
