/**
 * The open's table work a slice at a time (issue 13: one synchronous decode of
 * a 200k table stalled the event loop for 66 ms, ~5× that at 1M): the sliced
 * id-list decoder and key table give exactly what the one-shot ones give, and
 * let the event loop run between slices.
 */
import { describe, expect, it } from 'vitest';
import { KeyTable } from '../src/core/key-table.js';
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

  it('KeyTable.fromSliced answers as KeyTable.from and yields between slices', async () => {
    const keys = ids.map((_, i) => 3 * i + 1);
    let yields = 0;
    const sliced = await KeyTable.fromSliced(keys, ids, async () => void yields++, 1_000);
    const whole = KeyTable.from(keys, ids);
    expect(yields).toBe(4);
    for (const [i, key] of keys.entries()) expect(sliced.get(key)).toBe(whole.get(key) ?? 'missing-' + i);
    expect(sliced.get(2)).toBeUndefined();
  });
});
