/**
 * `npx tsx bench/stalls.ts [--n 500000] [--phases build,open,compact] [--dir DIR] [--keep] [--delete-offset K] [--node-flag F]…`:
 * where the event loop stalls at scale, and why. Each phase runs in its own child process (as bench/scale.ts does,
 * so the build's data array does not weigh on the open's GC):
 *
 *   build    upsert N synthetic clustered 96-d cosine vectors (10k per call), then close() (the final snapshot)
 *   open     loadIndex + first query, then close()
 *   compact  loadIndex, delete every 20th id (10k per call), compact(), close()
 *
 * Every sub-phase (upsert, close, open, delete, compact) reports monitorEventLoopDelay's max and p99 (as
 * bench/scale.ts measures them) and each stall over STALL_MS seen by a 2 ms timer, with the V8 GC pauses
 * (PerformanceObserver 'gc': kind and duration) that overlap it, so a stall can be put down to GC or not.
 * `--node-flag --cpu-prof` (or `--trace-gc`) passes flags to the children. `--stream-ids`: the build makes each call's
 * ids as it goes instead of holding all N id strings from the start (as a loader reading its input in chunks would):
 * the host's heap sets how long V8's mark-compact pauses last (at 200k, 1M extra strings held: worst 12 → 20 ms).
 *
 * `--alternate-yield MS` pairs the pool threads' waits during V8's mark-compact pauses (native/engine/gc-yield.h) with
 * their absence under the same machine load: it turns them on and off every MS ms and reports the GC pauses and stalls
 * that began in each state apart (on a shared machine, two runs one after the other see different loads).
 * `--alternate-fix MS` pairs the same way an issue-13 change to the upsert path that a bench can switch: the short
 * publish slices while the live table migrates a hash table (off: `rebuilding` reads false, so the slices stay 1,024
 * long).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { SCALE_CONFIG, SCALE_DIM } from './lib/scale-index.js';
import { runPhaseChild, servePhaseChild } from './lib/phase-child.js';

const CHUNK = 10_000;
const STALL_MS = 30;
const TICK_MS = 2;

type Phase = 'build' | 'open' | 'compact';

interface Gc {
  at: number;
  ms: number;
  kind: string;
}
export interface Stall {
  /** Start of the gap, ms since the sub-phase began. */
  at: number;
  /** Start of the gap on CLOCK_MONOTONIC, ms: the clock of a `--cpu-prof` profile's timestamps (µs there), so `bench/stall-profile.ts` can find its samples. */
  mono: number;
  ms: number;
  /** The main thread's time on a CPU and waiting in the run queue during the gap (Linux schedstat), ms: a gap mostly spent waiting is the machine's load, not our work. */
  cpuMs: number;
  waitMs: number;
  /** GC pause time inside the gap, and the pauses themselves. */
  gcMs: number;
  gcs: string[];
  /** Slow synchronous native calls inside the gap. */
  natives: string[];
  /** Memory releases running on the pool during the gap (call to settle, ms). */
  pool: string[];
}
interface SubPhase {
  name: string;
  ms: number;
  maxMs: number;
  p99Ms: number;
  stalls: Stall[];
  /** All GC pauses of the sub-phase: count and worst, by kind. */
  gcByKind: Record<string, { count: number; maxMs: number; totalMs: number }>;
  load1: number;
  /** Mark-compact pauses seen and pool threads' waits for them (absent with an addon that lacks gcYieldStats). */
  gcYield?: { hooked: number; pauses: number; yields: number; waitedMs: number };
  /** With `--alternate-yield`: the mark-compact pauses and stalls that began while the waits were on, and while off. */
  alternate?: { on: ByState; off: ByState };
}

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/** Synchronous native calls (the addon's: engine handle, crypto, memory) that took over SLOW_NATIVE_MS on this thread. */
const SLOW_NATIVE_MS = 5;
const natives: Gc[] = [];
/** Pool tasks traced from call to settling (see timeCalls), and which. */
const poolTasks: Gc[] = [];
const POOL_TRACED = /^(trimMemory|releaseMappedPages)Async$/;
function timeCalls(target: Record<string, unknown>, prefix: string, from: Record<string, unknown> = target): void {
  for (const name of Object.getOwnPropertyNames(from)) {
    const f = Object.getOwnPropertyDescriptor(from, name)?.value as unknown;
    if (typeof f !== 'function' || name === 'constructor' || /^[A-Z]/.test(name)) continue;
    const timed = function (this: unknown, ...args: unknown[]) {
      const t0 = performance.now();
      try {
        const result = (f as (...a: unknown[]) => unknown).apply(this, args);
        // The memory releases' pool tasks, from the call to their settling: glibc's malloc_trim holds each arena's
        // lock while it walks it, so the main thread's own allocations may wait for a trim running elsewhere.
        if (POOL_TRACED.test(name) && result instanceof Promise) {
          void result.finally(() => poolTasks.push({ at: t0, ms: performance.now() - t0, kind: name.replace(/Async$/, '') }));
        }
        return result;
      } finally {
        const ms = performance.now() - t0;
        if (ms > SLOW_NATIVE_MS) natives.push({ at: t0, ms, kind: prefix + name });
      }
    };
    Object.defineProperty(target, name, { value: timed, writable: true, configurable: true });
  }
}

const gcs: Gc[] = [];
/** CLOCK_MONOTONIC (process.hrtime) minus performance.now(), ms. */
const monoOffset = Number(process.hrtime.bigint()) / 1e6 - performance.now();
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? -1;
    gcs.push({ at: e.startTime, ms: e.duration, kind: GC_KINDS[kind] ?? String(kind) });
  }
}).observe({ entryTypes: ['gc'] });

/** The main thread's on-CPU and run-queue-wait time so far, ms (zeros where /proc is absent). */
function schedstat(): [number, number] {
  try {
    const [cpu, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ');
    return [Number(cpu) / 1e6, Number(wait) / 1e6];
  } catch {
    return [0, 0];
  }
}

/** `--alternate-yield MS` or `--alternate-fix MS` (passed to the children in the environment). */
const ALTERNATE_MS = Number(process.env.VECVAULT_STALLS_ALTERNATE ?? 0);
/** The switch that is alternated, once the child set it up: the addon's GC waits, or the upsert-path changes. */
let setGcYield: ((on: boolean) => unknown) | undefined;

interface ByState {
  majors: number;
  majorP50: number;
  majorP90: number;
  majorMax: number;
  majorMeanMs: number;
  stalls30: number;
  stalls50: number;
  worst: number;
  /** The largest on-CPU part of a stall that began in this state, ms. */
  worstCpu: number;
  /** Time spent in this state, s. */
  s: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0;
}

/** Runs `op` and reports its stalls. */
async function measured(name: string, op: () => Promise<unknown>): Promise<SubPhase> {
  // State switches: [time, on]; the state at t is the last switch at or before t.
  const switches: [number, boolean][] = [];
  let toggler: NodeJS.Timeout | undefined;
  if (ALTERNATE_MS > 0 && setGcYield) {
    let on = true;
    setGcYield(on);
    switches.push([performance.now(), on]);
    toggler = setInterval(() => {
      on = !on;
      setGcYield!(on);
      switches.push([performance.now(), on]);
    }, ALTERNATE_MS);
  }
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  const gaps: { at: number; ms: number; cpuMs: number; waitMs: number }[] = [];
  let last = performance.now();
  let [lastCpu, lastWait] = schedstat();
  const timer = setInterval(() => {
    const now = performance.now();
    const [cpu, wait] = schedstat();
    if (now - last > STALL_MS) gaps.push({ at: last, ms: now - last, cpuMs: cpu - lastCpu, waitMs: wait - lastWait });
    last = now;
    lastCpu = cpu;
    lastWait = wait;
  }, TICK_MS);
  histogram.enable();
  await new Promise((r) => setTimeout(r, 20));
  const firstGc = gcs.length;
  const firstNative = natives.length;
  const t0 = performance.now();
  await op();
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setImmediate(r));
  histogram.disable();
  clearInterval(timer);
  if (toggler) {
    clearInterval(toggler);
    setGcYield!(true); // back to the default: waits on (or the upsert-path changes on)
  }
  // Let the observer deliver the last entries.
  await new Promise((r) => setTimeout(r, 50));
  const mine = gcs.slice(firstGc);
  const gcByKind: SubPhase['gcByKind'] = {};
  for (const g of mine) {
    const k = (gcByKind[g.kind] ??= { count: 0, maxMs: 0, totalMs: 0 });
    k.count++;
    k.maxMs = Math.max(k.maxMs, g.ms);
    k.totalMs += g.ms;
  }
  const stalls = gaps.map((gap) => {
    const inside = mine.filter((g) => g.at < gap.at + gap.ms && g.at + g.ms > gap.at);
    const nativeInside = natives.slice(firstNative).filter((g) => g.at < gap.at + gap.ms && g.at + g.ms > gap.at);
    const poolInside = poolTasks.filter((g) => g.at < gap.at + gap.ms && g.at + g.ms > gap.at);
    return {
      at: Math.round(gap.at - t0),
      mono: Math.round((gap.at + monoOffset) * 10) / 10,
      ms: Math.round(gap.ms * 10) / 10,
      cpuMs: Math.round(gap.cpuMs * 10) / 10,
      waitMs: Math.round(gap.waitMs * 10) / 10,
      gcMs: Math.round(inside.reduce((s, g) => s + Math.min(g.at + g.ms, gap.at + gap.ms) - Math.max(g.at, gap.at), 0) * 10) / 10,
      gcs: inside.map((g) => `${g.kind} ${g.ms.toFixed(1)}`),
      natives: nativeInside.map((g) => `${g.kind} ${g.ms.toFixed(1)}`),
      pool: poolInside.map((g) => `${g.kind} ${g.ms.toFixed(1)}`),
    };
  });
  let alternate: SubPhase['alternate'];
  if (switches.length > 0) {
    const stateAt = (t: number) => {
      let on = switches[0]![1];
      for (const [at, state] of switches) if (at <= t) on = state;
      return on;
    };
    const end = t0 + ms;
    const byState = (on: boolean): ByState => {
      const majors = mine.filter((g) => g.kind === 'major' && g.at >= t0 && stateAt(g.at) === on).map((g) => g.ms);
      majors.sort((a, b) => a - b);
      const inState = stalls.filter((x) => stateAt(x.at + t0) === on);
      let time = 0;
      for (let i = 0; i < switches.length; i++) {
        const from = Math.max(t0, switches[i]![0]);
        const to = Math.min(end, switches[i + 1]?.[0] ?? end);
        if (switches[i]![1] === on && to > from) time += to - from;
      }
      const r = (v: number) => Math.round(v * 10) / 10;
      return {
        majors: majors.length,
        majorP50: r(quantile(majors, 0.5)),
        majorP90: r(quantile(majors, 0.9)),
        majorMax: r(majors.at(-1) ?? 0),
        majorMeanMs: r(majors.reduce((a, b) => a + b, 0) / Math.max(1, majors.length)),
        stalls30: inState.length,
        stalls50: inState.filter((x) => x.ms > 50).length,
        worst: Math.max(0, ...inState.map((x) => x.ms)),
        worstCpu: Math.max(0, ...inState.map((x) => x.cpuMs)),
        s: r(time / 1000),
      };
    };
    alternate = { on: byState(true), off: byState(false) };
  }
  return {
    name,
    ms,
    maxMs: histogram.max / 1e6,
    p99Ms: histogram.count ? histogram.percentile(99) / 1e6 : 0,
    stalls,
    gcByKind,
    load1: loadavg()[0]!,
    alternate,
  };
}

async function runPhase(phase: Phase, n: number, dir: string): Promise<SubPhase[]> {
  const { clusteredVectors, normalized } = await import('../test/support/vectors.js');
  const { Client } = await import('../src/index.js');
  const addon = (await import('../src/util/native-addon.js')).loadNativeAddon() as Record<string, unknown> & {
    NativeIndex: { prototype: Record<string, unknown> };
    crypto: Record<string, unknown>;
    gcYieldStats?: () => { hooked: number; pauses: number; yields: number; waitedMs: number };
  };
  const gcYieldStats = addon.gcYieldStats;
  setGcYield = addon.setGcYield as ((on: boolean) => boolean) | undefined;
  if (process.env.VECVAULT_STALLS_ALTERNATE_WHAT === 'fix') setGcYield = await upsertFixSwitch();
  timeCalls(addon, 'addon.');
  // The handle's methods are read-only: time them on a subclass that native.ts then constructs.
  const Engine = addon.NativeIndex as unknown as new (...args: unknown[]) => object;
  class TimedEngine extends Engine {}
  timeCalls(TimedEngine.prototype as Record<string, unknown>, 'engine.', Engine.prototype as Record<string, unknown>);
  addon.NativeIndex = TimedEngine as unknown as typeof addon.NativeIndex;
  timeCalls(addon.crypto, 'crypto.');
  const key = Buffer.from(readFileSync(join(dir, 'key')));
  const store = join(dir, 'vv');
  const out: SubPhase[] = [];
  let yielded = gcYieldStats?.();
  const log = (s: SubPhase) => {
    // Pool threads that stepped aside for V8's mark-compact pauses during this sub-phase (native/engine/gc-yield.h).
    const now = gcYieldStats?.();
    if (now && yielded)
      s.gcYield = {
        hooked: now.hooked,
        pauses: now.pauses - yielded.pauses,
        yields: now.yields - yielded.yields,
        waitedMs: Math.round(now.waitedMs - yielded.waitedMs),
      };
    yielded = now;
    out.push(s);
    const worst = [...s.stalls].sort((a, b) => b.ms - a.ms).slice(0, 8);
    console.error(
      `[${phase}] ${s.name}: ${Math.round(s.ms)} ms, max ${s.maxMs.toFixed(1)} p99 ${s.p99Ms.toFixed(1)}, stalls>${STALL_MS}: ${s.stalls.length}, load ${s.load1.toFixed(2)}; worst ${JSON.stringify(worst)}; gc ${JSON.stringify(s.gcByKind, (_, v: unknown) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v))}; gcYield ${JSON.stringify(s.gcYield)}${s.alternate ? `; alternate ${JSON.stringify(s.alternate)}` : ''}`,
    );
  };
  if (phase === 'build') {
    const data = normalized(clusteredVectors(n, SCALE_DIM, { seed: 42 })).data;
    // The ids as a host holding its whole data set would (the default, as bench/scale.ts), or made per call as a
    // loader streaming its input would (--stream-ids): 1M id strings in the heap make every mark-compact pause longer.
    const streamIds = process.env.VECVAULT_STALLS_STREAM_IDS === '1';
    const ids = streamIds ? null : Array.from({ length: n }, (_, i) => String(i));
    globalThis.gc?.();
    const client = new Client({ path: store });
    const index = await client.createIndex({ indexName: 'scale', indexKey: key, dimension: SCALE_DIM, metric: 'cosine', indexConfig: SCALE_CONFIG });
    log(
      await measured('upsert', async () => {
        for (let start = 0; start < n; start += CHUNK) {
          const end = Math.min(n, start + CHUNK);
          await index.upsert({
            ids: ids ? ids.slice(start, end) : Array.from({ length: end - start }, (_, j) => String(start + j)),
            vectors: Array.from({ length: end - start }, (_, j) => data.subarray((start + j) * SCALE_DIM, (start + j + 1) * SCALE_DIM)),
          });
        }
      }),
    );
    globalThis.gc?.();
    log(await measured('close', () => client.close()));
  } else if (phase === 'open') {
    const query = Array.from(normalized(clusteredVectors(1, SCALE_DIM, { seed: 7 })).data);
    globalThis.gc?.();
    let client!: InstanceType<typeof Client>;
    log(
      await measured('open', async () => {
        client = new Client({ path: store });
        const index = await client.loadIndex({ indexName: 'scale', indexKey: key });
        await index.query({ queryVectors: query, topK: 10 });
      }),
    );
    // What an app does next: the background work after the open (lazy id indexing, …) shows up here.
    log(await measured('after-open 3 s', () => new Promise((r) => setTimeout(r, 3000))));
    log(await measured('close', () => client.close()));
  } else {
    const client = new Client({ path: store });
    const index = await client.loadIndex({ indexName: 'scale', indexKey: key });
    await new Promise((r) => setTimeout(r, 2000));
    // --delete-offset K deletes ids 20i + K instead: a store compacted once still has those to delete for real.
    const offset = Number(process.env.VECVAULT_STALLS_DELETE_OFFSET ?? 0);
    const doomed = Array.from({ length: Math.floor(n / 20) }, (_, i) => String(i * 20 + offset));
    log(
      await measured('delete', async () => {
        for (let i = 0; i < doomed.length; i += CHUNK) await index.delete({ ids: doomed.slice(i, i + CHUNK) });
      }),
    );
    const live = index.stats().count;
    globalThis.gc?.();
    // When the graph rebuild ended (the last batch added): stalls before it are the rebuild's, after it the repair's,
    // the swap's, the snapshot's, LevelDB's compaction's and the release's.
    let began = 0;
    let rebuilt = 0;
    log(
      await measured('compact', () => {
        began = performance.now();
        return index.compact({ onProgress: ({ done, total }) => void (done === total && (rebuilt = performance.now() - began)) });
      }),
    );
    console.error(`[compact] the rebuild's last batch was added at ${Math.round(rebuilt)} ms`);
    if (index.stats().count !== live) throw new Error('compact lost records');
    log(await measured('close', () => client.close()));
  }
  return out;
}

/** Turns the upsert path's issue-13 change on and off (see `--alternate-fix`). */
async function upsertFixSwitch(): Promise<(on: boolean) => void> {
  const { LiveRecords } = await import('../src/core/live-records.js');
  const rebuilding = Object.getOwnPropertyDescriptor(LiveRecords.prototype, 'rebuilding')!.get!;
  return (on) => {
    Object.defineProperty(LiveRecords.prototype, 'rebuilding', { get: on ? rebuilding : () => false, configurable: true });
  };
}

function runChild(phase: Phase, n: number, dir: string, nodeFlags: string[]): Promise<SubPhase[]> {
  return runPhaseChild<SubPhase[]>(import.meta.url, '--stalls-child', phase, n, dir, nodeFlags);
}

if (!servePhaseChild('--stalls-child', runPhase)) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  const n = Number(arg('--n') ?? 500_000);
  const phases = (arg('--phases') ?? 'build,open,compact').split(',') as Phase[];
  const nodeFlags = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--node-flag' ? [a] : []));
  if (process.argv.includes('--stream-ids')) process.env.VECVAULT_STALLS_STREAM_IDS = '1';
  if (arg('--delete-offset') !== undefined) process.env.VECVAULT_STALLS_DELETE_OFFSET = arg('--delete-offset');
  if (arg('--alternate-yield') !== undefined) process.env.VECVAULT_STALLS_ALTERNATE = arg('--alternate-yield');
  if (arg('--alternate-fix') !== undefined) {
    process.env.VECVAULT_STALLS_ALTERNATE = arg('--alternate-fix');
    process.env.VECVAULT_STALLS_ALTERNATE_WHAT = 'fix';
  }
  const dir = arg('--dir') ?? mkdtempSync(join(tmpdir(), 'vecvault-stalls-'));
  const keep = process.argv.includes('--keep') || arg('--dir') !== undefined;
  if (arg('--dir') === undefined) writeFileSync(join(dir, 'key'), crypto.getRandomValues(new Uint8Array(32)));
  const results: Record<string, SubPhase[]> = {};
  try {
    const out = arg('--json');
    for (const phase of phases) {
      results[phase] = await runChild(phase, n, dir, nodeFlags);
      if (out) writeFileSync(out, JSON.stringify({ n, results }, null, 1)); // after each phase: a long run cut short keeps what it measured
    }
    console.log(`\nn = ${n.toLocaleString('en-US')} × ${SCALE_DIM}; worst / p99 event-loop stall (ms), stalls > ${STALL_MS} ms (of which GC ms), load (1 min)`);
    for (const [phase, subs] of Object.entries(results))
      for (const s of subs)
        console.log(
          `${phase}/${s.name}: ${(s.ms / 1000).toFixed(1)} s, ${s.maxMs.toFixed(1)} / ${s.p99Ms.toFixed(1)}, ${s.stalls.length} stalls (${s.stalls.filter((x) => x.ms > 50).length} > 50 ms) (${s.stalls.map((x) => `${x.ms}[cpu ${x.cpuMs} wait ${x.waitMs}${x.gcMs ? ` gc ${x.gcMs}` : ''}${x.natives.length ? ` ${x.natives.join(',')}` : ''}${x.pool.length ? ` pool ${x.pool.join(',')}` : ''}]`).join(' ')}), load ${s.load1.toFixed(2)}`,
        );
    // Where the main thread spent each stall over 50 ms, by the largest part: on a CPU (our JS, GC, native calls), waiting in
    // the run queue (the machine's load), or neither (asleep: a lock such as glibc's arena lock, I/O, GC helper threads).
    console.log(`\nstalls > 50 ms by where the main thread mostly was; worst on-CPU part of any stall over ${STALL_MS} ms`);
    for (const [phase, subs] of Object.entries(results))
      for (const s of subs) {
        const big = s.stalls.filter((x) => x.ms > 50);
        const cpu = big.filter((x) => x.cpuMs >= x.waitMs && x.cpuMs >= x.ms - x.cpuMs - x.waitMs).length;
        const queued = big.filter((x) => x.waitMs > x.cpuMs && x.waitMs >= x.ms - x.cpuMs - x.waitMs).length;
        console.log(
          `${phase}/${s.name}: on CPU ${cpu}, run queue ${queued}, asleep ${big.length - cpu - queued}; worst on-CPU ${Math.max(0, ...s.stalls.map((x) => x.cpuMs))} ms`,
        );
      }
    for (const [phase, subs] of Object.entries(results))
      for (const s of subs)
        if (s.alternate)
          for (const state of ['on', 'off'] as const) {
            const a = s.alternate[state];
            console.log(
              `${phase}/${s.name} ${process.env.VECVAULT_STALLS_ALTERNATE_WHAT === 'fix' ? 'fix' : 'yield'} ${state} (${a.s} s): mark-compact pauses ${a.majors}, p50 / p90 / max ${a.majorP50} / ${a.majorP90} / ${a.majorMax} ms (mean ${a.majorMeanMs}); stalls > 30: ${a.stalls30}, > 50: ${a.stalls50}, worst ${a.worst}, worst on-CPU part ${a.worstCpu}`,
            );
          }
  } finally {
    if (keep) console.log(`store kept in ${dir} (--dir ${dir} --phases open,compact)`);
    else rmSync(dir, { recursive: true, force: true });
  }
}
