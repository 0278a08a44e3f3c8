/**
 * Diagnostic (docs/performance.md, "Memory"): builds N × 96 cosine vectors in
 * upserts of 10,000 like the scale bench's vv-build child, printing after each
 * call the anonymous RSS growth, its peak so far and the snapshot generation;
 * then where the memory is (smaps classes, V8 heap spaces) at the build's end,
 * after a plain GC, 2.5 s later, and after close().
 *
 *   node --import tsx --expose-gc bench/memory-breakdown.ts [N]     (KEEP=1 keeps the store for memory-snapshot.ts)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import { residentByMapping as smaps, statusMiB as status } from './lib/proc-memory.js';
import { SCALE_CONFIG } from './lib/scale-index.js';
import { clusteredVectors, normalized } from '../test/support/vectors.js';
import { Client } from '../src/index.js';

const N = Number(process.argv[2] ?? 200_000);
const DIM = 96;
const round = (x: number) => Math.round(x * 10) / 10;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function heapSpaces(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const space of v8.getHeapSpaceStatistics()) if (space.physical_space_size > 0) out[space.space_name] = round(space.physical_space_size / 2 ** 20);
  const m = process.memoryUsage();
  return { ...out, external: round(m.external / 2 ** 20), arrayBuffers: round(m.arrayBuffers / 2 ** 20) };
}

const data = normalized(clusteredVectors(N, DIM, { seed: 42 })).data;
const dir = mkdtempSync(join(tmpdir(), 'vecvault-memory-breakdown-'));
gc();
await sleep(1000);
gc();
const base = status('VmRSS');
const baseAnon = status('RssAnon');
const baseMaps = smaps();
writeFileSync('/proc/self/clear_refs', '5');
let anonPeak = 0;
const sampler = setInterval(() => (anonPeak = Math.max(anonPeak, status('RssAnon'))), 5);

function report(label: string): void {
  const now = smaps();
  const maps = Object.fromEntries(Object.keys({ ...now, ...baseMaps }).map((k) => [k, round((now[k] ?? 0) - (baseMaps[k] ?? 0))]));
  const figures = {
    rss: round(status('VmRSS') - base),
    anon: round(status('RssAnon') - baseAnon),
    hwm: round(status('VmHWM') - base),
    anonPeak: round(anonPeak - baseAnon),
    smaps: maps,
    v8: heapSpaces(),
  };
  console.log(label, JSON.stringify(figures));
}

const key = crypto.getRandomValues(new Uint8Array(32));
const client = new Client({ path: join(dir, 'vv') });
const index = await client.createIndex({ indexName: 'scale', indexKey: key, dimension: DIM, metric: 'cosine', indexConfig: SCALE_CONFIG });
const ids = Array.from({ length: N }, (_, i) => String(i));
const trace: string[] = [];
const t0 = performance.now();
for (let start = 0; start < N; start += 10_000) {
  const end = Math.min(N, start + 10_000);
  await index.upsert({
    ids: ids.slice(start, end),
    vectors: Array.from({ length: end - start }, (_, j) => data.subarray((start + j) * DIM, (start + j + 1) * DIM)),
  });
  const s = index.stats();
  trace.push(`${end / 1000}k: ${(status('RssAnon') - baseAnon).toFixed(0)}/${(anonPeak - baseAnon).toFixed(0)} gen ${s.snapshotGeneration}`);
}
const ms = performance.now() - t0;
console.log(trace.join(' | '));
const stats = index.stats();
console.log(
  `build ${ms.toFixed(0)} ms (${((N * 1000) / ms).toFixed(0)} vectors/s); engine ${(stats.engineMemoryBytes / 2 ** 20).toFixed(1)} MiB, live table ${(stats.filterIndexMemoryBytes / 2 ** 20).toFixed(1)} MiB`,
);
report('end of the build');
gc();
report('after a plain GC');
await sleep(2500);
gc();
report('2.5 s later');
writeFileSync('/proc/self/clear_refs', '5');
anonPeak = status('RssAnon');
const c0 = performance.now();
await client.close();
console.log(`close ${(performance.now() - c0).toFixed(0)} ms`);
report('close');
clearInterval(sampler);
if (process.env.KEEP) {
  writeFileSync(join(dir, 'key'), key);
  console.log(`kept ${dir} (node --import tsx --expose-gc bench/memory-snapshot.ts ${dir} close)`);
} else {
  rmSync(dir, { recursive: true, force: true });
}
