/**
 * The addon's memory calls (src/util/memory.ts). `memoryPressure` reaches V8
 * through two symbols looked up by their mangled names (native/addon.cc): if a
 * Node version renamed them, the call would quietly do nothing, and only this
 * test would say so.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapSpaceStatistics } from 'node:v8';
import { ClassicLevel } from 'classic-level';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';
import { heapReductionPending, heapWorkEnded, heapWorkStarted, reduceHeapSoon, releaseMappedPages } from '../src/util/memory.js';
import { loadNativeAddon } from '../src/util/native-addon.js';

interface MemoryCalls {
  trimMemory(): boolean;
  trimMemoryAsync(): Promise<boolean>;
  memoryPressure(level: number): boolean;
  releaseMappedPages(dir: string): number;
  releaseMappedPagesAsync(dir: string, minShared?: number): Promise<{ ran: boolean; released: number; shared: number }>;
}

const addon = loadNativeAddon() as MemoryCalls;
const linuxOrMac = (process.platform === 'linux' || process.platform === 'darwin') && (process.arch === 'x64' || process.arch === 'arm64');
const newSpace = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')!.space_size;

describe('memory calls', () => {
  it.runIf(linuxOrMac)('finds V8 memory-pressure notification on this Node, and a moderate one shrinks a grown young generation', async () => {
    // Grow the young generation with a burst of short-lived objects that survive a scavenge or two.
    let keep: unknown[] = [];
    for (let round = 0; round < 200; round++) {
      keep = Array.from({ length: 20_000 }, (_, i) => ({ i, s: `x${i}` }));
      if (round % 50 === 0) await sleep(0);
    }
    expect(keep.length).toBe(20_000);
    keep = [];
    const grown = newSpace();
    // Control: left alone, the grown young generation stays (a plain scavenge keeps its size).
    await sleep(300);
    expect(newSpace()).toBe(grown);
    expect(addon.memoryPressure(1)).toBe(true);
    // Incremental marking finishes between tasks: give it the loop.
    for (let i = 0; i < 100 && newSpace() >= grown; i++) await sleep(10);
    expect(newSpace()).toBeLessThan(grown);
  });

  it('refuses levels other than moderate and critical', () => {
    expect(addon.memoryPressure(0)).toBe(false);
    expect(addon.memoryPressure(3)).toBe(false);
  });

  it.runIf(process.platform === 'linux')('trims glibc heap', () => {
    expect(addon.trimMemory()).toBe(true);
  });

  it.runIf(process.platform === 'linux')('trims glibc heap on a pool thread (the idle reduction uses it)', async () => {
    await expect(addon.trimMemoryAsync()).resolves.toBeTypeOf('boolean');
  });

  it('the memory-reducing GC waits until no write-queue task runs (its final pause landed inside long upserts and closes)', async () => {
    // Control: with nothing running, it runs once writes have paused (IDLE_BEFORE_GC_MS, 500 ms).
    reduceHeapSoon();
    expect(heapReductionPending()).toBe(true);
    await sleep(800);
    expect(heapReductionPending()).toBe(false);
    // A task that runs longer than the idle delay holds it off until it ends.
    reduceHeapSoon();
    heapWorkStarted();
    await sleep(800);
    expect(heapReductionPending()).toBe(true);
    heapWorkEnded();
    await sleep(800);
    expect(heapReductionPending()).toBe(false);
  });

  it.runIf(process.platform === 'linux')(
    "releaseMappedPages drops LevelDB's mapped table pages under its directory only, each range checked again right before its madvise",
    async () => {
      const dir = realpathSync(mkdtempSync(join(tmpdir(), 'vecvault-mapped-')));
      const db = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' });
      try {
        const value = (i: number) => Buffer.alloc(64 * 1024, i % 251);
        const same = async (i: number) => Buffer.from((await db.get(`k${i}`, { fillCache: false }))!).equals(value(i));
        for (let i = 0; i < 64; i++) await db.put(`k${i}`, value(i));
        await db.compactRange('k', 'l'); // into table files, which LevelDB reads through mmap
        for (let i = 0; i < 64; i++) expect(await same(i)).toBe(true);
        // Control: a directory that holds no mapping releases nothing (the path filter, not the madvise, decides).
        expect(addon.releaseMappedPages(`${dir}-elsewhere`)).toBe(0);
        // Each range passes the PROCMAP_QUERY check (Linux 6.11+; older kernels release nothing, which is safe).
        expect(addon.releaseMappedPages(dir)).toBeGreaterThan(0);
        // Only the process's page-table entries went: LevelDB reads the same bytes back.
        for (let i = 0; i < 64; i++) expect(await same(i)).toBe(true);
        // The pool-thread form (what the store's periodic releases use) does the same, with the same path control.
        expect(await addon.releaseMappedPagesAsync(`${dir}-elsewhere`)).toMatchObject({ ran: true, released: 0 });
        const released = await addon.releaseMappedPagesAsync(dir);
        expect(released).toMatchObject({ ran: true, released: expect.any(Number) });
        expect(released.released).toBeGreaterThan(0);
        expect(released.shared).toBeGreaterThan(0); // resident shared bytes after it, read on the pool
        // Gated on resident shared bytes: far above what this process holds, it does not run.
        expect(await addon.releaseMappedPagesAsync(dir, 2 ** 50)).toMatchObject({ ran: false, released: 0 });
        for (let i = 0; i < 64; i++) expect(await same(i)).toBe(true);
      } finally {
        await db.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.runIf(process.platform === 'linux')("the store's periodic release is skipped until 8 MiB or more of file pages came in since the last one", async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'vecvault-gated-')));
    const db = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' });
    const shared = () => Number(readFileSync('/proc/self/statm', 'latin1').split(' ')[2]) * 4096;
    const value = (i: number) => Buffer.alloc(64 * 1024, i % 251);
    try {
      for (let i = 0; i < 64; i++) await db.put(`k${i}`, value(i));
      await db.compactRange('k', 'l'); // into table files, which LevelDB reads through mmap
      for (let i = 0; i < 64; i++) expect((await db.get(`k${i}`, { fillCache: false }))!.byteLength).toBe(64 * 1024);
      // The first release of the process runs and sets the mark later ones are measured from.
      expect(await releaseMappedPages(dir)).toBe(true);
      const mark = shared();
      // Right after it, far less than 8 MiB came in: skipped (the pool task checks, the main thread never reads /proc).
      expect(shared() - mark).toBeLessThan(8 << 20);
      expect(await releaseMappedPages(dir)).toBe(false);
      // Control: with no threshold the same call runs (so the skip above is the gate).
      const ungated = releaseMappedPages(dir, 0);
      // One release per directory at a time: a call while one runs is dropped whatever the growth.
      expect(releaseMappedPages(dir, 0)).toBeUndefined();
      expect(await ungated).toBe(true);
      // LevelDB reads the same bytes back after the releases.
      for (let i = 0; i < 64; i++) expect(Buffer.from((await db.get(`k${i}`, { fillCache: false }))!).equals(value(i))).toBe(true);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // After the gated-release test: an open's own releases set the process-wide mark that test starts without.
  it("an open from a snapshot asks for the idle reduction (the open's decrypted table and buffers are garbage by then)", async () => {
    const path = mkdtempSync(join(tmpdir(), 'vecvault-open-reduce-'));
    try {
      const key = new Uint8Array(32).fill(3);
      let client = new Client({ path });
      const index = await client.createIndex({ indexName: 'r', indexKey: key, dimension: 8, metric: 'euclidean' });
      await index.upsert({ ids: ['a', 'b', 'c'], vectors: [new Array(8).fill(1), new Array(8).fill(2), new Array(8).fill(3)] });
      await client.close(); // a final snapshot: the open below restores from it
      for (let i = 0; i < 100 && heapReductionPending(); i++) await sleep(20);
      expect(heapReductionPending()).toBe(false); // control: nothing asked for it before the open
      client = new Client({ path });
      const loaded = await client.loadIndex({ indexName: 'r', indexKey: key });
      expect(loaded.stats().openedFrom).toBe('snapshot');
      expect(heapReductionPending()).toBe(true);
      await client.close();
    } finally {
      rmSync(path, { recursive: true, force: true });
    }
  });
});

/** glibc (mallopt and its thresholds) on Linux (/proc/self/status for the figures). */
const glibc =
  process.platform === 'linux' && Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);

interface AllocatorChild {
  tuned: boolean;
  retainedMiB: number;
  beforeIndex?: boolean | null;
  afterIndex?: boolean | null;
}

function allocatorChild(env: Record<string, string>, ...args: string[]): AllocatorChild {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !['VECVAULT_MALLOC_TUNING', 'GLIBC_TUNABLES', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_'].includes(name),
    ),
  );
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--expose-gc', 'test/support/child-allocator.ts', ...args], {
    env: { ...clean, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as AllocatorChild;
}

describe.runIf(glibc)('malloc thresholds (tuneAllocator)', () => {
  it('keeps freed buffers from staying resident; without it (the control) they stay', () => {
    const tuned = allocatorChild({});
    expect(tuned.tuned).toBe(true);
    expect(tuned.retainedMiB).toBeLessThan(8);
    // Negative control: the same workload with glibc's adaptive thresholds keeps the 24 MiB.
    const adaptive = allocatorChild({ VECVAULT_MALLOC_TUNING: '0' });
    expect(adaptive.tuned).toBe(false);
    expect(adaptive.retainedMiB).toBeGreaterThan(16);
  });

  it('are applied when the first graph is made (createIndex and an upsert), not at import, and not when opted out', () => {
    expect(allocatorChild({}, 'via-index')).toMatchObject({ beforeIndex: null, afterIndex: true, tuned: true });
    expect(allocatorChild({ VECVAULT_MALLOC_TUNING: '0' }, 'via-index')).toMatchObject({ beforeIndex: null, afterIndex: false });
  });

  it('leaves the settings alone when the host chose any of them (GLIBC_TUNABLES or MALLOC_*_)', () => {
    expect(allocatorChild({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=262144' }).tuned).toBe(false);
    expect(allocatorChild({ MALLOC_MMAP_THRESHOLD_: '1048576' }).tuned).toBe(false);
    expect(allocatorChild({ GLIBC_TUNABLES: 'glibc.malloc.top_pad=0' }).tuned).toBe(false);
    // Other malloc tunables are not a choice of these two.
    expect(allocatorChild({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' }).tuned).toBe(true);
  });
});
