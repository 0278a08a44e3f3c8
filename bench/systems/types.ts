/**
 * The one interface every benchmarked system implements, so the runner can
 * measure them all the same way. Rows of the dataset are the ids: row `i` of
 * the base set is inserted under id `i`, and queries answer row ids.
 */

export type EfSupport = 'ok' | 'unsupported' | 'no-knob';

export type BenchMetric = 'euclidean' | 'cosine';

export interface SystemSpec {
  dimension: number;
  metric: BenchMetric;
  /** HNSW M. */
  connectivity: number;
  /** HNSW ef_construction. */
  expansionAdd: number;
  /** HNSW ef_search used until `setExpansionSearch` changes it. */
  expansionSearch: number;
  /** An empty directory the system may persist into. */
  dir: string;
}

export interface SystemInstance {
  /** Inserts `count` rows (`vectors` is row-major) under ids `0..count-1`. */
  insert(vectors: Float32Array, count: number): Promise<void>;
  /** Makes the index durable on disk under `spec.dir` (a no-op where every insert already is). */
  persist(): Promise<void>;
  /**
   * Sets ef for later queries: `ok`; `unsupported` when this ef cannot be set
   * now (the point is skipped); `no-knob` when the system has no ef at all
   * (one point is measured, e.g. an exact scan).
   */
  setExpansionSearch(ef: number): Promise<EfSupport>;
  /** One query, k nearest row ids, best first. */
  query(vector: Float32Array, k: number): Promise<ArrayLike<number>>;
  /** Many queries at once (the system's batch API, or concurrent calls where it has none). */
  queryBatch(vectors: Float32Array, count: number, k: number): Promise<ArrayLike<number>[]>;
  /** A caveat for the report about how this instance was measured, if any. */
  note?(): string | undefined;
  /** System-specific figures measured after the common ones (vecvault: metadata and get costs). */
  extras?(ctx: ExtrasContext): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export interface ExtrasContext {
  queries: Float32Array;
  queryCount: number;
  baseCount: number;
  k: number;
  minPassMs: number;
  iterations: number;
}

export interface SystemAdapter {
  /** Stable key used on the command line and in the JSON. */
  readonly key: string;
  /** Name in the report. */
  readonly label: string;
  /** What index the system uses here, for the report. */
  readonly indexKind: string;
  /** How "batched" queries are issued, for the report. */
  readonly batchMode: string;
  /** True when the system has no batch path (batched = a loop of single queries): batched QPS is then the single-query figure. */
  readonly batchIsLoop?: boolean;
  /** Why it cannot run on this dataset here, or undefined when it can. */
  unavailable(info: { metric: BenchMetric; count: number; dimension: number; quick: boolean }): Promise<string | undefined>;
  create(spec: SystemSpec): Promise<SystemInstance>;
  /** Opens what `persist()` left in `spec.dir`. */
  open(spec: SystemSpec): Promise<SystemInstance>;
}
