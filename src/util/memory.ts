/**
 * Hands freed heap pages back to the OS (glibc's malloc_trim(0), through the
 * addon). After large transient work (a snapshot, an open, a compaction)
 * glibc otherwise keeps the freed chunks resident: measured at 200k × 96,
 * tens of MB per snapshot or open (docs/performance.md). A no-op where
 * there is no malloc_trim (musl, macOS, Windows). Returns whether memory was released.
 */
import { loadNativeAddon } from './native-addon.js';

export function returnFreedMemory(): boolean {
  return (loadNativeAddon() as { trimMemory(): boolean }).trimMemory();
}
