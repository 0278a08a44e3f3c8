/**
 * Child of test/memory-calls.test.ts: does vecvault's malloc tuning (util/memory.ts `tuneAllocator`) keep freed
 * buffers from staying resident? Prints `{ tuned, retainedMiB }` as JSON. Run with --expose-gc.
 *
 * The workload is the pattern of a bulk load, small: one large buffer comes and goes (with glibc's adaptive
 * thresholds its free raises the mmap threshold to 16 MiB and the trim threshold to 32), then 24 buffers of 1 MiB,
 * which then come from the heap, come and go. Adaptive, their 24 MiB stay resident (under the raised trim threshold);
 * with the fixed thresholds the heap gives its free top back.
 *
 * With `via-index`: first creates an index through the public API and upserts a vector, and reports whether that
 * applied the settings (`beforeIndex` / `afterIndex`: `allocatorTuned()` on each side).
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '../../src/index.js';
import { allocatorTuned, tuneAllocator } from '../../src/util/memory.js';

const gc = (globalThis as { gc?: () => void }).gc!;
const rssAnonMiB = () => Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(100); // ArrayBuffer backing stores may be freed by V8's background sweeper
  }
}

let viaIndex: { beforeIndex: boolean | null; afterIndex: boolean | null } | undefined;
if (process.argv.includes('via-index')) {
  const beforeIndex = allocatorTuned();
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-allocator-'));
  const client = new Client({ path: dir });
  const index = await client.createIndex({ indexName: 'a', indexKey: Client.generateKey(), dimension: 2 });
  await index.upsert([{ id: 'x', vector: [1, 0] }]);
  await client.close();
  rmSync(dir, { recursive: true, force: true });
  viaIndex = { beforeIndex: beforeIndex ?? null, afterIndex: allocatorTuned() ?? null };
}
const tuned = tuneAllocator();
let large: Buffer | undefined = Buffer.allocUnsafeSlow(16 << 20).fill(1);
large = undefined;
await settle();
const before = rssAnonMiB();
let small: Buffer[] = Array.from({ length: 24 }, () => Buffer.allocUnsafeSlow(1 << 20).fill(2));
small = [];
await settle();
console.log(JSON.stringify({ tuned, retainedMiB: rssAnonMiB() - before, kept: large === undefined && small.length === 0, ...viaIndex }));
