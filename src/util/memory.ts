/**
 * Gives memory left over from large transient work back to the OS, through
 * the addon (native/addon.cc). Measured at 200k × 96 and 50k × 256
 * (docs/performance.md, "Memory"):
 * - glibc keeps freed heap pages (the sealed chunks of a snapshot, the
 *   table's encoding, LevelDB's read buffers): malloc_trim(0) returns them.
 * - LevelDB reads its table files through mmap, so every snapshot chunk read
 *   at open (or written and re-read by a compaction) stays counted in the
 *   process's resident set while the table is open: one more copy of the
 *   graph after an open. MADV_DONTNEED on those shared read-only mappings
 *   drops the pages from this process only; they stay in the page cache and
 *   a later read faults them back in. Each range is checked again right
 *   before its madvise (PROCMAP_QUERY, Linux 6.11+: still that shared
 *   read-only file mapping?), since on private memory mapped at the same
 *   address after LevelDB unmapped a table MADV_DONTNEED would zero it;
 *   without the ioctl nothing is released.
 * Both are no-ops where they do not apply (malloc_trim: glibc; mappings: Linux).
 */
import { loadNativeAddon } from './native-addon.js';

interface MemoryCalls {
  trimMemory(): boolean;
  tuneAllocator(mmapThreshold: number, trimThreshold: number, topPad: number): boolean;
  trimMemoryAsync(): Promise<boolean>;
  memoryPressure(level: 1 | 2): boolean;
  releaseMappedPages(dir: string): number;
  releaseMappedPagesAsync(dir: string, minShared?: number): Promise<MappedRelease>;
}

/**
 * glibc's malloc settings vecvault fixes for the process (`tuneAllocator`). Left to adapt, freeing a large mapped block
 * raises the mmap threshold to its size (up to 32 MiB) and the trim threshold to twice that: after a bulk load's
 * multi-MB buffers came and went, the freed tops of the main heap and of the pool threads' arenas stayed resident
 * (malloc_trim does not shrink a thread arena's top). Fixed, blocks under 32 MiB come from the heaps and are reused,
 * and a heap whose free top exceeds 4 MiB gives it back down to 1 MiB. Paired build-only runs at 200k × 96
 * (docs/performance.md, "Thirteenth round"): steady growth after the build 129 MiB against 145–162 adaptive, both
 * peaks ~192 against 207–226 (raw usearch 115). A 1 MiB trim threshold kept less (115–120 steady) but made the close
 * ~0.8 s slower at 200k (1.8–1.9 s against 0.9–1.1): LevelDB's compaction of the 1 MiB snapshot chunks grew and shrank
 * the heap for each one.
 */
export const ALLOCATOR_SETTINGS = { mmapThreshold: 32 << 20, trimThreshold: 4 << 20, topPad: 1 << 20 } as const;

/** Whether the settings were applied: undefined until the first graph is made; false when skipped or not glibc. */
let allocatorTunedState: boolean | undefined;

/** Whether `tuneAllocator` ran and set the settings (undefined: not asked yet in this process). For tests and diagnostics. */
export function allocatorTuned(): boolean | undefined {
  return allocatorTunedState;
}

/**
 * Applies ALLOCATOR_SETTINGS once per process, when the first graph is made (engine/native.ts), unless the host chose:
 * `VECVAULT_MALLOC_TUNING=0`, or any of the three already set through `GLIBC_TUNABLES` or `MALLOC_*_` variables (the
 * host's own choice wins). Process-wide by nature (mallopt); a no-op off glibc. Returns whether the settings are ours.
 */
export function tuneAllocator(env: NodeJS.ProcessEnv = process.env): boolean {
  if (allocatorTunedState !== undefined) return allocatorTunedState;
  const hostChose =
    env.VECVAULT_MALLOC_TUNING === '0' ||
    env.MALLOC_MMAP_THRESHOLD_ !== undefined ||
    env.MALLOC_TRIM_THRESHOLD_ !== undefined ||
    env.MALLOC_TOP_PAD_ !== undefined ||
    /glibc\.malloc\.(mmap_threshold|trim_threshold|top_pad)/.test(env.GLIBC_TUNABLES ?? '');
  const { mmapThreshold, trimThreshold, topPad } = ALLOCATOR_SETTINGS;
  allocatorTunedState = !hostChose && (loadNativeAddon() as MemoryCalls).tuneAllocator(mmapThreshold, trimThreshold, topPad);
  return allocatorTunedState;
}

/** What a release on the pool did: whether it ran (or the growth gate skipped it), and resident shared bytes after it (-1: unknown). */
export interface MappedRelease {
  ran: boolean;
  released: number;
  shared: number;
}

/** Store directories with a release running on the pool: a release asked for meanwhile is dropped (the running one covers it). */
const releasing = new Map<string, Promise<boolean>>();

/**
 * A release is skipped unless the process's resident file-backed pages grew
 * by at least this much since the last one ended. After a large write the
 * releases used to run every 50 ms for 2 s, so through a 1M build one was
 * always running (~55 ms each at that size, on a pool thread beside the two
 * graph-insert lanes); yet without them the build's file-backed RSS stayed
 * within 50–68 MB, and with them the build was 10 % slower (569 vs 514 s) and
 * its three stalls over 50 ms (113–168 ms) each sat beside a release
 * (bench/results/STALLS-1000000.md). Where table pages do pile up (an open's
 * stream, close's compaction of the snapshot range: ~450 MB at 1M) every
 * release still runs.
 */
const RELEASE_MIN_GROWTH = 8 << 20;
/** Resident file-backed and shared bytes when the last release ended (undefined: none yet, or unknown). */
let sharedAfterRelease: number | undefined;

/**
 * A release ended, leaving `shared` resident shared bytes (as the pool task read them, in the kernel's page size; -1:
 * unknown): later ones are measured from here. Unknown leaves no mark, so the next release runs.
 */
function markReleased(shared: number): void {
  sharedAfterRelease = shared < 0 ? undefined : shared;
}

/**
 * Unmaps this process's resident pages of the files mapped from under
 * `storeDir` (a real path), on a pool thread: reading /proc/self/maps and the
 * madvise calls wait on the process's mmap lock, which compactions and
 * allocations elsewhere hold (57 ms on the main thread once at 1M). Skipped
 * while too few such pages came in since the last release (RELEASE_MIN_GROWTH),
 * which the pool task checks (a read of /proc/self/statm waits on the same lock: 0.1–7 ms on the main thread during
 * an open's stream). Returns the release, which settles to whether it ran (never rejects), or undefined
 * while one for the same directory is still running.
 */
export function releaseMappedPages(storeDir: string, minGrowth = RELEASE_MIN_GROWTH): Promise<boolean> | undefined {
  if (releasing.has(storeDir)) return undefined;
  const minShared = sharedAfterRelease === undefined ? 0 : sharedAfterRelease + minGrowth;
  const release = (loadNativeAddon() as MemoryCalls)
    .releaseMappedPagesAsync(storeDir, minShared)
    .then(
      ({ ran, shared }) => {
        if (ran) markReleased(shared);
        return ran;
      },
      () => false, // best effort: a failed release leaves pages counted, nothing else
    )
    .finally(() => releasing.delete(storeDir));
  releasing.set(storeDir, release);
  return release;
}

/** After a memory-reducing GC was asked for: long enough for V8's incremental marking to finish between the host's tasks. */
const TRIM_AFTER_GC_MS = 1000;
/**
 * Writes must have paused this long before the GC is asked for: during a bulk
 * load the young generation is refilled at once, and a memory-reducing GC
 * marks the host application's whole heap, which it should not pay every
 * few thousand records.
 */
const IDLE_BEFORE_GC_MS = 500;
let idleTimer: NodeJS.Timeout | undefined;
/** A reduction was asked for and has not run yet. */
let wanted = false;
/** Write-queue tasks running in this process (every index's): the reduction waits for none. */
let busy = 0;

/**
 * Once writes have paused (IDLE_BEFORE_GC_MS after the last write-queue task
 * ended, none running), asks V8 for a memory-reducing GC without a pause (a
 * moderate memory-pressure notification: incremental marking, finished
 * between the event loop's tasks; native/addon.cc `MemoryPressure`), and
 * trims glibc's heap once it has likely finished. That GC shrinks the young
 * generation a burst of allocation grew (~23 MiB resident after a 200k × 96
 * build in calls of 10,000, which a plain GC keeps) and frees dead
 * ArrayBuffers' backing stores, which the trim then returns. A full GC at
 * once (critical pressure) would pause 30–75 ms per call on this 2-core
 * machine: over the event-loop budget. Even the incremental one ends in a
 * compacting pause (22–80 ms measured at 500k during a build): it must not
 * land inside a write, a snapshot or a close, so a task that starts
 * postpones it (`heapWorkStarted`).
 */
export function reduceHeapSoon(): void {
  wanted = true;
  if (busy === 0) armReduction();
}

/** A write-queue task started: a pending reduction waits until it ends. */
export function heapWorkStarted(): void {
  busy++;
  clearTimeout(idleTimer);
  idleTimer = undefined;
}

/** A write-queue task ended: a pending reduction runs once the process stayed idle IDLE_BEFORE_GC_MS. */
export function heapWorkEnded(): void {
  busy = Math.max(0, busy - 1);
  if (busy === 0 && wanted) armReduction();
}

/** Whether a reduction was asked for and has not run yet (tests). */
export function heapReductionPending(): boolean {
  return wanted;
}

function armReduction(): void {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    idleTimer = undefined;
    if (busy > 0) return; // heapWorkEnded arms it again
    wanted = false;
    const addon = loadNativeAddon() as MemoryCalls;
    addon.memoryPressure(1);
    // Trimmed either way: without the symbol, what plain GCs freed meanwhile still goes back. On a pool
    // thread: malloc_trim walks every arena (5–19 ms on the main thread during a 1M build).
    setTimeout(() => void trimOnce(addon), TRIM_AFTER_GC_MS).unref();
  }, IDLE_BEFORE_GC_MS);
  idleTimer.unref();
}

/** The trim running on the pool for `releaseMemory`'s gated form and the idle reduction: another asked for meanwhile joins it. */
let trimming: Promise<void> | undefined;

function trimOnce(addon: MemoryCalls): Promise<void> {
  const done = () => {
    trimming = undefined;
  };
  trimming ??= addon.trimMemoryAsync().then(done, done);
  return trimming;
}

/**
 * Trims the heap and unmaps the resident pages of files mapped from under `storeDir` (a real path). `background`: both
 * on the libuv pool (the end of an open: 2–8 ms on the main thread before `loadIndex` could return), and the promise
 * settles once both ran (a caller that wants the memory back before its next step awaits it; others need not).
 * `gated` (between a bulk load's calls): the mapped pages only if enough came in since the last release
 * (RELEASE_MIN_GROWTH), or else the release already running for the directory, then the trim once that settled, joining
 * a trim already running (the idle reduction's too): never the two at once.
 */
export function releaseMemory(storeDir?: string, { background = false, gated = false }: { background?: boolean; gated?: boolean } = {}): Promise<void> {
  const addon = loadNativeAddon() as MemoryCalls;
  if (gated) {
    // During a bulk load: the two ran on two pool threads after every call, beside the graph's insert lanes, and 5
    // of a 1M build's 9 stalls over 50 ms sat beside them (on 2 vCPUs the main thread waited for a core). The
    // writes' own gated releases (KvStore) already drop the table pages as they pile up.
    // A release already running for the directory (a stream's, a write's) is waited for, not run beside.
    const mapped = storeDir !== undefined ? (releaseMappedPages(storeDir) ?? releasing.get(storeDir)) : undefined;
    return Promise.resolve(mapped).then(() => trimOnce(addon));
  }
  if (background) {
    // Not through releaseMappedPages: one running already (a stream's) may have read the maps before the last reads.
    const mapped = storeDir !== undefined ? addon.releaseMappedPagesAsync(storeDir).then(({ shared }) => markReleased(shared)) : undefined;
    const trimmed = addon.trimMemoryAsync();
    return Promise.all([mapped, trimmed]).then(() => undefined);
  }
  if (storeDir !== undefined) {
    addon.releaseMappedPages(storeDir);
    markReleased(-1); // no figure read here (/proc waits on the mmap lock): the next gated release runs
  }
  addon.trimMemory();
  return Promise.resolve();
}
