import { describe, expect, it } from 'vitest';
import { ValidationError } from '../src/errors.js';
import { compileFilter, MetadataIndex } from '../src/filter/index.js';

function sorted(keys: Iterable<number>): number[] {
  return [...keys].sort((a, b) => a - b);
}

/** Metadata whose `n` field counts how often it is read, to see whether match() scans. */
function countingRecord(n: number, reads: { count: number }): Record<string, unknown> {
  const record: Record<string, unknown> = { tag: n % 2 === 0 ? 'even' : 'odd' };
  Object.defineProperty(record, 'n', {
    enumerable: true,
    get() {
      reads.count++;
      return n;
    },
  });
  return record;
}

describe('MetadataIndex', () => {
  it('matches like a scan and follows set, overwrite and delete', () => {
    const index = new MetadataIndex();
    index.set(1, { color: 'red', size: 3 });
    index.set(2, { color: 'blue', size: 5 });
    index.set(3, { color: ['red', 'green'] });
    index.set(4, undefined);
    const red = compileFilter({ color: 'red' });
    expect(sorted(index.match(red))).toEqual([1, 3]);
    index.set(1, { color: 'blue' });
    expect(sorted(index.match(red))).toEqual([3]);
    expect(index.delete(3)).toBe(true);
    expect(index.delete(3)).toBe(false);
    expect(sorted(index.match(red))).toEqual([]);
    expect(sorted(index.match(compileFilter({ color: null })))).toEqual([4]);
    expect(sorted(index.match(compileFilter({ color: { $exists: false } })))).toEqual([4]);
    expect(sorted(index.match(compileFilter({ size: { $gt: 1 } })))).toEqual([2]);
    expect(sorted(index.match(compileFilter({})))).toEqual([1, 2, 4]);
    expect(index.size).toBe(3);
    expect(index.has(2)).toBe(true);
    expect(index.get(2)).toEqual({ color: 'blue', size: 5 });
    expect(index.get(3)).toBeUndefined();
    index.clear();
    expect(index.size).toBe(0);
    expect(sorted(index.match(red))).toEqual([]);
  });

  it('answers equality from postings without reading records again', () => {
    const reads = { count: 0 };
    const index = new MetadataIndex();
    for (let i = 0; i < 1000; i++) index.set(i, countingRecord(i % 10, reads));
    reads.count = 0;
    const filter = compileFilter({ n: { $in: [3, 4] } });
    expect(index.match(filter).size).toBe(200); // builds the postings for `n`: one read per record
    expect(reads.count).toBe(1000);
    reads.count = 0;
    index.set(1001, {});
    expect(index.match(filter).size).toBe(200);
    expect(reads.count).toBe(0);
    // An AND checks its other conditions only on the candidates of its most selective indexed part.
    const and = compileFilter({ n: 3, tag: 'odd', $or: [{ n: { $gt: 2 } }, { x: 1 }] });
    expect(index.match(and).size).toBe(100); // builds the range index for `n` on the way
    index.set(1000, { tag: 'odd' }); // a write: the cached result goes, the indexes stay
    reads.count = 0;
    expect(index.match(and).size).toBe(100);
    expect(reads.count).toBe(100);
    // Ranges come from the sorted index.
    reads.count = 0;
    expect(index.match(compileFilter({ n: { $gte: 8 } })).size).toBe(200);
    expect(index.match(compileFilter({ n: { $gt: 8, $lte: 9 } })).size).toBe(100);
    expect(reads.count).toBe(100); // `$lte` checked on the 100 candidates of `$gt`
    // When even the best indexed part of an AND matches most records, a scan is cheaper.
    reads.count = 0;
    expect(index.match(compileFilter({ n: { $gt: 4, $lte: 5 } })).size).toBe(100);
    expect(reads.count).toBeGreaterThanOrEqual(1000);
  });

  it('keeps postings current after they are built', () => {
    const index = new MetadataIndex();
    for (let i = 0; i < 10; i++) index.set(i, { tag: `t${i % 3}` });
    const t1 = compileFilter({ tag: 't1' });
    expect(sorted(index.match(t1))).toEqual([1, 4, 7]);
    index.set(0, { tag: 't1' });
    index.set(4, { tag: ['t0', 't2'] });
    index.delete(7);
    index.set(20, { tag: 't1' });
    expect(sorted(index.match(t1))).toEqual([0, 1, 20]);
    expect(sorted(index.match(compileFilter({ tag: { $exists: false } })))).toEqual([]);
  });

  it('returns snapshots that later writes do not change, cached until the next write', () => {
    const index = new MetadataIndex();
    index.set(1, { a: 1 });
    index.set(2, { a: 1 });
    const first = index.match(compileFilter({ a: 1 }));
    expect(index.match(compileFilter({ a: 1 }))).toBe(first); // same filter, no write: cached
    index.set(3, { a: 1 });
    index.delete(1);
    expect(sorted(first)).toEqual([1, 2]);
    expect(sorted(index.match(compileFilter({ a: 1 })))).toEqual([2, 3]);
  });

  it('never confuses cached results of different filters', () => {
    const index = new MetadataIndex();
    index.set(1, { a: { test: 1 }, b: -0 });
    index.set(2, { a: { test: 2 }, b: 0 });
    expect(sorted(index.match(compileFilter({ a: { test: 1 } })))).toEqual([1]);
    expect(sorted(index.match(compileFilter({ a: { test: 2 } })))).toEqual([2]);
    expect(sorted(index.match(compileFilter({ a: { $in: [{ test: 2 }] } })))).toEqual([2]);
    expect(sorted(index.match(compileFilter({ b: 0 })))).toEqual([1, 2]);
    expect(sorted(index.match(compileFilter({ b: -0 })))).toEqual([1, 2]);
    // More distinct filters than the cache holds, revisited in turn.
    for (let i = 0; i < 60; i++) {
      const threshold = i % 20;
      const expected = threshold === 0 ? [1, 2] : threshold === 1 ? [1, 2] : threshold === 2 ? [2] : [];
      expect(sorted(index.match(compileFilter({ 'a.test': { $gte: threshold } })))).toEqual(expected);
    }
  });

  it('stays correct beyond the number of indexed paths', () => {
    const index = new MetadataIndex();
    const record: Record<string, number> = {};
    for (let p = 0; p < 100; p++) record[`f${p}`] = p;
    index.set(1, record);
    index.set(2, {});
    for (let p = 0; p < 100; p++) {
      expect(sorted(index.match(compileFilter({ [`f${p}`]: p })))).toEqual([1]);
    }
  });

  it('reports memory that grows with records and postings and shrinks with deletes', () => {
    const index = new MetadataIndex();
    const empty = index.memoryUsage();
    for (let i = 0; i < 1000; i++) index.set(i, { tag: `tag-${i % 50}`, text: 'x'.repeat(100) });
    const withRecords = index.memoryUsage();
    expect(withRecords).toBeGreaterThan(empty + 1000 * 200);
    index.match(compileFilter({ tag: 'tag-1' }));
    const withPostings = index.memoryUsage();
    expect(withPostings).toBeGreaterThan(withRecords + 1000 * 16);
    for (let i = 0; i < 1000; i++) index.delete(i);
    expect(index.memoryUsage()).toBeLessThan(withPostings / 10);
    index.clear();
    expect(index.memoryUsage()).toBe(empty);
  });

  it('rejects keys that are not non-negative safe integers', () => {
    const index = new MetadataIndex();
    for (const key of [-1, 1.5, Number.NaN, 2 ** 53]) {
      expect(() => index.set(key, {})).toThrow(ValidationError);
    }
  });

  it('keeps range answers exact through many writes and rebuilds', () => {
    const index = new MetadataIndex();
    const model = new Map<number, unknown>();
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const put = (key: number): void => {
      const kind = random(6);
      const value = kind === 0 ? `s${random(50)}` : kind === 1 ? [random(100), `s${random(50)}`] : kind === 2 ? undefined : random(100);
      const metadata = value === undefined ? {} : { v: value, w: random(3) };
      index.set(key, metadata);
      model.set(key, metadata);
    };
    for (let key = 0; key < 3000; key++) put(key);
    const filters = [{ v: { $lt: 10 } }, { v: { $gte: 's40' } }, { v: { $gt: 50, $lte: 60 }, w: 1 }, { $or: [{ v: { $lte: 3 } }, { v: { $gt: 's48' } }] }].map(
      (raw) => compileFilter(raw),
    );
    for (let round = 0; round < 12; round++) {
      for (let i = 0; i < 400; i++) {
        const key = random(3500);
        if (random(4) === 0) {
          index.delete(key);
          model.delete(key);
        } else put(key);
      }
      for (const filter of filters) {
        const expected = [...model].filter(([, m]) => filter(m)).map(([k]) => k);
        expect(sorted(index.match(filter))).toEqual(sorted(expected));
      }
    }
  });
});
