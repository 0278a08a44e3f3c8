/**
 * Memory regression guard (issue 13, DESIGN §5 "Memory"): snapshotting and
 * opening a 50,000-vector index must not hold a second copy of the graph.
 * Each phase runs in its own process (test/support/child-memory.ts), which
 * reports the growth of its resident-set peak over the RSS just before the
 * phase (Linux: VmHWM reset through /proc/self/clear_refs).
 *
 * The graph here is ~55 MB (50k × 256 float32 plus links). Streaming keeps a
 * snapshot's extra memory to a few 1 MiB chunks (8 plaintext buffers, a
 * sealed group, LevelDB's write buffer), and an open's to the graph itself
 * plus a few chunks read ahead and the id table. Before streaming, a close
 * peaked at +1 copy of the graph (serialize, then seal) and an open at ~2×
 * the graph (every decrypted chunk, then usearch's own copy); the bounds below
 * sit between, so either regression fails here. Measured figures are in
 * docs/performance.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';

const COUNT = 50_000;
const DIM = 256;
const MiB = 1 << 20;
/** The raw float32 vectors: the bulk of what the engine holds. */
const VECTOR_BYTES = COUNT * DIM * 4;
/** Stated bounds on peak resident growth. */
const SNAPSHOT_BOUND = 0.5 * VECTOR_BYTES; // ~24 MiB: a second copy of the graph (~55 MB) cannot fit
const OPEN_BOUND = 1.5 * VECTOR_BYTES; // ~73 MiB: the graph once plus read-ahead; twice (~110 MB) cannot fit

const linux = existsSync('/proc/self/clear_refs');
const dir = mkdtempSync(join(tmpdir(), 'vecvault-memory-'));
const key = Buffer.from(Client.generateKey()).toString('hex');

function phase(...args: string[]): { peakGrowth: number; steadyGrowth?: number } {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--expose-gc', 'test/support/child-memory.ts', ...args], {
    encoding: 'utf8',
    timeout: 100_000,
  });
  return JSON.parse(out) as { peakGrowth: number; steadyGrowth?: number };
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!linux)('resident memory of a 50k-vector index (Linux)', () => {
  it(`snapshotting it at close peaks below +${(SNAPSHOT_BOUND / MiB).toFixed(0)} MiB and opening it below +${(OPEN_BOUND / MiB).toFixed(0)} MiB`, () => {
    const build = phase('build', join(dir, 'store'), key, String(COUNT), String(DIM));
    const open = phase('open', join(dir, 'store'), key);
    const report = `close peak +${(build.peakGrowth / MiB).toFixed(1)} MiB, open peak +${(open.peakGrowth / MiB).toFixed(1)} MiB (steady +${((open.steadyGrowth ?? 0) / MiB).toFixed(1)} MiB); vectors ${(VECTOR_BYTES / MiB).toFixed(1)} MiB`;
    console.log(report);
    expect(build.peakGrowth, report).toBeLessThan(SNAPSHOT_BOUND);
    expect(open.peakGrowth, report).toBeLessThan(OPEN_BOUND);
    // The graph was loaded, not rebuilt from records (which would also be far slower).
    expect(open.peakGrowth, report).toBeGreaterThan(0.8 * VECTOR_BYTES);
  });
});
