/**
 * `npx tsx bench/open.ts build N DIR` then `npx tsx bench/open.ts time DIR [REPS]`: a focused
 * harness for the open path (issue 13, "open ≤ 1.5× raw load"). `build` writes a vecvault store
 * (N synthetic clustered 96-d cosine vectors, upserted 10k per call, then close()) and a raw
 * usearch file of the same vectors. `time` runs REPS alternated pairs of opens, each in a fresh
 * child process as bench/scale.ts does (module and addon loading outside the timing, as there):
 * vecvault `new Client` + `loadIndex` + first query against usearch `load(file)` + first query;
 * it prints each run, the medians, their ratio and the load average. `--warm` runs every open
 * in this one process instead (after one of each), to see the steady cost without a cold start.
 * `--reader` adds a third open to the rotation: the same index opened by a read-only user
 * (`reader`, whose key `build` writes beside the index key), who checks the snapshot's chunks
 * by their SHA-256s where the root checks GMACs (SnapshotRef.chunkMacs). `add-reader DIR`
 * gives a store built before that user existed one, and a fresh snapshot.
 */
import { fork } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import usearch from 'usearch';
import { clusteredVectors, normalized } from '../test/support/vectors.js';
import { nativeEngine, type NativeAnnEngine } from '../src/engine/native.js';
import { Client } from '../src/index.js';
import { medianOf, withLoopDelay } from './lib/measure.js';
import { rawScaleIndex, SCALE_CONFIG, SCALE_DIM } from './lib/scale-index.js';

const DIM = SCALE_DIM;
const CONFIG = SCALE_CONFIG;
const rawIndex = () => rawScaleIndex();

/**
 * `--raw-from-engine`: the raw file is vecvault's own graph, serialized by its engine (usearch's format,
 * the bytes the snapshot seals) instead of a second build with the stock binding: the same graph, and
 * no hour-long stock build at 1M on a busy machine.
 */
async function build(n: number, dir: string, rawFromEngine: boolean): Promise<void> {
  const engines: NativeAnnEngine[] = [];
  const create = nativeEngine.create;
  nativeEngine.create = (options) => {
    const engine = create.call(nativeEngine, options);
    engines.push(engine);
    return engine;
  };
  mkdirSync(dir, { recursive: true });
  const data = normalized(clusteredVectors(n, DIM, { seed: 42 })).data;
  const key = randomBytes(32);
  writeFileSync(join(dir, 'key'), key);
  let t0 = performance.now();
  const client = new Client({ path: join(dir, 'vv') });
  const index = await client.createIndex({ indexName: 'scale', indexKey: key, dimension: DIM, metric: 'cosine', indexConfig: CONFIG });
  writeFileSync(join(dir, 'reader-key'), await index.createUserKey({ userId: 'reader', permissions: ['read'] }));
  const ids = Array.from({ length: n }, (_, i) => String(i));
  for (let start = 0; start < n; start += 10_000) {
    const end = Math.min(n, start + 10_000);
    await index.upsert({
      ids: ids.slice(start, end),
      vectors: Array.from({ length: end - start }, (_, j) => data.subarray((start + j) * DIM, (start + j + 1) * DIM)),
    });
  }
  if (rawFromEngine) writeFileSync(join(dir, 'raw.usearch'), await engines.at(-1)!.serialize());
  await client.close();
  console.log(`vecvault store built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (rawFromEngine) return;
  t0 = performance.now();
  const raw = rawIndex();
  raw.add(
    BigUint64Array.from({ length: n }, (_, i) => BigInt(i)),
    data,
    0,
  );
  raw.save(join(dir, 'raw.usearch'));
  console.log(`raw usearch file built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** A read-only user for a store `build` wrote before it made one, and a fresh snapshot (no change log to replay on open). */
async function addReader(dir: string): Promise<void> {
  const client = new Client({ path: join(dir, 'vv') });
  const index = await client.loadIndex({ indexName: 'scale', indexKey: readFileSync(join(dir, 'key')) });
  writeFileSync(join(dir, 'reader-key'), await index.createUserKey({ userId: 'reader', permissions: ['read'] }));
  const [first] = await index.get({ ids: ['0'], include: ['vector'] });
  await index.upsert({ items: [{ id: '0', vector: Array.from(first!.vector as ArrayLike<number>) }] }); // the same vector: a change to snapshot
  await index.snapshot();
  await client.close();
}

type Who = 'raw' | 'vv' | 'reader';

interface OpenRun {
  who: Who;
  ms: number;
  stallMs?: number;
  /** CPU time (user + system, all threads) the open used: less sensitive than wall time to other load on the machine. */
  cpuMs: number;
}

const query = () => normalized(clusteredVectors(1, DIM, { seed: 7 })).data;

async function openOnce(who: Who, dir: string): Promise<OpenRun> {
  const q = query();
  if (who === 'raw') {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const index = rawIndex();
    index.load(join(dir, 'raw.usearch'));
    index.search(q, 10, 1);
    const cpu = process.cpuUsage(c0);
    return { who, ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 };
  }
  const key = Buffer.from(readFileSync(join(dir, who === 'reader' ? 'reader-key' : 'key')));
  const c0 = process.cpuUsage();
  const { value, delay } = await withLoopDelay(async () => {
    const t0 = performance.now();
    const client = new Client({ path: join(dir, 'vv') });
    const index = await client.loadIndex({ indexName: 'scale', indexKey: key, ...(who === 'reader' && { userId: 'reader' }) });
    await index.query({ queryVectors: Array.from(q), topK: 10 });
    return { ms: performance.now() - t0, client, cpu: process.cpuUsage(c0) };
  });
  await value.client.close();
  return { who, ms: value.ms, stallMs: delay.maxMs, cpuMs: (value.cpu.user + value.cpu.system) / 1000 };
}

function child(who: Who, dir: string): Promise<OpenRun> {
  return new Promise((resolve, reject) => {
    const proc = fork(fileURLToPath(import.meta.url), ['child', who, dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: OpenRun | undefined;
    proc.once('message', (m) => (result = m as OpenRun));
    proc.once('exit', (code) => (result ? resolve(result) : reject(new Error(`${who} child exited with ${code}`))));
  });
}

async function time(dir: string, reps: number, warm: boolean, reader: boolean): Promise<void> {
  const load = loadavg()[0]!;
  const runs: OpenRun[] = [];
  const whos: Who[] = reader ? ['raw', 'vv', 'reader'] : ['raw', 'vv'];
  if (warm) for (const who of whos) await openOnce(who, dir);
  for (let rep = 0; rep < reps; rep++) {
    // Each rep starts one later in the rotation, so no participant always runs right after the same other.
    for (const who of whos.map((_, i) => whos[(i + rep) % whos.length]!)) {
      const r = warm ? await openOnce(who, dir) : await child(who, dir);
      runs.push(r);
      console.log(`  ${who}: ${r.ms.toFixed(1)} ms, CPU ${r.cpuMs.toFixed(1)} ms${r.stallMs === undefined ? '' : ` (worst stall ${r.stallMs.toFixed(1)} ms)`}`);
    }
  }
  const median = (who: Who, of: (r: OpenRun) => number) => medianOf(runs.filter((r) => r.who === who).map(of));
  const [raw, rawCpu] = [median('raw', (r) => r.ms), median('raw', (r) => r.cpuMs)];
  const stall = Math.max(...runs.map((r) => r.stallMs ?? 0));
  const versus = (who: Who, name: string) => {
    const [ms, cpu] = [median(who, (r) => r.ms), median(who, (r) => r.cpuMs)];
    return `${name} ${ms.toFixed(1)} ms, ratio ${(ms / raw).toFixed(2)}×; CPU ${cpu.toFixed(1)} ms, ${(cpu / rawCpu).toFixed(2)}×`;
  };
  console.log(
    `${warm ? 'warm, one process' : 'fresh child per open'}: median open + first query: raw ${raw.toFixed(1)} ms (CPU ${rawCpu.toFixed(1)}), ` +
      `${versus('vv', 'vecvault')}${reader ? `; ${versus('reader', 'as a reader')}` : ''} ` +
      `(${reps} each; worst stall ${stall.toFixed(1)} ms; load average ${load.toFixed(2)} → ${loadavg()[0]!.toFixed(2)})`,
  );
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'build') await build(Number(args[0]), args[1]!, args.includes('--raw-from-engine'));
else if (mode === 'add-reader') await addReader(args[0]!);
else if (mode === 'time') await time(args[0]!, Number(args[1] ?? 7), args.includes('--warm'), args.includes('--reader'));
else if (mode === 'child') {
  // Raw usearch's addon is loaded by its import, before its timer starts; ours on first use. Load it first too, as
  // bench/scale.ts does.
  (await import('../src/util/native-addon.js')).loadNativeAddon();
  const r = await openOnce(args[0] as Who, args[1]!);
  process.send!(r);
} else if (mode === 'child-print') {
  const r = await openOnce(args[0] as Who, args[1]!);
  console.log(`${r.ms.toFixed(1)} ${r.cpuMs.toFixed(1)}`);
} else throw new Error('usage: bench/open.ts build N DIR | add-reader DIR | time DIR [REPS] [--warm] [--reader]');
