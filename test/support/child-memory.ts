/**
 * Run in a separate process by test/memory-bound.test.ts: one phase of a
 * store's life, with the resident-set peak of just that phase (Linux VmHWM,
 * reset through /proc/self/clear_refs) printed as JSON.
 *   build PATH KEYHEX COUNT DIM   upserts COUNT vectors (10,000 per call; its peaks and the anonymous
 *                                 growth after a plain GC), then measures close() (the final snapshot)
 *   open  PATH KEYHEX             measures loadIndex + one query
 * Peaks are growth over the RSS just before the phase (after a GC and a trim).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Client } from '../../src/index.js';
import { releaseMemory } from '../../src/util/memory.js';
import { clusteredVectors } from './vectors.js';

const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
const gc = () => (globalThis as { gc?: () => void }).gc?.();
/**
 * Samples anonymous RSS every 5 ms (the event loop is free during a close and
 * an open, which is the point): its peak is memory this process owns. VmHWM
 * also counts LevelDB's mapped table pages (page cache the kernel can drop),
 * reported apart.
 */
let anonPeak = 0;
const sampler = setInterval(() => (anonPeak = Math.max(anonPeak, kib('RssAnon'))), 5);
sampler.unref();
const startPeak = () => {
  gc();
  releaseMemory(); // freed pages glibc kept would otherwise hide a phase's new allocations
  writeFileSync('/proc/self/clear_refs', '5');
  anonPeak = kib('RssAnon');
  return { rss: kib('VmRSS'), anon: anonPeak };
};
const peaks = (before: { rss: number; anon: number }) => ({
  peakGrowth: kib('VmHWM') - before.rss,
  anonPeakGrowth: Math.max(anonPeak, kib('RssAnon')) - before.anon,
});

const [phase, path, keyHex, count, dim] = process.argv.slice(2) as [string, string, string, string, string];
const indexKey = Buffer.from(keyHex, 'hex');
const config = { connectivity: 8, expansionAdd: 16, expansionSearch: 16 }; // a cheap build: the test is about memory, not recall
if (phase === 'build') {
  const n = Number(count);
  const d = Number(dim);
  const client = new Client({ path });
  const index = await client.createIndex({ indexName: 'memory', indexKey, dimension: d, metric: 'euclidean', indexConfig: config });
  const { data } = clusteredVectors(n, d, { seed: 3 });
  const beforeBuild = startPeak();
  for (let start = 0; start < n; start += 10_000) {
    const end = Math.min(n, start + 10_000);
    await index.upsert({
      ids: Array.from({ length: end - start }, (_, i) => String(start + i)),
      vectors: Array.from({ length: end - start }, (_, i) => data.subarray((start + i) * d, (start + i + 1) * d)),
    });
  }
  // The build as the bench measures it: peaks of the whole build, then steady after a plain GC (no trim).
  const build = peaks(beforeBuild);
  gc();
  const buildSteadyGrowth = kib('RssAnon') - beforeBuild.anon;
  const before = startPeak();
  const t0 = performance.now();
  await client.close(); // writes the snapshot
  process.stdout.write(
    JSON.stringify({
      ...peaks(before),
      ms: performance.now() - t0,
      buildPeakGrowth: build.peakGrowth,
      buildAnonPeakGrowth: build.anonPeakGrowth,
      buildSteadyGrowth,
    }),
  );
} else {
  const before = startPeak();
  const t0 = performance.now();
  const client = new Client({ path });
  const index = await client.loadIndex({ indexName: 'memory', indexKey });
  await index.query({ queryVectors: new Array<number>(index.getDimension()!).fill(0.5), topK: 10 });
  const measured = { ...peaks(before), ms: performance.now() - t0 };
  gc();
  process.stdout.write(JSON.stringify({ ...measured, steadyGrowth: kib('VmRSS') - before.rss }));
  await client.close();
}
