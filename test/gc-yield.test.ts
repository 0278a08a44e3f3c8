/**
 * Pool threads adding to the graph can step aside while V8 is in a
 * mark-compact's final pause (native/engine/gc-yield.h; on unless
 * VECVAULT_GC_YIELD=0), so V8's helper threads get the cores. What this checks: the hook
 * is registered and hears real full GCs; a graph built under a storm of forced
 * full GCs is byte for byte the one built without; adds really wait during a
 * pause and go on when it ends; and a pause that never ends holds them back
 * at most ~50 ms, so a missed epilogue can never hang a write.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

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
  gcYieldStats(): { hooked: number; pauses: number; yields: number; waitedMs: number };
  setGcYield(enabled: boolean): boolean;
  gcPauseForTesting(inPause: boolean): void;
}

const addon = loadNativeAddon() as Addon;
const DIM = 32;
const hooked = process.env.VECVAULT_GC_YIELD !== '0';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void; // a full, blocking mark-compact

function keysFrom(n: number, first = 1): BigUint64Array {
  return BigUint64Array.from({ length: n }, (_, i) => BigInt(first + i));
}

/** One add task (one pool thread, rows in order): the same input gives the same graph. */
async function build(vectors: Float32Array, duringAdd?: () => void): Promise<{ bytes: Uint8Array; index: Handle }> {
  const index = new addon.NativeIndex(DIM, 'cos', 'f32', 16, 64, 4);
  const keys = keysFrom(vectors.length / DIM);
  await index.prepareAdd(keys, vectors);
  const adding = index.addChunk(keys, vectors);
  duringAdd?.();
  await adding;
  return { bytes: await index.serialize(), index };
}

describe.skipIf(!hooked)('pool threads yield to V8 mark-compact pauses', () => {
  // On by default; set again here in case another test in this process turned it off.
  let previous = true;
  beforeAll(() => void (previous = addon.setGcYield(true)));
  afterAll(() => void addon.setGcYield(previous));

  it("hooks this environment's isolate and hears its full GCs; the waits are on by default", () => {
    expect(previous).toBe(true);
    const before = addon.gcYieldStats();
    expect(before.hooked).toBeGreaterThanOrEqual(1);
    gc();
    gc();
    expect(addon.gcYieldStats().pauses - before.pauses).toBeGreaterThanOrEqual(2);
  });

  it('a graph built under forced full GCs is the same bytes as one built without', async () => {
    const vectors = randomFlat(2000, DIM, 11);
    const calm = await build(vectors);
    const before = addon.gcYieldStats();
    let storming = true;
    const storm = async () => {
      // Full GCs back to back while the pool thread adds (each one a prologue/epilogue pair).
      while (storming) {
        gc();
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    let stormDone!: Promise<void>;
    const stormy = await build(vectors, () => (stormDone = storm())).finally(() => (storming = false));
    await stormDone;
    const after = addon.gcYieldStats();
    expect(after.pauses - before.pauses).toBeGreaterThan(5);
    expect(Buffer.from(stormy.bytes).equals(Buffer.from(calm.bytes))).toBe(true);
    await Promise.all([calm.index.close(), stormy.index.close()]);
  });

  it('adds wait while a pause is in progress and go on when it ends', async () => {
    const vectors = randomFlat(2000, DIM, 12);
    const before = addon.gcYieldStats();
    addon.gcPauseForTesting(true);
    let ended = false;
    const end = () => {
      if (!ended) addon.gcPauseForTesting(false);
      ended = true;
    };
    try {
      const t0 = performance.now();
      const { index } = await build(vectors, () => setTimeout(end, 25));
      const ms = performance.now() - t0;
      const after = addon.gcYieldStats();
      expect(after.yields - before.yields).toBeGreaterThanOrEqual(1);
      expect(after.waitedMs - before.waitedMs).toBeGreaterThan(5);
      expect(ms).toBeGreaterThan(20);
      await index.close();
    } finally {
      end();
    }
  });

  it('with the waits off (setGcYield(false)), a pause holds no add back; the pauses are still counted', async () => {
    const vectors = randomFlat(500, DIM, 14);
    addon.setGcYield(false);
    const before = addon.gcYieldStats();
    addon.gcPauseForTesting(true);
    try {
      const { index } = await build(vectors);
      expect(addon.gcYieldStats().yields - before.yields).toBe(0);
      expect(addon.gcYieldStats().pauses - before.pauses).toBeGreaterThanOrEqual(1);
      await index.close();
    } finally {
      addon.gcPauseForTesting(false);
      addon.setGcYield(true);
    }
  });

  it('a pause that never ends holds adds back at most ~50 ms (a missed epilogue cannot hang a write)', async () => {
    const vectors = randomFlat(2000, DIM, 13);
    const before = addon.gcYieldStats();
    addon.gcPauseForTesting(true);
    try {
      const { bytes, index } = await build(vectors);
      const after = addon.gcYieldStats();
      expect(bytes.byteLength).toBeGreaterThan(0);
      // Every row after the first ~50 ms goes straight on; real full GCs meanwhile may add their own (bounded) waits.
      expect(after.waitedMs - before.waitedMs).toBeLessThanOrEqual(55 + 50 * (after.pauses - before.pauses - 1));
      await index.close();
    } finally {
      addon.gcPauseForTesting(false);
    }
  });
});
