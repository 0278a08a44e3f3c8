/**
 * Dev-only vector tooling shared by the tests, bench/ and examples/ (never
 * product code; nothing here imports vitest, so bench/ and examples/ can use
 * it): seeded random and clustered vectors, reference distances, the one
 * exact top-k every ground truth comes from, recall, and the selectivity
 * cases of the filtered tests and bench:filtered.
 */

/** `count` vectors of `dimension` floats, row-major. */
export interface VectorSet {
  /** Row-major, `count * dimension`. */
  data: Float32Array;
  count: number;
  dimension: number;
}

/** Row `i` of `set` (a view, not a copy). */
export function rowOf(set: VectorSet, i: number): Float32Array {
  return set.data.subarray(i * set.dimension, (i + 1) * set.dimension);
}

/** Every row of `set` as views. */
export function rowsOf(set: VectorSet): Float32Array[] {
  return Array.from({ length: set.count }, (_, i) => rowOf(set, i));
}

// ------------------------------------------------------------ generators --

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

/** `count` vectors with components uniform in [-1, 1), as float64 arrays. */
export function randomVectors(count: number, dimension: number, seed = 1): number[][] {
  const rand = seededRandom(seed);
  return Array.from({ length: count }, () => Array.from({ length: dimension }, () => rand() * 2 - 1));
}

/**
 * The same stream as `randomVectors` (same seed, same values before float32
 * rounding), flat in one Float32Array; `normalize` scales each row to unit length.
 */
export function randomFlat(count: number, dimension: number, seed: number, normalize = false): Float32Array {
  const next = seededRandom(seed);
  const out = new Float32Array(count * dimension);
  for (let i = 0; i < count; i++) {
    let norm = 0;
    for (let j = 0; j < dimension; j++) {
      const v = next() * 2 - 1;
      out[i * dimension + j] = v;
      norm += v * v;
    }
    if (normalize) for (let j = 0; j < dimension; j++) out[i * dimension + j]! /= Math.sqrt(norm);
  }
  return out;
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

/** Rows scaled to unit length (zero rows stay zero), as float32. */
export function normalized(set: VectorSet): VectorSet {
  const out = new Float32Array(set.data.length);
  for (let i = 0; i < set.count; i++) {
    let norm = 0;
    for (let j = 0; j < set.dimension; j++) norm += set.data[i * set.dimension + j]! ** 2;
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let j = 0; j < set.dimension; j++) out[i * set.dimension + j] = set.data[i * set.dimension + j]! * inv;
  }
  return { data: out, count: set.count, dimension: set.dimension };
}

// ------------------------------------------------------------- distances --

/**
 * Metric names as the API (`euclidean`, `squared_euclidean`, `cosine`, `ip`)
 * and the native engine (`l2sq`, `cos`, `ip`) spell them.
 */
export type DistanceMetric = 'euclidean' | 'squared_euclidean' | 'l2sq' | 'cosine' | 'cos' | 'ip';

/** A distance over `n` components of `a` from `ao` and `b` from `bo` (offsets avoid a view per row). */
type Kernel = (a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, n: number) => number;

const l2sqKernel: Kernel = (a, ao, b, bo, n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const d = a[ao + i]! - b[bo + i]!;
    s += d * d;
  }
  return s;
};

const cosineKernel: Kernel = (a, ao, b, bo, n) => {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[ao + i]!;
    const y = b[bo + i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return 1 - dot / Math.sqrt(na * nb);
};

const ipKernel: Kernel = (a, ao, b, bo, n) => {
  let dot = 0;
  for (let i = 0; i < n; i++) dot += a[ao + i]! * b[bo + i]!;
  return 1 - dot;
};

/**
 * How each metric ranks (`rank`, float64 plain loops: a reference, not a fast
 * path) and turns a rank value into the distance it reports. Euclidean ranks
 * on the squared distance (same order, no square root per row).
 */
const METRICS: Record<DistanceMetric, { rank: Kernel; report: (rank: number) => number }> = {
  euclidean: { rank: l2sqKernel, report: Math.sqrt },
  squared_euclidean: { rank: l2sqKernel, report: (d) => d },
  l2sq: { rank: l2sqKernel, report: (d) => d },
  cosine: { rank: cosineKernel, report: (d) => d },
  cos: { rank: cosineKernel, report: (d) => d },
  ip: { rank: ipKernel, report: (d) => d },
};

/** Euclidean distance. */
export function l2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return Math.sqrt(l2sqKernel(a, 0, b, 0, a.length));
}

/** Squared euclidean distance. */
export function l2sq(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return l2sqKernel(a, 0, b, 0, a.length);
}

/** 1 − cosine similarity. */
export function cosineDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return cosineKernel(a, 0, b, 0, a.length);
}

/** 1 − dot product (usearch's inner-product distance). */
export function ipDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return ipKernel(a, 0, b, 0, a.length);
}

/** The distance `metric` reports between `a` and `b`. */
export function distance(metric: DistanceMetric, a: ArrayLike<number>, b: ArrayLike<number>): number {
  const m = METRICS[metric];
  return m.report(m.rank(a, 0, b, 0, a.length));
}

// ------------------------------------------------------------ exact top-k --

export interface Neighbour {
  /** Row of the base set. */
  row: number;
  distance: number;
}

export interface TopKOptions {
  /** A named metric (default `euclidean`) or any distance function of (base row, query). */
  metric?: DistanceMetric | ((row: ArrayLike<number>, query: ArrayLike<number>) => number);
  /** Only these rows are candidates (filtered ground truth); default every row. */
  rows?: readonly number[];
}

/**
 * Exact top-k by brute force — the one ground truth of the tests and benchmarks.
 * The k nearest rows of `base` to `query`, nearest first, ties to the smaller
 * row; fewer than k when there are fewer candidates. `base` is a flat
 * VectorSet or an array of vectors.
 */
export function exactTopK(base: VectorSet | readonly ArrayLike<number>[], query: ArrayLike<number>, k: number, options: TopKOptions = {}): Neighbour[] {
  const metric = options.metric ?? 'euclidean';
  const flat = !Array.isArray(base);
  const count = flat ? (base as VectorSet).count : (base as readonly ArrayLike<number>[]).length;
  let rank: (row: number) => number;
  let report: (rank: number) => number = (d) => d;
  if (typeof metric === 'function') {
    const rows = base as readonly ArrayLike<number>[];
    rank = flat ? (row) => metric(rowOf(base as VectorSet, row), query) : (row) => metric(rows[row]!, query);
  } else {
    const m = METRICS[metric];
    report = m.report;
    if (flat) {
      const { data, dimension } = base as VectorSet;
      rank = (row) => m.rank(data, row * dimension, query, 0, dimension);
    } else {
      const rows = base as readonly ArrayLike<number>[];
      rank = (row) => m.rank(rows[row]!, 0, query, 0, query.length);
    }
  }
  // Bounded insertion into the k best so far, ordered by (distance, row).
  const bestRank: number[] = [];
  const bestRow: number[] = [];
  const consider = (row: number) => {
    const d = rank(row);
    const full = bestRank.length === k;
    if (k <= 0 || (full && (d > bestRank[k - 1]! || (d === bestRank[k - 1]! && row > bestRow[k - 1]!)))) return;
    let pos = full ? k - 1 : bestRank.length;
    while (pos > 0 && (bestRank[pos - 1]! > d || (bestRank[pos - 1]! === d && bestRow[pos - 1]! > row))) {
      bestRank[pos] = bestRank[pos - 1]!;
      bestRow[pos] = bestRow[pos - 1]!;
      pos--;
    }
    bestRank[pos] = d;
    bestRow[pos] = row;
  };
  if (options.rows) for (const row of options.rows) consider(row);
  else for (let row = 0; row < count; row++) consider(row);
  return bestRow.map((row, i) => ({ row, distance: report(bestRank[i]!) }));
}

/** Exact top-k row indices of `base` for `query` under a distance function (default euclidean). */
export function bruteForce(
  base: readonly ArrayLike<number>[],
  query: ArrayLike<number>,
  k: number,
  distanceFn: (a: ArrayLike<number>, b: ArrayLike<number>) => number = l2,
): number[] {
  return exactTopK(base, query, k, { metric: distanceFn }).map((n) => n.row);
}

/**
 * Exact k nearest rows of `base` for every query (`queries.count * k`, −1 where
 * there are fewer than k rows), as in ../shared/data's ground truth: cosine is
 * ranked on L2-normalised vectors (distance 1 − dot), euclidean on squared L2.
 */
export function exactNeighbours(base: VectorSet, queries: VectorSet, metric: 'euclidean' | 'cosine', k: number): Int32Array {
  const b = metric === 'cosine' ? normalized(base) : base;
  const q = metric === 'cosine' ? normalized(queries) : queries;
  const out = new Int32Array(queries.count * k).fill(-1);
  for (let qi = 0; qi < queries.count; qi++) {
    const hits = exactTopK(b, rowOf(q, qi), k, { metric: metric === 'cosine' ? 'ip' : 'l2sq' });
    hits.forEach((h, j) => (out[qi * k + j] = h.row));
  }
  return out;
}

// ---------------------------------------------------------------- recall --

/**
 * Mean recall: the share of `truth[q]` found in `found[q]` over all queries
 * (each true neighbour counts once, however often an answer repeats it).
 */
export function recall<T>(found: readonly ArrayLike<T>[], truth: readonly ArrayLike<T>[]): number {
  let hits = 0;
  let total = 0;
  truth.forEach((expected, q) => {
    const got = new Set(Array.from(found[q] ?? []));
    for (let j = 0; j < expected.length; j++) if (got.has(expected[j]!)) hits++;
    total += expected.length;
  });
  return hits / total;
}

/**
 * Mean recall@k of `found[q]` (row ids of base; only the first k count)
 * against exact ground truth stored `groundTruthK` per query.
 */
export function recallAtK(dataset: { groundTruth: ArrayLike<number>; groundTruthK: number }, found: readonly ArrayLike<number>[], k: number): number {
  const truth = found.map((_, q) => Array.from({ length: k }, (_, j) => dataset.groundTruth[q * dataset.groundTruthK + j]!));
  return recall(
    found.map((row) => Array.from(row).slice(0, k)),
    truth,
  );
}

// ---------------------------------------------------------- selectivity --

/** Selectivities the filtered-recall tests and bench:filtered measure. */
export const FILTER_SELECTIVITIES = [0.5, 0.1, 0.01, 0.001];

/** A pseudo-random bucket 0..999 per row, uncorrelated with the vectors: metadata `{ bucket }`. */
export function bucketOf(row: number): number {
  return (row * 7919 + 13) % 1000;
}

/** The filter selecting `selectivity` of rows by bucket, and which of `count` rows it matches (ascending). */
export function selectivityCase(selectivity: number, count: number): { limit: number; filters: { bucket: { $lt: number } }; matching: number[] } {
  const limit = Math.round(selectivity * 1000);
  const matching: number[] = [];
  for (let i = 0; i < count; i++) if (bucketOf(i) < limit) matching.push(i);
  return { limit, filters: { bucket: { $lt: limit } }, matching };
}
