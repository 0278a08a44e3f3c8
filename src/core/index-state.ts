/**
 * What one open index holds in memory: its manifest, the engine (plaintext
 * vectors), the live-record tables, the write queue and its lifecycle. The
 * role modules beside this file (writes, recovery, maintenance, queries,
 * record reads) each work on it; only this file changes the lifecycle.
 */
import type { GraphCheckSummary } from './graph-repair.js';
import type { AnnEngine, EngineFactory, EngineMetric, EngineOptions, EnginePrecision } from '../engine/types.js';
import { ClosedError, IntegrityError } from '../errors.js';
import type { CatalogEntry } from '../keys/envelope.js';
import type { IndexStore } from '../storage/index-store.js';
import type { Manifest, Metric, StoragePrecision } from '../storage/manifest.js';
import { CallsInFlight } from './calls-in-flight.js';
import { LiveRecords } from './live-records.js';
import { WriteQueue } from './write-queue.js';

const ENGINE_METRIC: Record<Metric, EngineMetric> = { euclidean: 'l2sq', squared_euclidean: 'l2sq', cosine: 'cos', ip: 'ip' };
const ENGINE_PRECISION: Record<StoragePrecision, EnginePrecision> = { float32: 'f32', float16: 'f16', int8: 'i8' };

/**
 * What rotation needs beyond the subkeys, held while the index is open and
 * wiped at release: the KEK the index was opened with (the application's key,
 * or the one its KMS slot unwrapped), the DEK, and the catalog entry now in
 * force. It exposes nothing new: the subkeys it yields are held anyway.
 */
export interface RootKeys {
  kek: Buffer;
  dek: Buffer;
  entry: CatalogEntry;
}

export type OpenedFrom = 'create' | 'snapshot' | 'rebuild';
export type MaintenanceKind = 'snapshot' | 'compaction';

export class IndexState {
  /** The newest committed manifest. */
  manifest: Manifest;
  /** Null until the dimension is fixed (and after release). */
  engine: AnnEngine | null = null;
  readonly live = new LiveRecords();
  readonly queue = new WriteQueue();
  private lifecycle: 'open' | 'closed' | 'deleted' = 'open';
  /** Set when memory no longer matches the store (an engine failure after a commit). */
  private broken: Error | null = null;
  /** Set once a close began: the handle is no longer handed out. */
  closing: Promise<void> | null = null;
  openedFrom: OpenedFrom = 'create';
  /** The last reachability check and repair of the graph (after a rebuild, compaction or snapshot restore). */
  graphCheck: GraphCheckSummary | null = null;
  /** Records written since the newest snapshot; the next snapshot resets it. */
  changedSinceSnapshot = 0;
  /** A snapshot was written (its predecessor's chunks deleted) and LevelDB has not compacted its range since. */
  snapshotUncompacted = false;
  /** `train()` was called: unfiltered queries use the graph even while the index is small (see training.ts). Not persisted. */
  trainedByCall = false;
  /** `train({ nLists })`, reported by `getNLists()`. Not persisted. */
  trainedLists: number | undefined;
  /** Vectors removed from the engine since it was built; they hold memory until a compaction. */
  deadSlots = 0;
  /** Records written since the heap was last trimmed (see trimAfterWrites in writes.ts). */
  writtenSinceTrim = 0;
  /** Maintenance queued or running (at most one of each kind). */
  readonly background = new Set<MaintenanceKind>();
  /** A due background snapshot, waiting for writes to pause. */
  snapshotTimer: NodeJS.Timeout | undefined;
  /** upsert calls begun and not yet settled, counted from before their input is checked (maintenance.ts: the idle snapshot waits for none). */
  writeCalls = 0;
  /** Slots (hex) of users revoked while this state is open: their handles are refused at once. */
  readonly revokedSlots = new Set<string>();
  /** Public calls started and not yet settled: a close waits for them. */
  private readonly calls = new CallsInFlight();

  /** Set by the Client after the key check (null until then, and after release). */
  root: RootKeys | null = null;

  constructor(
    /** Replaced, with new subkeys and index id, when a data-key rotation switches over. */
    public store: IndexStore,
    readonly engines: EngineFactory,
    manifest: Manifest,
    /** Tells the Client this handle is gone (closed, deleted or broken). */
    private readonly onRelease: () => void,
  ) {
    this.manifest = manifest;
  }

  get name(): string {
    return this.store.indexName;
  }

  get isOpen(): boolean {
    return this.lifecycle === 'open';
  }

  /** Open and in step with its store: safe to hand out again from loadIndex. */
  isUsable(): boolean {
    return this.lifecycle === 'open' && this.broken === null && this.closing === null;
  }

  /** Throws the error a call on this handle gets when it cannot run. */
  assertUsable(): void {
    if (this.lifecycle === 'closed') throw new ClosedError(`Index "${this.name}" is closed. Load it again from an open Client.`);
    if (this.lifecycle === 'deleted') throw new ClosedError(`Index "${this.name}" was deleted.`);
    if (this.broken)
      throw new IntegrityError(`Index "${this.name}" is out of step with its store after an earlier failure. Load it again.`, { cause: this.broken });
  }

  /**
   * Throws the error a public call gets when it starts: as assertUsable, and
   * ClosedError once a close began (calls started before it still finish).
   */
  assertCallable(): void {
    this.assertUsable();
    if (this.closing) throw new ClosedError(`Index "${this.name}" is closed. Load it again from an open Client.`);
  }

  /**
   * Runs one public call, counted from its start (after assertCallable) until
   * it settles, so a close that begins meanwhile waits for it (`callsSettled`).
   */
  call<T>(work: () => Promise<T>): Promise<T> {
    this.assertCallable();
    return this.calls.run(work);
  }

  /** Resolves once no public call is in flight. */
  callsSettled(): Promise<void> {
    return this.calls.settled();
  }

  /** Runs write-side work after everything queued before it, while the index is usable. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.queue.run(task, () => this.assertUsable());
  }

  /** Memory can no longer follow the store: refuse further calls; loadIndex opens a fresh handle. */
  markBroken(cause: Error): void {
    this.broken = cause;
    this.onRelease();
  }

  /** Stops handing this index out (a close began). */
  detach(): void {
    this.onRelease();
  }

  newEngine(dimension: number): AnnEngine {
    return this.engines.create(this.engineOptions(dimension));
  }

  engineOptions(dimension: number): EngineOptions {
    const m = this.manifest;
    return { dimension, metric: ENGINE_METRIC[m.metric], precision: ENGINE_PRECISION[m.precision], ...m.indexConfig };
  }

  /** The engine's raw distance as users see it: euclidean is the true L2 distance. */
  toDistance(raw: number): number {
    return this.manifest.metric === 'euclidean' ? Math.sqrt(Math.max(0, raw)) : raw;
  }

  /** Takes the KEK and DEK (the caller's copies, wiped at release) and the entry now in force. */
  holdRoot(root: RootKeys): void {
    this.wipeRoot();
    this.root = root;
  }

  private wipeRoot(): void {
    this.root?.kek.fill(0);
    this.root?.dek.fill(0);
    this.root = null;
  }

  /**
   * Frees memory, wipes the index's subkeys and ends the handle: every later
   * call gets ClosedError. Runs inside the write queue (no write, snapshot or
   * compaction is using the keys); a read in flight checks assertUsable after
   * its last await, before it would decrypt.
   */
  async release(state: 'closed' | 'deleted'): Promise<void> {
    if (this.lifecycle !== 'open') return;
    this.lifecycle = state;
    clearTimeout(this.snapshotTimer);
    this.live.clear();
    const engine = this.engine;
    this.engine = null;
    for (const key of Object.values(this.store.keys)) key.fill(0);
    this.wipeRoot();
    this.onRelease();
    await engine?.close();
  }
}
