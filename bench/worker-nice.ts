/**
 * `npx tsx bench/worker-nice.ts [--n 100000] [--reps 3] [--nice 10] [--burst 10]`: what the graph work's lower priority
 * (native/niced-thread.h, VECVAULT_WORKER_NICE) buys the JS thread, and what it costs the build. Each run is a
 * child process that upserts N clustered 96-d cosine vectors (10k per call) while the host does its own work on the
 * main thread: every 20 ms a burst of 10 ms of CPU (measured on the thread's own clock, schedstat). Reported per
 * setting: each burst's wall time over its CPU time (1.0: the thread had a core whenever it wanted one), the event
 * loop's worst and p99 delay, and how long it took. Then it deletes every 20th vector and compacts (the rebuild decrypts
 * records on the JS thread while the graph inserts run), measured the same way. Niced and not alternate rep by rep,
 * so both see the same load.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { SCALE_CONFIG, SCALE_DIM } from './lib/scale-index.js';
import { runPhaseChild, servePhaseChild } from './lib/phase-child.js';

const CHUNK = 10_000;
/** `--burst MS` (0: no host work, to see what the lower priority costs a build on its own). */
const BURST_MS = Number(process.env.VECVAULT_NICE_BURST_MS ?? 10);
const EVERY_MS = 20;

/** One part of a run, with the host's bursts going on. */
interface Part {
  s: number;
  /** Bursts' wall ÷ CPU time: median, p95, worst. */
  stretch: { median: number; p95: number; worst: number; bursts: number };
  loopMaxMs: number;
  loopP99Ms: number;
}
interface Run {
  nice: string;
  upsert: Part;
  compact: Part;
  vectorsPerS: number;
  load1: number;
}

/** The calling thread's time on a CPU so far, ms (Linux schedstat). */
function threadCpuMs(): number {
  return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/** Runs `work` while the host does its bursts; what the bursts and the event loop saw meanwhile. */
async function withHostWork(work: () => Promise<void>): Promise<Part> {
  const stretches: number[] = [];
  // The host's own work: a CPU burst every EVERY_MS, timed on the wall and on the thread's clock.
  const host = setInterval(() => {
    if (BURST_MS === 0) return;
    const wall0 = performance.now();
    const cpu0 = threadCpuMs();
    let cpu = cpu0;
    while (cpu - cpu0 < BURST_MS) {
      for (let i = 0; i < 20_000; i++) Math.sqrt(i);
      cpu = threadCpuMs();
    }
    stretches.push((performance.now() - wall0) / (cpu - cpu0));
  }, EVERY_MS);
  const loop = monitorEventLoopDelay({ resolution: 2 });
  loop.enable();
  const t0 = performance.now();
  try {
    await work();
  } finally {
    loop.disable();
    clearInterval(host);
  }
  const sorted = [...stretches].sort((a, b) => a - b);
  return {
    s: (performance.now() - t0) / 1000,
    stretch: { median: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), worst: sorted.at(-1) ?? NaN, bursts: sorted.length },
    loopMaxMs: loop.max / 1e6,
    loopP99Ms: loop.percentile(99) / 1e6,
  };
}

/** Upserts N vectors (10k per call), then deletes every 20th and compacts, each with the host's bursts going on. */
async function child(n: number, dir: string): Promise<Run> {
  const { Client } = await import('../src/index.js');
  const { clusteredVectors, normalized } = await import('../test/support/vectors.js');
  const data = normalized(clusteredVectors(n, SCALE_DIM, { seed: 42 })).data;
  const client = new Client({ path: dir });
  const index = await client.createIndex({
    indexName: 'nice',
    indexKey: Client.generateKey(),
    dimension: SCALE_DIM,
    metric: 'cosine',
    indexConfig: SCALE_CONFIG,
  });
  const upsert = await withHostWork(async () => {
    for (let start = 0; start < n; start += CHUNK) {
      const end = Math.min(n, start + CHUNK);
      await index.upsert({
        ids: Array.from({ length: end - start }, (_, j) => String(start + j)),
        vectors: Array.from({ length: end - start }, (_, j) => data.subarray((start + j) * SCALE_DIM, (start + j + 1) * SCALE_DIM)),
      });
    }
  });
  await index.delete({ ids: Array.from({ length: Math.floor(n / 20) }, (_, j) => String(j * 20)) });
  const compact = await withHostWork(() => index.compact());
  await client.close();
  return { nice: process.env.VECVAULT_WORKER_NICE ?? '10', upsert, compact, vectorsPerS: n / upsert.s, load1: loadavg()[0]! };
}

// The child removes nothing: the parent deletes each run's store.
if (!servePhaseChild<'run', Run>('--worker-nice-child', (_phase, n, dir) => child(n, dir))) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  const n = Number(arg('--n') ?? 100_000);
  const reps = Number(arg('--reps') ?? 3);
  const niced = arg('--nice') ?? '10';
  if (arg('--burst') !== undefined) process.env.VECVAULT_NICE_BURST_MS = arg('--burst'); // the children inherit it
  const runs: Run[] = [];
  for (let rep = 0; rep < reps; rep++) {
    // Alternated, and the order flipped every rep.
    for (const nice of rep % 2 === 0 ? [niced, '0'] : ['0', niced]) {
      const dir = mkdtempSync(join(tmpdir(), 'vecvault-nice-bench-'));
      process.env.VECVAULT_WORKER_NICE = nice;
      try {
        const run = await runPhaseChild<Run>(import.meta.url, '--worker-nice-child', 'run', n, dir);
        runs.push(run);
        console.error(JSON.stringify(run));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const f = (x: number | null, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '—'); // NaN crosses IPC as null
  console.log(`\n${n} × ${SCALE_DIM} cosine, ${reps} alternated runs per setting; host burst ${BURST_MS} ms CPU every ${EVERY_MS} ms; medians of runs`);
  console.log('| graph threads | part | burst wall ÷ CPU, median / p95 / worst | event loop max / p99, ms | seconds | load |');
  console.log('|---|---|---|---|---|---|');
  for (const nice of [niced, '0']) {
    const mine = runs.filter((r) => r.nice === nice);
    for (const part of ['upsert', 'compact'] as const) {
      const parts = mine.map((r) => r[part]);
      console.log(
        `| nice ${nice} | ${part} | ${f(median(parts.map((p) => p.stretch.median)))} / ${f(median(parts.map((p) => p.stretch.p95)))} / ${f(median(parts.map((p) => p.stretch.worst)))} | ${f(median(parts.map((p) => p.loopMaxMs)), 1)} / ${f(median(parts.map((p) => p.loopP99Ms)), 1)} | ${f(median(parts.map((p) => p.s)), 1)} | ${f(Math.min(...mine.map((r) => r.load1)), 1)}–${f(Math.max(...mine.map((r) => r.load1)), 1)} |`,
      );
    }
  }
}
