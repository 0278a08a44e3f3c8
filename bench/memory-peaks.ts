/**
 * Diagnostic (docs/performance.md, "Memory"): the scale bench's vv-build
 * sequence (upserts of 10,000, a GC, snapshot(), 2 s idle, close()) with the
 * breakdown of anonymous memory taken at the moment of each phase's peak:
 * smaps classes (glibc's main heap, its 64 MiB thread arenas, other
 * anonymous mappings: V8's heap, usearch, large malloc blocks), V8's heap
 * spaces, external and ArrayBuffer memory, and the engine's own figure
 * (the last one taken with no write running); inside the persist phase, the
 * peak of each part (prep: the reachability check; graph stream; table;
 * commit; idle; close). GROW_YOUNG=1 grows V8's young generation before the
 * snapshot, as a fast build on a quiet machine leaves it (a GC on a loaded
 * one shrinks it, so runs differ by ~18 MiB there).
 *
 *   node --import tsx --expose-gc bench/memory-peaks.ts [N]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import { residentByMapping as smaps, statusMiB as status } from './lib/proc-memory.js';
import { SCALE_CONFIG } from './lib/scale-index.js';
import { clusteredVectors, normalized } from '../test/support/vectors.js';
import { Client } from '../src/index.js';
import { IndexStore } from '../src/storage/index-store.js';
const N = Number(process.argv[2] ?? 200_000);
const DIM = 96;
const round = (x: number) => Math.round(x * 10) / 10;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function v8Figures(): Record<string, number> {
  const out: Record<string, number> = {};
  let total = 0;
  for (const space of v8.getHeapSpaceStatistics()) {
    total += space.physical_space_size;
    if (space.physical_space_size > 512 * 1024) out[space.space_name.replace('_space', '')] = round(space.physical_space_size / 2 ** 20);
  }
  const m = process.memoryUsage();
  return { total: round(total / 2 ** 20), ...out, external: round(m.external / 2 ** 20), arrayBuffers: round(m.arrayBuffers / 2 ** 20) };
}

const data = normalized(clusteredVectors(N, DIM, { seed: 42 })).data;
const dir = mkdtempSync(join(tmpdir(), 'vecvault-memory-peaks-'));
const key = crypto.getRandomValues(new Uint8Array(32));
const client = new Client({ path: join(dir, 'vv') });
const index = await client.createIndex({ indexName: 'scale', indexKey: key, dimension: DIM, metric: 'cosine', indexConfig: SCALE_CONFIG });
const ids = Array.from({ length: N }, (_, i) => String(i));
gc();
await sleep(2000);
gc();
const base = status('VmRSS');
const baseAnon = status('RssAnon');
const baseMaps = smaps();
const baseV8 = v8Figures();

interface Capture {
  anon: number;
  at: string;
  smaps: Record<string, number>;
  v8: Record<string, number>;
  engine?: number;
}
let phase = 'build';
let peak: Capture = { anon: 0, at: '', smaps: {}, v8: {} };
let lastCapture = 0;
/** During the persist phase: the peak within each part (prep, graph stream, table, commit, idle, close). */
const parts = new Map<string, Capture>();
const diff = (now: Record<string, number>, then: Record<string, number>) =>
  Object.fromEntries(Object.keys({ ...now, ...then }).map((k) => [k, round((now[k] ?? 0) - (then[k] ?? 0))]));
function capture(label: string): Capture {
  let engine: number | undefined;
  try {
    engine = round(index.stats().engineMemoryBytes / 2 ** 20);
  } catch {
    engine = undefined;
  }
  return { anon: round(status('RssAnon') - baseAnon), at: label, smaps: diff(smaps(), baseMaps), v8: diff(v8Figures(), baseV8), engine };
}
let progress = '';
// Every 5 ms: a new peak ≥ 1 MiB over the last captured one is broken down (smaps costs a few ms, so at most every 20 ms).
const sampler = setInterval(() => {
  const anon = status('RssAnon') - baseAnon;
  if (anon > peak.anon + 1 && performance.now() - lastCapture > 20) {
    lastCapture = performance.now();
    peak = capture(`${phase} ${progress}`);
  }
  if (phase === 'persist' && anon > (parts.get(progress)?.anon ?? 0) + 1 && performance.now() - lastCapture > 20) {
    lastCapture = performance.now();
    parts.set(progress, capture(progress));
  }
}, 5);
const show = (label: string, c: Capture) =>
  console.log(`${label}: anon +${c.anon} MiB at ${c.at}; engine ${c.engine} MiB\n  smaps ${JSON.stringify(c.smaps)}\n  v8 ${JSON.stringify(c.v8)}`);

// Marks inside a snapshot (prep = the heap reduction, the reachability check and the table's columns).
type Proto = Record<string, (...args: unknown[]) => Promise<unknown>>;
const proto = IndexStore.prototype as unknown as Proto;
const writeSnapshot = proto.writeSnapshot!;
proto.writeSnapshot = function (this: unknown, ...args: unknown[]) {
  const [generation, graph, table] = args as [unknown, unknown, () => Promise<Uint8Array>];
  if (phase === 'persist') progress = 'graph stream';
  return writeSnapshot.call(this, generation, graph, () => {
    if (phase === 'persist') progress = 'table';
    return table();
  });
};
const commitSnapshot = proto.commitSnapshot!;
proto.commitSnapshot = function (this: unknown, ...args: unknown[]) {
  if (phase === 'persist') progress = 'commit';
  return commitSnapshot.apply(this, args);
};
const t0 = performance.now();
for (let start = 0; start < N; start += 10_000) {
  const end = Math.min(N, start + 10_000);
  progress = `${start / 1000}k–${end / 1000}k`;
  await index.upsert({
    ids: ids.slice(start, end),
    vectors: Array.from({ length: end - start }, (_, j) => data.subarray((start + j) * DIM, (start + j + 1) * DIM)),
  });
}
const buildMs = performance.now() - t0;
show(`build peak (${((N * 1000) / buildMs).toFixed(0)} vectors/s, VmHWM +${round(status('VmHWM') - base)})`, peak);
gc();
if (process.env.GROW_YOUNG) {
  // The quiet machine's state (a GC right after a fast build keeps the grown young generation): grow it on purpose.
  let keep: unknown[] = [];
  for (let round = 0; round < 300; round++) {
    keep = Array.from({ length: 20_000 }, (_, i) => ({ i, s: `x${i}` }));
    if (round % 50 === 0) await sleep(0);
  }
  keep.length = 0;
  gc();
}
show('right after the last upsert and a GC', capture('after'));
phase = 'persist';
progress = 'prep';
writeFileSync('/proc/self/clear_refs', '5');
peak = { anon: status('RssAnon') - baseAnon, at: 'start', smaps: {}, v8: {} };
const s0 = performance.now();
await index.snapshot();
const snapshotMs = performance.now() - s0;
progress = 'idle';
gc();
await sleep(2000);
gc();
show('steady (snapshot, GC, 2 s idle)', capture('steady'));
progress = 'close';
const c0 = performance.now();
await client.close();
const closeMs = performance.now() - c0;
show(`persist peak (snapshot ${snapshotMs.toFixed(0)} ms, close ${closeMs.toFixed(0)} ms, VmHWM +${round(status('VmHWM') - base)})`, peak);
clearInterval(sampler);
for (const [label, c] of parts) show(`  part ${label}`, c);
rmSync(dir, { recursive: true, force: true });
