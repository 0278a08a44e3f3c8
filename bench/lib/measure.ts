/** Timing helpers: medians, time-bounded passes, event-loop delay, memory. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';

export function medianOf(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Calls `op(0), op(1), …` back to back until at least `minMs` have passed
 * (and at least `minOps` calls); resolves to operations per second.
 */
export async function timedPass(minMs: number, op: (i: number) => Promise<void> | void, minOps = 1): Promise<number> {
  let i = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    await op(i++);
    elapsed = performance.now() - start;
  } while (elapsed < minMs || i < minOps);
  return (i * 1000) / elapsed;
}

/** A gap over `GAP_MS` between two ticks of a 2 ms timer: when it began (ms after the phase's monitor started), its length, V8 GC pauses inside it. */
export interface LoopGap {
  atMs: number;
  ms: number;
  gcMs: number;
}

export interface LoopDelay {
  /** Longest event-loop stall seen, ms. */
  maxMs: number;
  /** 99th percentile of the sampled delays, ms. */
  p99Ms: number;
  /** Samples the histogram recorded. */
  samples: number;
  /** Gaps over 50 ms a 2 ms timer saw over the same window: says when a stall fell, and whether a GC was in it. */
  gaps: LoopGap[];
}

const GAP_MS = 50;

/** A 2 ms timer's gaps over 50 ms and the V8 GC pauses inside each. */
function watchGaps(): { stop: () => LoopGap[] } {
  const start = performance.now();
  const pauses: { start: number; end: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push({ start: entry.startTime, end: entry.startTime + entry.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  const gaps: LoopGap[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - last > GAP_MS) gaps.push({ atMs: Math.round(last - start), ms: Math.round(now - last), gcMs: 0 });
    last = now;
  }, 2);
  return {
    stop: () => {
      clearInterval(timer);
      observer.disconnect();
      for (const gap of gaps) {
        const [from, to] = [start + gap.atMs, start + gap.atMs + gap.ms];
        gap.gcMs = Math.round(pauses.reduce((sum, p) => sum + Math.max(0, Math.min(to, p.end) - Math.max(from, p.start)), 0));
      }
      return gaps;
    },
  };
}

/**
 * Runs `phase` with `perf_hooks.monitorEventLoopDelay` on, and a 2 ms timer
 * over the same window that times each gap over 50 ms. The monitor's timer
 * must get to fire after a blocking native call returns, or the stall it caused
 * would never be recorded: so the phase is bracketed by short sleeps.
 */
export async function withLoopDelay<T>(phase: () => Promise<T>, resolutionMs = 5): Promise<{ value: T; delay: LoopDelay }> {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  histogram.enable();
  const watcher = watchGaps();
  await sleep(resolutionMs * 3);
  const value = await phase();
  await sleep(resolutionMs * 3);
  await yieldToLoop();
  histogram.disable();
  const delay: LoopDelay = {
    maxMs: histogram.max / 1e6,
    p99Ms: histogram.count > 0 ? histogram.percentile(99) / 1e6 : 0,
    samples: histogram.count,
    gaps: watcher.stop(),
  };
  return { value, delay };
}

/** Peak resident set size of this process so far, MiB. */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export function rssMiB(): number {
  return process.memoryUsage.rss() / (1024 * 1024);
}

/** Bytes of every file under `path` (what a store occupies on disk). */
export function duBytes(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    total += entry.isDirectory() ? duBytes(p) : statSync(p).size;
  }
  return total;
}

export { sleep, yieldToLoop };
