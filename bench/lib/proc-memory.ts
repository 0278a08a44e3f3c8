/** Linux /proc readings the memory diagnostics share (bench/memory-breakdown.ts, bench/memory-peaks.ts). */
import { readFileSync } from 'node:fs';

/** A `/proc/self/status` size field (VmRSS, VmHWM, RssAnon, …) in MiB. */
export function statusMiB(field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
}

/**
 * Resident MiB per class of mapping: named ones, glibc's 64 MiB thread arenas
 * (`arena64M`), other anonymous memory (`anon`), LevelDB's files and other files.
 */
export function residentByMapping(): Record<string, number> {
  const out: Record<string, number> = {};
  let name = '';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (m) {
      const kib = (parseInt(m[2]!, 16) - parseInt(m[1]!, 16)) / 1024;
      name = m[3] || (kib === 65536 || kib === 65532 ? 'arena64M' : 'anon');
      if (name.includes('/')) name = /\.(ldb|log)$/.test(name) ? 'leveldb-file' : 'file';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[name] = (out[name] ?? 0) + Number(rss[1]) / 1024;
  }
  return out;
}
