/** KeyTable (engine key → id) behaves like a Map under random inserts, overwrites, deletes and rehashes. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyTable } from '../src/core/key-table.js';

const KEY_SPREAD = 0xb5297;
const engineKey = (n: number) => (n * KEY_SPREAD) % 2 ** 48;

describe('KeyTable', () => {
  it('agrees with a Map on random operation sequences (spread keys and arbitrary 48-bit keys)', () => {
    const key = fc.oneof(fc.nat(5000).map(engineKey), fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.nat(64));
    const op = fc.oneof(
      fc.tuple(fc.constant('set' as const), key, fc.string()),
      fc.tuple(fc.constant('delete' as const), key, fc.constant('')),
      fc.tuple(fc.constant('get' as const), key, fc.constant('')),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 3000 }), (ops) => {
        const table = new KeyTable();
        const map = new Map<number, string>();
        for (const [kind, k, id] of ops) {
          if (kind === 'set') {
            table.set(k, id);
            map.set(k, id);
          } else if (kind === 'delete') {
            expect(table.delete(k)).toBe(map.delete(k));
          } else {
            expect(table.get(k)).toBe(map.get(k));
          }
          expect(table.size).toBe(map.size);
        }
        for (const [k, id] of map) expect(table.get(k)).toBe(id);
      }),
      { numRuns: 100 },
    );
  });

  it('from() builds a table equal to the pairs; churn through tombstones keeps lookups exact', () => {
    const n = 50_000;
    const keys = Float64Array.from({ length: n }, (_, i) => engineKey(i));
    const ids = Array.from({ length: n }, (_, i) => `id${i}`);
    const table = KeyTable.from(keys, ids);
    expect(table.size).toBe(n);
    expect(table.get(engineKey(123))).toBe('id123');
    expect(table.get(engineKey(n))).toBeUndefined();
    // Ten rounds replacing half the entries with fresh keys (as upserts do).
    let next = n;
    const live = new Map(ids.map((id, i) => [id, keys[i]!]));
    for (let round = 0; round < 10; round++) {
      let i = 0;
      for (const [id, old] of live) {
        if (i++ % 2) continue;
        expect(table.delete(old)).toBe(true);
        const fresh = engineKey(next++);
        table.set(fresh, id);
        live.set(id, fresh);
      }
    }
    expect(table.size).toBe(n);
    for (const [id, k] of live) expect(table.get(k)).toBe(id);
  });
});
