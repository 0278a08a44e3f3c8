/**
 * `npx tsx bench/huge-pages.ts [--n 200000] [--reps 5] [--builds 1] [--dir DIR]` (`--builds 0 --dir DIR`: the opens only): the engine with usearch's arenas on
 * transparent huge pages (native/engine/usearch.h, VECVAULT_HUGE_PAGES=1) against the same engine without (the default)
 * and against raw usearch, each run in its own child process, alternated so all three see the same machine load.
 *
 *   build  each system adds N synthetic clustered 96-d cosine vectors in one call (all pool threads); the first
 *          build also writes the graph (ours serialized, raw `save`) for the opens
 *   open   load that graph (ours: `deserialize` from one buffer read before the clock starts; raw: `load(file)`),
 *          then 2,000 single queries and 20 batches of 100 at ef 64
 *
 * Reports medians per system: load wall and CPU time (all threads), resident growth and how much of it the kernel
 * backs with huge pages, single and batched QPS, and add throughput.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import usearch from 'usearch';
import { nativeEngine } from '../src/engine/native.js';
import { clusteredVectors, normalized } from '../test/support/vectors.js';
import { runPhaseChild, servePhaseChild } from './lib/phase-child.js';
import { rawScaleIndex, SCALE_CONFIG, SCALE_DIM } from './lib/scale-index.js';

type System = 'huge' | 'small' | 'raw';
type Phase = `${'build' | 'open'}-${System}`;
interface Result {
  ms: number;
  cpuMs: number;
  rssMiB: number;
  hugeMiB: number;
  singleQps?: number;
  batchQps?: number;
}

const QUERIES = 2_000;
const BATCH = 100;
const engineOptions = { dimension: SCALE_DIM, metric: 'cos', precision: 'f32', ...SCALE_CONFIG } as const;

function memory(): { rss: number; huge: number } {
  const text = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(text)![1]);
  return { rss: kib('Rss') / 1024, huge: kib('AnonHugePages') / 1024 };
}

async function timed<T>(work: () => Promise<T> | T): Promise<{ value: T; ms: number; cpuMs: number; rssMiB: number; hugeMiB: number }> {
  const before = memory();
  const cpu = process.cpuUsage();
  const start = performance.now();
  const value = await work();
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const after = memory();
  return { value, ms, cpuMs: (used.user + used.system) / 1000, rssMiB: after.rss - before.rss, hugeMiB: after.huge - before.huge };
}

function keysOf(n: number): BigUint64Array {
  return BigUint64Array.from({ length: n }, (_, i) => BigInt(i) * 7919n + 13n);
}

async function runPhase(phase: Phase, n: number, dir: string): Promise<Result> {
  const [step, system] = phase.split('-') as ['build' | 'open', System];
  const ours = system !== 'raw';
  const graphFile = join(dir, ours ? 'graph.bin' : 'graph.usearch');
  const all = normalized(clusteredVectors(n + QUERIES, SCALE_DIM, { seed: 42 })).data;
  const queries = all.slice(n * SCALE_DIM);
  if (step === 'build') {
    const vectors = all.subarray(0, n * SCALE_DIM);
    const keys = keysOf(n);
    if (ours) {
      const engine = nativeEngine.create(engineOptions);
      const { ms, cpuMs, rssMiB, hugeMiB } = await timed(() => engine.add(keys, vectors));
      if (!existsSync(graphFile)) writeFileSync(graphFile, await engine.serialize());
      await engine.close();
      return { ms, cpuMs, rssMiB, hugeMiB };
    }
    const raw = rawScaleIndex();
    const { ms, cpuMs, rssMiB, hugeMiB } = await timed(() => raw.add(keys, vectors, 0));
    if (!existsSync(graphFile)) raw.save(graphFile);
    return { ms, cpuMs, rssMiB, hugeMiB };
  }
  const batches = Array.from({ length: QUERIES / BATCH }, (_, i) => queries.subarray(i * BATCH * SCALE_DIM, (i + 1) * BATCH * SCALE_DIM));
  const single = (search: (query: Float32Array) => unknown) => {
    const start = performance.now();
    for (let i = 0; i < QUERIES; i++) search(queries.subarray(i * SCALE_DIM, (i + 1) * SCALE_DIM));
    return QUERIES / ((performance.now() - start) / 1000);
  };
  const batched = async (search: (batch: Float32Array) => unknown) => {
    const start = performance.now();
    for (const batch of batches) await search(batch);
    return QUERIES / ((performance.now() - start) / 1000);
  };
  if (ours) {
    const bytes = readFileSync(graphFile);
    const load = await timed(() => nativeEngine.deserialize(bytes, engineOptions));
    const engine = load.value;
    const singleQps = single((query) => engine.search(query, 10));
    const batchQps = await batched((batch) => engine.search(batch, 10));
    await engine.close();
    return { ms: load.ms, cpuMs: load.cpuMs, rssMiB: load.rssMiB, hugeMiB: load.hugeMiB, singleQps, batchQps };
  }
  const raw = rawScaleIndex();
  const load = await timed(() => raw.load(graphFile));
  const singleQps = single((query) => raw.search(query, 10, 1));
  const batchQps = await batched((batch) => raw.search(batch, 10, 0));
  return { ms: load.ms, cpuMs: load.cpuMs, rssMiB: load.rssMiB, hugeMiB: load.hugeMiB, singleQps, batchQps };
}

function child(phase: Phase, n: number, dir: string): Promise<Result> {
  const env = process.env.VECVAULT_HUGE_PAGES;
  process.env.VECVAULT_HUGE_PAGES = phase.endsWith('-huge') ? '1' : '0';
  try {
    return runPhaseChild<Result>(import.meta.url, '--huge-pages-child', phase, n, dir);
  } finally {
    if (env === undefined) delete process.env.VECVAULT_HUGE_PAGES;
    else process.env.VECVAULT_HUGE_PAGES = env;
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

if (!servePhaseChild('--huge-pages-child', runPhase)) {
  void usearch; // the children load it; imported here so a missing package fails before any child starts
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  const n = Number(arg('--n') ?? 200_000);
  const reps = Number(arg('--reps') ?? 5);
  const builds = Number(arg('--builds') ?? 1);
  const dir = arg('--dir') ?? mkdtempSync(join(tmpdir(), 'vecvault-huge-pages-'));
  const systems: System[] = ['huge', 'small', 'raw'];
  const results: Record<string, Result[]> = {};
  const record = (phase: Phase, result: Result) => {
    (results[phase] ??= []).push(result);
    console.log(
      phase,
      JSON.stringify(result, (_, v: unknown) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v)),
      `load ${loadavg()[0]!.toFixed(1)}`,
    );
  };
  const loads = [loadavg()[0]!];
  try {
    for (let b = 0; b < builds; b++) for (const system of systems) record(`build-${system}`, await child(`build-${system}`, n, dir));
    // --builds 0 with a kept --dir: only the graphs the opens need and do not have yet.
    if (!existsSync(join(dir, 'graph.bin'))) record('build-huge', await child('build-huge', n, dir));
    if (!existsSync(join(dir, 'graph.usearch'))) record('build-raw', await child('build-raw', n, dir));
    for (let r = 0; r < reps; r++) {
      // Rotate the order each round so no system always follows another.
      for (let i = 0; i < systems.length; i++) {
        const system = systems[(i + r) % systems.length]!;
        record(`open-${system}`, await child(`open-${system}`, n, dir));
      }
      loads.push(loadavg()[0]!);
    }
  } finally {
    if (arg('--dir') === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const rawOpen = results['open-raw'] ?? [];
  const of = (phase: string, field: keyof Result) => median((results[phase] ?? []).map((r) => r[field] ?? NaN));
  console.log(`\n${n} × ${SCALE_DIM}, ${reps} alternated opens, load ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}; medians`);
  console.log('| system | build vectors/s | open ms (÷ raw) | open CPU ms | open RSS growth MiB (huge) | single QPS (÷ raw) | batched QPS (÷ raw) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const system of systems) {
    const open = `open-${system}`;
    const rate = results[`build-${system}`] ? n / (of(`build-${system}`, 'ms') / 1000) : NaN;
    const ratio = (field: keyof Result) => (of(open, field) / median(rawOpen.map((r) => r[field] ?? NaN))).toFixed(2);
    console.log(
      `| ${system === 'huge' ? 'vecvault engine, VECVAULT_HUGE_PAGES=1' : system === 'small' ? 'vecvault engine, default (4 KiB pages)' : 'raw usearch'} | ${Math.round(rate)} | ${of(open, 'ms').toFixed(1)} (${ratio('ms')}×) | ${of(open, 'cpuMs').toFixed(1)} | ${of(open, 'rssMiB').toFixed(1)} (${of(open, 'hugeMiB').toFixed(0)}) | ${Math.round(of(open, 'singleQps'))} (${ratio('singleQps')}×) | ${Math.round(of(open, 'batchQps'))} (${ratio('batchQps')}×) |`,
    );
  }
}
