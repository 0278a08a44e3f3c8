/**
 * Diagnostic (docs/performance.md, "Memory"): opens a store kept by
 * `KEEP=1 bench/memory-breakdown.ts`, settles, writes one record, then traces
 * anonymous RSS (every 2 ms for the peak) through `snapshot()` or `close()`.
 *
 *   node --import tsx --expose-gc bench/memory-snapshot.ts DIR [snapshot|close]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';
import { Client } from '../src/index.js';

const [dir, mode = 'snapshot'] = process.argv.slice(2) as [string, string?];
const anon = () => Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const heap = () => {
  const m = process.memoryUsage();
  const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.physical_space_size;
  return `heap used ${(m.heapUsed / 2 ** 20).toFixed(0)} MiB, external ${(m.external / 2 ** 20).toFixed(0)} MiB, new space ${(young / 2 ** 20).toFixed(0)} MiB`;
};

gc();
await sleep(500);
const baseAnon = anon();
const client = new Client({ path: join(dir, 'vv') });
const index = await client.loadIndex({ indexName: 'scale', indexKey: readFileSync(join(dir, 'key')) });
await index.query({ queryVectors: new Array<number>(index.getDimension()!).fill(0.1), topK: 10 });
gc();
await sleep(2500);
gc();
const steady = anon() - baseAnon;
console.log(`steady after the open: +${steady.toFixed(1)} MiB; ${heap()}`);
let peak = 0;
let peakAt = 0;
const t0 = performance.now();
const samples: string[] = [];
const fine = setInterval(() => {
  const now = anon() - baseAnon;
  if (now > peak) [peak, peakAt] = [now, performance.now() - t0];
}, 2);
const coarse = setInterval(() => samples.push(`${(performance.now() - t0).toFixed(0)} ms: ${(anon() - baseAnon).toFixed(0)}`), 100);
await index.upsert({ ids: ['x'], vectors: [new Array<number>(index.getDimension()!).fill(0.2)] }); // something for the snapshot to cover
if (mode === 'close') await client.close();
else await index.snapshot();
clearInterval(fine);
clearInterval(coarse);
console.log(
  `${mode}: ${(performance.now() - t0).toFixed(0)} ms; anonymous peak +${peak.toFixed(1)} MiB at ${peakAt.toFixed(0)} ms, +${(peak - steady).toFixed(1)} over steady; ${heap()}`,
);
console.log(samples.join(' | '));
if (mode !== 'close') await client.close();
