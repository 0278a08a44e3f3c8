/**
 * Child of test/huge-pages.test.ts: builds a graph of `count` × 96 vectors in one add task (rows in order, so the
 * same input gives the same graph), and prints how many of usearch's arenas accepted MADV_HUGEPAGE, how much of
 * this process's anonymous memory the kernel backs with huge pages before and after, and the graph's SHA-256.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { loadNativeAddon } from '../../src/util/native-addon.js';
import { randomFlat } from './vectors.js';

interface Handle {
  prepareAdd(keys: BigUint64Array, vectors: Float32Array): Promise<void>;
  addChunk(keys: BigUint64Array, vectors: Float32Array): Promise<void>;
  serialize(): Promise<Uint8Array>;
  close(): Promise<void>;
}
const addon = loadNativeAddon() as {
  NativeIndex: new (dimension: number, metric: string, precision: string, connectivity: number, expansionAdd: number, slots: number) => Handle;
  hugePageArenas(): number;
};

const hugeKiB = () => Number(/AnonHugePages:\s+(\d+)/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))![1]);

const count = Number(process.argv[2]);
const vectors = randomFlat(count, 96, 7);
const keys = BigUint64Array.from({ length: count }, (_, i) => BigInt(i + 1));
const before = hugeKiB();
const index = new addon.NativeIndex(96, 'cos', 'f32', 8, 16, 2); // a sparse, cheap graph: what matters here is its bytes;
await index.prepareAdd(keys, vectors);
await index.addChunk(keys, vectors);
const after = hugeKiB();
const graph = createHash('sha256')
  .update(await index.serialize())
  .digest('hex');
await index.close();
process.stdout.write(JSON.stringify({ arenas: addon.hugePageArenas(), hugeKiB: after - before, graph }));
