/**
 * Graph insert chunks run on a helper thread at a lower CPU priority than the
 * event loop (native/engine/background-priority.h: nice + 10 on Linux, the
 * pool thread waits for it; on unless VECVAULT_BACKGROUND_NICE=0). What this
 * checks: while an add runs, a thread of this process sits 10 nice levels
 * below the main thread, and none does with the switch off (the control); the
 * graph is byte for byte the one built at normal priority; a failure inside
 * the helper (the index closed mid-add) still rejects the add with its code.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadNativeAddon } from '../src/util/native-addon.js';
import { randomFlat } from './support/vectors.js';

interface Handle {
  prepareAdd(keys: BigUint64Array, vectors: Float32Array): Promise<void>;
  addChunk(keys: BigUint64Array, vectors: Float32Array): Promise<void>;
  serialize(): Promise<Uint8Array>;
  close(): Promise<void>;
}
interface Addon {
  NativeIndex: new (dimension: number, metric: string, precision: string, connectivity: number, expansionAdd: number, slots: number) => Handle;
  backgroundPriorityStats(): { runs: number; lowered: number };
  setBackgroundPriority(enabled: boolean): boolean;
}

const addon = loadNativeAddon() as Addon;
const DIM = 32;
const linux = process.platform === 'linux';
const on = process.env.VECVAULT_BACKGROUND_NICE !== '0';

/** The nice value of each of this process's threads (Linux: field 19 of /proc/self/task/TID/stat). */
function threadNices(): Map<number, number> {
  const nices = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // after the name, which may hold spaces
      nices.set(Number(tid), Number(fields[16]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return nices;
}

/** One add task of `n` rows; returns the lowest priority (highest nice) any thread had while it ran, and the index. */
async function addWatching(n: number, seed: number): Promise<{ highestNice: number; index: Handle; vectors: Float32Array }> {
  const index = new addon.NativeIndex(DIM, 'cos', 'f32', 16, 64, 4);
  const vectors = randomFlat(n, DIM, seed);
  const keys = BigUint64Array.from({ length: n }, (_, i) => BigInt(i + 1));
  await index.prepareAdd(keys, vectors);
  let done = false;
  let highestNice = -20;
  const adding = index.addChunk(keys, vectors).finally(() => (done = true));
  while (!done) {
    for (const nice of threadNices().values()) highestNice = Math.max(highestNice, nice);
    await sleep(2);
  }
  await adding;
  return { highestNice, index, vectors };
}

describe.runIf(linux && on)('graph inserts run below the event loop’s priority', () => {
  let previous = true;
  beforeAll(() => void (previous = addon.setBackgroundPriority(true)));
  afterAll(() => void addon.setBackgroundPriority(previous));

  it('an add runs on a helper thread 10 nice levels below the main thread; with the switch off none is (control)', async () => {
    const mainNice = threadNices().get(process.pid)!;
    const before = addon.backgroundPriorityStats();
    const lowered = await addWatching(6_000, 1);
    const after = addon.backgroundPriorityStats();
    expect(after.runs - before.runs).toBe(1);
    expect(after.lowered - before.lowered).toBe(1);
    expect(lowered.highestNice).toBe(Math.min(19, mainNice + 10));
    await lowered.index.close();

    addon.setBackgroundPriority(false);
    try {
      const normal = await addWatching(6_000, 2);
      expect(addon.backgroundPriorityStats()).toEqual(after); // no helper thread
      expect(normal.highestNice).toBeLessThan(mainNice + 10);
      await normal.index.close();
    } finally {
      addon.setBackgroundPriority(true);
    }
  });

  it('builds the same graph byte for byte as at normal priority', async () => {
    const lowered = await addWatching(3_000, 3);
    addon.setBackgroundPriority(false);
    let normalBytes: Uint8Array;
    try {
      const index = new addon.NativeIndex(DIM, 'cos', 'f32', 16, 64, 4);
      const keys = BigUint64Array.from({ length: 3_000 }, (_, i) => BigInt(i + 1));
      await index.prepareAdd(keys, lowered.vectors);
      await index.addChunk(keys, lowered.vectors);
      normalBytes = await index.serialize();
      await index.close();
    } finally {
      addon.setBackgroundPriority(true);
    }
    expect(Buffer.from(await lowered.index.serialize()).equals(Buffer.from(normalBytes))).toBe(true);
    await lowered.index.close();
  });

  it('a failure inside the helper thread still rejects the add with its code (closed mid-add)', async () => {
    const index = new addon.NativeIndex(DIM, 'cos', 'f32', 16, 64, 4);
    const n = 20_000;
    const vectors = randomFlat(n, DIM, 4);
    const keys = BigUint64Array.from({ length: n }, (_, i) => BigInt(i + 1));
    await index.prepareAdd(keys, vectors);
    const adding = index.addChunk(keys, vectors);
    await sleep(20);
    const closing = index.close();
    await expect(adding).rejects.toMatchObject({ code: 'CLOSED' });
    await closing;
  });
});
