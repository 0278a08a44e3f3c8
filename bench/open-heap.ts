/**
 * Diagnostic (docs/performance.md, "The live table"): what an opened store leaves in the V8 heap and what a
 * full GC then costs. Opens a store built by `bench/open.ts build N DIR` (new Client + loadIndex + first
 * query), waits for the background indexing of the restored ids to end (a `get`), then prints the heap
 * used after two forced GCs, and the median and worst of 7 more forced full GCs (each traces whatever
 * the open left alive: the record ids were one JS string each before they became bytes).
 *
 *   node --import tsx --expose-gc bench/open-heap.ts DIR
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import v8 from 'node:v8';
import { Client } from '../src/index.js';
import { clusteredVectors, normalized } from '../test/support/vectors.js';
import { medianOf } from './lib/measure.js';

const dir = process.argv[2]!;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

gc();
gc();
const before = v8.getHeapStatistics().used_heap_size;
const key = Buffer.from(readFileSync(join(dir, 'key')));
const client = new Client({ path: join(dir, 'vv') });
const index = await client.loadIndex({ indexName: 'scale', indexKey: key });
await index.query({ queryVectors: Array.from(normalized(clusteredVectors(1, 96, { seed: 7 })).data), topK: 10 });
await index.get({ ids: ['0'], include: [] }); // the id index complete
gc();
gc();
const after = v8.getHeapStatistics().used_heap_size;
const pauses: number[] = [];
for (let i = 0; i < 7; i++) {
  const t0 = performance.now();
  gc();
  pauses.push(performance.now() - t0);
}
console.log(
  `heap used after the open: +${mib(after - before)} MiB (${mib(after)} MiB in all); forced full GC: median ${medianOf(pauses).toFixed(1)} ms, ` +
    `worst ${Math.max(...pauses).toFixed(1)} ms; load average ${loadavg()[0]!.toFixed(2)}`,
);
await client.close();
