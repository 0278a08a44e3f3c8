/** Storage keys (src/storage/layout.ts): the batched form must give exactly the keys the single one gives. */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { indexKey, indexKeys, RECORD } from '../src/storage/layout.js';

describe('indexKeys', () => {
  it("gives indexKey's key for every suffix, in order, whatever the suffixes' lengths", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 30 }), (indexId, suffixes) => {
        const keys = indexKeys(indexId, RECORD, suffixes);
        expect(keys.map((k) => Buffer.from(k).toString('hex'))).toEqual(suffixes.map((s) => indexKey(indexId, RECORD, s).toString('hex')));
      }),
    );
  });

  it('gives keys that later writes to the suffixes do not change (they are copies, not views of the input)', () => {
    const suffix = randomBytes(32);
    const [key] = indexKeys(randomBytes(16), RECORD, [suffix]);
    const before = Buffer.from(key!);
    suffix.fill(0);
    expect(Buffer.from(key!).equals(before)).toBe(true);
  });
});
