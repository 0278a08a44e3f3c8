/**
 * `npm run bench:rotate [-- --count N --dimension D]`: rotateDataKey speed
 * (records re-sealed per second, the whole call: copy, digest, snapshot,
 * switch and erasure) and the worst event-loop stall while it runs, on a
 * synthetic clustered set (default 100,000 × 32, metadata and contents on
 * every record), plus rotateKey's time on the same index (O(1)).
 * The index is built once and closed (snapshot), then reopened and rotated.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '../src/index.js';
import { clusteredVectors, rowOf } from '../test/support/vectors.js';
import { withLoopDelay } from './lib/measure.js';

const { values: args } = parseArgs({ options: { count: { type: 'string' }, dimension: { type: 'string' } } });
const COUNT = Number(args.count ?? 100_000);
const DIM = Number(args.dimension ?? 32);
const CHUNK = 20_000;

const dir = mkdtempSync(join(tmpdir(), 'vecvault-bench-rotate-'));
try {
  const key = Client.generateKey();
  const set = clusteredVectors(COUNT, DIM, { seed: 7 });
  {
    const client = new Client({ path: dir });
    const index = await client.createIndex({ indexName: 'bench', indexKey: key, dimension: DIM, metric: 'cosine' });
    const built = Date.now();
    for (let start = 0; start < COUNT; start += CHUNK) {
      const rows = Array.from({ length: Math.min(CHUNK, COUNT - start) }, (_, j) => start + j);
      await index.upsert({
        items: rows.map((i) => ({ id: `doc-${i}`, vector: rowOf(set, i), metadata: { i, tag: `t${i % 50}` }, contents: `contents of doc ${i}` })),
      });
    }
    console.error(`built ${COUNT} × ${DIM} in ${((Date.now() - built) / 1000).toFixed(1)} s`);
    await client.close();
  }
  const client = new Client({ path: dir });
  const index = await client.loadIndex({ indexName: 'bench', indexKey: key });
  const started = performance.now();
  const { delay } = await withLoopDelay(() => index.rotateDataKey());
  const ms = performance.now() - started;
  const keyStarted = performance.now();
  const keyRun = await withLoopDelay(() => index.rotateKey({ indexKey: Client.generateKey() }));
  const keyMs = performance.now() - keyStarted;
  await client.close();
  const out = {
    records: COUNT,
    dimension: DIM,
    rotateDataKeyMs: Math.round(ms),
    recordsPerSecond: Math.round(COUNT / (ms / 1000)),
    worstStallMs: Number(delay.maxMs.toFixed(1)),
    p99StallMs: Number(delay.p99Ms.toFixed(1)),
    rotateKeyMs: Math.round(keyMs),
    rotateKeyWorstStallMs: Number(keyRun.delay.maxMs.toFixed(1)),
  };
  console.log(JSON.stringify(out, null, 2));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
