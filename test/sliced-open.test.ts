/**
 * The open's table work a slice at a time (issue 13: one synchronous decode of
 * a 200k table stalled the event loop for 66 ms, ~5× that at 1M): the sliced
 * id offsets and live-record table give exactly what the one-shot ones give, and
 * let the event loop run between slices.
 */
import { describe, expect, it } from 'vitest';
import { LiveRecords } from '../src/core/live-records.js';
import { LiveTable } from '../src/core/live-table.js';
import { idOffsets } from '../src/core/id-bytes.js';
import { concatSliced, decodeIdList, encodeIdList, encodeIdListSliced, splitIdList } from '../src/storage/sealed.js';
import { idBytesOf } from './support/helpers.js';

const ids = Array.from({ length: 5_000 }, (_, i) => (i % 7 === 0 ? `naïve-文書-${i}` : `doc-${i}`));

describe('sliced table decoding at open', () => {
  it("the stored ids' offsets (multibyte ids too) come a slice at a time, and match decodeIdList's cuts", async () => {
    const bytes = Buffer.from(encodeIdList(ids));
    const { lengths, utf8 } = splitIdList(bytes, ids.length);
    let yields = 0;
    const { offsets, ascii } = await idOffsets(lengths, utf8, async () => void yields++, 1_000);
    expect(yields).toBe(4);
    expect(ascii).toBe(false);
    const cut = Array.from({ length: ids.length }, (_, i) => Buffer.from(utf8.subarray(offsets[i], offsets[i + 1])).toString('utf8'));
    expect(cut).toEqual(decodeIdList(bytes, ids.length));
    expect(cut).toEqual(ids);
    expect(() => splitIdList(bytes.subarray(0, 100), ids.length)).toThrow(/truncated/);
    await expect(idOffsets(lengths, Buffer.concat([utf8, Buffer.from('x')]), async () => undefined)).rejects.toThrow(/do not match/);
  });

  it("encodeIdListSliced gives encodeIdList's bytes (multibyte and astral ids across slice edges), and concatSliced Buffer.concat's", async () => {
    const mixed = Array.from({ length: 5_003 }, (_, i) => (i % 5 === 0 ? `😀-${i}` : i % 3 === 0 ? `naïve-文書-${i}` : `d${i}`));
    let yields = 0;
    const parts = await encodeIdListSliced(mixed, async () => void yields++, 1_000);
    expect(yields).toBe(5);
    const joined = await concatSliced(parts, async () => undefined, 4_096);
    expect(joined.equals(encodeIdList(mixed))).toBe(true);
    expect(decodeIdList(joined, mixed.length)).toEqual(mixed);
    const pieces = [Buffer.alloc(0), Buffer.from('abc'), Buffer.alloc(10_000, 7), Buffer.from([1, 2, 3])];
    let steps = 0;
    expect((await concatSliced(pieces, async () => void steps++, 4_096)).equals(Buffer.concat(pieces))).toBe(true);
    expect(steps).toBe(2); // a yield after every 4 KiB copied
  });

  it('LiveTable.restore fills its key index a slice at a time and answers as a table built by set()', async () => {
    const keys = Float64Array.from(ids, (_, i) => 3 * i + 1);
    const seqs = Float64Array.from(ids, (_, i) => i);
    let yields = 0;
    const sliced = await LiveTable.restore(idBytesOf(ids), keys, seqs, async () => void yields++, 1_000);
    const whole = new LiveTable();
    ids.forEach((id, i) => whole.set(id, keys[i]!, seqs[i]!));
    expect(yields).toBe(7); // 2 between the offset slices, one before each of the 5 key slices
    for (const [i, key] of keys.entries()) expect(sliced.idOf(key)).toBe(whole.idOf(key) ?? 'missing-' + i);
    expect(sliced.idOf(2)).toBeUndefined();
  });

  it('LiveRecords.ready() indexes restored ids in slices with the event loop running between them, then lookups need nothing more', async () => {
    const n = 20_000;
    const many = Array.from({ length: n }, (_, i) => `r-${i}`);
    const live = new LiveRecords();
    await live.restore({
      counter: 1,
      count: n,
      digest: new Uint8Array(32),
      ids: idBytesOf(many),
      keys: Float64Array.from(many, (_, i) => i + 1),
      seqs: Float64Array.from(many, (_, i) => i),
      metadataFrames: [],
    });
    let ticks = 0;
    let done = false;
    const tick = (): void => {
      if (done) return;
      ticks++;
      setImmediate(tick);
    };
    setImmediate(tick);
    await live.ready();
    done = true;
    expect(ticks).toBeGreaterThanOrEqual(4); // 20k ids, 4,096 per slice: other work ran between the slices
    expect(live.get('r-19999')).toEqual({ key: 20_000, seq: 19_999 });
    expect(live.get('r-20000')).toBeUndefined();
  });
});
