/**
 * The open's table work a slice at a time (issue 13: one synchronous decode of
 * a 200k table stalled the event loop for 66 ms, ~5× that at 1M): the sliced
 * id-list decoder and live-record table give exactly what the one-shot ones give, and
 * let the event loop run between slices.
 */
import { describe, expect, it } from 'vitest';
import { LiveTable } from '../src/core/live-table.js';
import { decodeIdList, decodeIdListSliced, encodeIdList } from '../src/storage/sealed.js';

const ids = Array.from({ length: 5_000 }, (_, i) => (i % 7 === 0 ? `naïve-文書-${i}` : `doc-${i}`));

describe('sliced table decoding at open', () => {
  it('decodeIdListSliced equals decodeIdList (multibyte ids too) and yields between slices', async () => {
    const bytes = Buffer.from(encodeIdList(ids));
    let yields = 0;
    const sliced = await decodeIdListSliced(bytes, ids.length, async () => void yields++, 1_000);
    expect(sliced).toEqual(decodeIdList(bytes, ids.length));
    expect(sliced).toEqual(ids);
    expect(yields).toBe(4);
    await expect(decodeIdListSliced(bytes.subarray(0, 100), ids.length, async () => undefined)).rejects.toThrow(/truncated/);
    await expect(decodeIdListSliced(Buffer.concat([bytes, Buffer.from('x')]), ids.length, async () => undefined)).rejects.toThrow(/do not match/);
  });

  it('LiveTable.restore fills its key index a slice at a time and answers as a table built by set()', async () => {
    const keys = Float64Array.from(ids, (_, i) => 3 * i + 1);
    const seqs = Float64Array.from(ids, (_, i) => i);
    let yields = 0;
    const sliced = await LiveTable.restore([...ids], keys, seqs, async () => void yields++, 1_000);
    const whole = new LiveTable();
    ids.forEach((id, i) => whole.set(id, keys[i]!, seqs[i]!));
    expect(yields).toBe(4);
    for (const [i, key] of keys.entries()) expect(sliced.idOf(key)).toBe(whole.idOf(key) ?? 'missing-' + i);
    expect(sliced.idOf(2)).toBeUndefined();
  });
});
