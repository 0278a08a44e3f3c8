/**
 * src/util/msgpack.ts: msgpackr keeps module-level state between calls, and
 * the wrappers let go of what a large call left there. Each protection has
 * its control: the same call through a plain Packr keeps the memory.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';

import { pack, unpack } from '../src/util/msgpack.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const plain = new Packr({ useRecords: false, mapsAsObjects: true });

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Whether what `make` returns a weak reference to is gone after full GCs (WeakRefs hold until the job ends). */
async function collected(make: () => WeakRef<object>): Promise<boolean> {
  const ref = make();
  for (let round = 0; round < 3; round++) {
    await turn();
    gc();
  }
  return ref.deref() === undefined;
}

/** A small value packed into the middle of a 1 MiB buffer (as a table's head sits inside the decrypted table), decoded from a view. */
function decodedFromView(decode: (bytes: Uint8Array) => unknown): WeakRef<object> {
  const bytes = pack({ counter: 7, frames: [1, 2, 3] });
  const big = new Uint8Array(1 << 20);
  big.set(bytes, 4096);
  expect(decode(big.subarray(4096, 4096 + bytes.byteLength))).toEqual({ counter: 7, frames: [1, 2, 3] });
  return new WeakRef(big.buffer);
}

describe('msgpack wrappers', () => {
  it('unpack: the large buffer a value was decoded from is not kept once the caller drops it', async () => {
    // Control: msgpackr alone keeps a DataView over the whole buffer until its next unpack.
    expect(await collected(() => decodedFromView((bytes) => plain.unpack(bytes)))).toBe(false);
    expect(await collected(() => decodedFromView(unpack))).toBe(true);
  });

  it('pack: after a large value, later values go to a buffer of the usual size', () => {
    const large = { blob: new Uint8Array(300_000).fill(5), list: Array.from({ length: 100 }, (_, i) => ({ i })) };
    // Control: msgpackr alone grows its shared target to the large value's size and keeps allocating at that size.
    plain.pack(large);
    expect(plain.pack({ small: 1 }).buffer.byteLength).toBeGreaterThan(300_000);
    const packed = pack(large);
    const same = (bytes: Uint8Array) => {
      const back = unpack(bytes) as typeof large;
      return Buffer.from(back.blob).equals(large.blob) && JSON.stringify(back.list) === JSON.stringify(large.list);
    };
    expect(same(packed)).toBe(true);
    const small = pack({ small: 1 });
    expect(small.buffer.byteLength).toBeLessThanOrEqual(8192);
    expect(unpack(small)).toEqual({ small: 1 });
    // What was packed before keeps its bytes: the new buffer is fresh, not the old one reused.
    expect(same(packed)).toBe(true);
  });

  it('round-trips what vecvault stores: maps, binary (as bytes), nested metadata, integers past 2^32', () => {
    const record = { id: 'ünï', key: 2 ** 40 + 3, vector: new Uint8Array([1, 2, 3, 4]), metadata: { tags: ['x', 'y'], n: 1.5, nested: { ok: true } } };
    const back = unpack(pack(record)) as typeof record;
    expect({ ...back, vector: Array.from(back.vector) }).toEqual({ ...record, vector: [1, 2, 3, 4] });
    expect(unpack(pack(null))).toBeNull();
    expect(unpack(pack([]))).toEqual([]);
  });
});
