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
 *   a later read faults them back in.
 * Both are no-ops where they do not apply (malloc_trim: glibc; mappings: Linux).
 */
import { loadNativeAddon } from './native-addon.js';

interface MemoryCalls {
  trimMemory(): boolean;
  releaseMappedPages(dir: string): number;
}

/** Unmaps this process's resident pages of the files mapped from under `storeDir` (a real path). */
export function releaseMappedPages(storeDir: string): void {
  (loadNativeAddon() as MemoryCalls).releaseMappedPages(storeDir);
}

/** Trims the heap and unmaps the resident pages of files mapped from under `storeDir` (a real path). */
export function releaseMemory(storeDir?: string): void {
  const addon = loadNativeAddon() as MemoryCalls;
  if (storeDir !== undefined) addon.releaseMappedPages(storeDir);
  addon.trimMemory();
}
