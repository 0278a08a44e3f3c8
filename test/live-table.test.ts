/**
 * LiveTable (the live records: id → engine key and seq, engine key → id)
 * behaves like a pair of Maps under random sets, overwrites, removes, hash
 * collisions, tombstone churn, row squeezing and a sliced restore, and while
 * its hash tables grow incrementally (an old and a new table both live, rows
 * migrating a few per insert).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LiveRecords } from '../src/core/live-records.js';
import { hashIdBytes } from '../src/core/id-bytes.js';
import { hashId, hashKey, LiveTable, nativeTables, RowSlots } from '../src/core/live-table.js';
import { idBytesOf } from './support/helpers.js';

const KEY_SPREAD = 0xb5297;
const engineKey = (n: number) => (n * KEY_SPREAD) % 2 ** 48;

interface Entry {
  key: number;
  seq: number;
}

/** Checks the table against the model: sizes, both lookups, and iteration in the Map's insertion order. */
function expectSame(table: LiveTable, model: Map<string, Entry>): void {
  expect(table.size).toBe(model.size);
  for (const [id, { key, seq }] of model) {
    const row = table.rowOfId(id);
    expect(row).toBeGreaterThanOrEqual(0);
    expect([table.idAt(row), table.keyAt(row), table.seqAt(row)]).toEqual([id, key, seq]);
    expect(table.idOf(key)).toBe(id);
  }
  expect([...table.liveRows()].map((row) => table.idAt(row))).toEqual([...model.keys()]);
  expect([...table.liveKeys()]).toEqual([...model.values()].map((e) => e.key));
}

/** A table and its model holding ids `id0` … `id<n - 1>`, each with engineKey(i) and seq i. */
function filled(n: number): { table: LiveTable; model: Map<string, Entry> } {
  const table = new LiveTable();
  const model = new Map<string, Entry>();
  for (let i = 0; i < n; i++) {
    table.set(`id${i}`, engineKey(i), i);
    model.set(`id${i}`, { key: engineKey(i), seq: i });
  }
  return { table, model };
}

/** A `between` for reserve() that writes `id` into the table (and the model) at its first call, as a racing writer would. */
function writeOnce(table: LiveTable, model: Map<string, Entry>, id: string, n: number): { between: () => Promise<void>; wrote: () => boolean } {
  let wrote = false;
  return {
    between: async () => {
      if (wrote) return;
      wrote = true;
      table.set(id, engineKey(n), n);
      model.set(id, { key: engineKey(n), seq: n });
    },
    wrote: () => wrote,
  };
}

/** Two distinct ids with the same hashId (found once by a birthday search over `c<n>`; the test checks they still collide). */
const COLLIDING: [string, string] = ['c693596', 'c1170850'];

describe('LiveTable', () => {
  it('agrees with a Map on random set / overwrite / remove sequences (fresh keys per set, as upserts assign)', () => {
    const id = fc.oneof(
      fc.nat(40).map((n) => `id${n}`),
      fc.string({ maxLength: 4 }),
    );
    const op = fc.oneof(
      { weight: 3, arbitrary: fc.tuple(fc.constant('set' as const), id) },
      { weight: 2, arbitrary: fc.tuple(fc.constant('remove' as const), id) },
      { weight: 1, arbitrary: fc.tuple(fc.constant('get' as const), id) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 1000 }), fc.boolean(), (ops, spread) => {
        const table = new LiveTable();
        const model = new Map<string, Entry>();
        let counter = 0;
        for (const [kind, id] of ops) {
          if (kind === 'set') {
            const key = spread ? engineKey(counter) : counter; // spread keys, and consecutive ones (probe runs)
            const seq = ++counter;
            const old = table.set(id, key, seq);
            expect(old).toBe(model.get(id)?.key ?? -1);
            model.set(id, { key, seq });
          } else if (kind === 'remove') {
            expect(table.remove(id)).toEqual(model.get(id));
            model.delete(id);
          } else {
            const row = table.rowOfId(id);
            expect(row >= 0 ? table.keyAt(row) : undefined).toBe(model.get(id)?.key);
          }
          expect(table.size).toBe(model.size);
        }
        expectSame(table, model);
      }),
      { numRuns: 100 },
    );
  });

  it('keeps ids with equal hashes apart', () => {
    const [a, b] = COLLIDING;
    expect(hashId(a)).toBe(hashId(b));
    const table = new LiveTable();
    table.set(a, 1, 1);
    table.set(b, 2, 2);
    expect([table.keyAt(table.rowOfId(a)), table.keyAt(table.rowOfId(b))]).toEqual([1, 2]);
    expect(table.remove(a)).toEqual({ key: 1, seq: 1 });
    expect(table.rowOfId(a)).toBe(-1);
    expect(table.idOf(2)).toBe(b);
    table.set(a, 3, 3);
    expect(table.idOf(3)).toBe(a);
  });

  it('churn: delete/reinsert and overwrite rounds through tombstones and squeezes keep lookups exact', async () => {
    const n = 6_000;
    let table = new LiveTable();
    const model = new Map<string, Entry>();
    let counter = 0;
    const put = (id: string) => {
      const entry = { key: engineKey(counter++), seq: counter };
      table.set(id, entry.key, entry.seq);
      model.set(id, entry);
    };
    for (let i = 0; i < n; i++) put(`id${i}`);
    for (let round = 0; round < 6; round++) {
      let i = 0;
      for (const id of [...model.keys()]) {
        if (i++ % 3 === 0) {
          expect(table.remove(id)).toEqual(model.get(id));
          model.delete(id);
        } else if (i % 3 === 1) put(id); // overwrite: new key, same row
      }
      for (let j = 0; j < n / 3; j++) put(`r${round}-${j}`); // fresh ids after the removed ones
      expect(table.size).toBe(model.size);
    }
    // Most rows go, making a squeeze due; the survivors keep their order.
    for (const id of [...model.keys()].filter((_, i) => i % 10 !== 0)) {
      table.remove(id);
      model.delete(id);
    }
    expectSame(table, model);
    expect(table.squeezeDue).toBe(true);
    table = await table.squeezed(async () => undefined, 1_000);
    expect(table.squeezeDue).toBe(false);
    expectSame(table, model);
    expect(table.memoryUsage()).toBeLessThan(64 * model.size * 8);
  });

  it("restore takes a snapshot's columns over, indexes ids lazily, and then behaves as if built by set()", async () => {
    const n = 5_000;
    const ids = Array.from({ length: n }, (_, i) => (i % 7 === 0 ? `naïve-文書-${i}` : `doc-${i}`));
    const keys = Float64Array.from(ids, (_, i) => engineKey(i));
    const seqs = Float64Array.from(ids, (_, i) => i + 1);
    let yields = 0;
    const table = await LiveTable.restore(idBytesOf(ids), keys.slice(), seqs.slice(), async () => void yields++, 1_000); // copies: it takes its columns over
    expect(yields).toBe(7); // 2 between the offset slices (2,000 ids each), then one before each of the 5 key slices
    expect(table.idOf(engineKey(123))).toBe(ids[123]);
    expect(table.idOf(engineKey(n))).toBeUndefined();
    expect(table.idsComplete).toBe(false);
    expect(table.indexIdsSlice(1_000)).toBe(false);
    // A lookup by id completes the index first.
    expect(table.keyAt(table.rowOfId(ids[4_999]!))).toBe(engineKey(4_999));
    expect(table.idsComplete).toBe(true);
    const model = new Map(ids.map((id, i) => [id, { key: keys[i]!, seq: seqs[i]! }]));
    table.set(ids[0]!, engineKey(n), n + 1);
    model.set(ids[0]!, { key: engineKey(n), seq: n + 1 });
    table.set('new', engineKey(n + 1), n + 2);
    model.set('new', { key: engineKey(n + 1), seq: n + 2 });
    expect(table.remove(ids[1]!)).toEqual({ key: engineKey(1), seq: 2 });
    model.delete(ids[1]!);
    expectSame(table, model);
  });

  it('an iteration across a squeeze fails instead of skipping rows (in place, and over a table replaced by its squeezed copy)', async () => {
    const table = new LiveTable();
    for (let i = 0; i < 1_000; i++) table.set(`id${i}`, i, i);
    let rows = table.liveRows();
    rows.next();
    for (let i = 0; i < 750; i++) table.remove(`id${i}`);
    rows.next(); // removals alone renumber nothing
    const copy = await table.squeezed(async () => undefined, 16);
    expect(copy).not.toBe(table);
    rows.next(); // the copy leaves this table as it was until the owner retires it
    table.retire();
    expect(() => rows.next()).toThrow(/compacted during an iteration/);
    // In place: past three times as many rows as live ones, the next insert squeezes at once.
    rows = copy.liveRows();
    rows.next();
    for (let i = 750; i < 950; i++) copy.remove(`id${i}`);
    expect(copy.squeezeDue).toBe(true);
    copy.set('fresh', 1_000, 1_000);
    expect(copy.squeezeDue).toBe(false);
    expect(() => rows.next()).toThrow(/compacted during an iteration/);
  });

  it('squeezed() copies the live rows in slices, order kept, and the copy then behaves as if built by set()', async () => {
    const n = 20_000;
    const ids = Array.from({ length: n }, (_, i) => (i % 11 === 0 ? `naïve-文書-${i}` : i % 13 === 0 ? `😀${i}` : `doc-${i}`));
    const table = new LiveTable({ syncRebuildRows: 0 });
    const model = new Map<string, Entry>();
    ids.forEach((id, i) => {
      table.set(id, engineKey(i), i + 1);
      model.set(id, { key: engineKey(i), seq: i + 1 });
    });
    for (let i = 0; i < n; i++) {
      if (i % 3 === 0) continue;
      expect(table.remove(ids[i]!)).toEqual(model.get(ids[i]!));
      model.delete(ids[i]!);
    }
    expect(table.squeezeDue).toBe(true);
    let yields = 0;
    const copy = await table.squeezed(async () => void yields++, 2_048, { syncRebuildRows: 0 });
    expect(yields).toBe(Math.ceil(n / 2_048) - 1);
    expect(copy.size).toBe(model.size);
    expectSame(copy, model);
    expectSame(table, model); // the original is untouched
    // The copy takes writes as any table would: overwrites, removals, new ids across its growth boundaries.
    for (let i = 0; i < 3 * n; i++) {
      const id = i % 2 === 0 ? ids[(i * 7) % n]! : `new-${i}`;
      if (i % 5 === 0) {
        expect(copy.remove(id)).toEqual(model.get(id));
        model.delete(id);
      } else {
        copy.set(id, engineKey(n + i), n + i);
        model.set(id, { key: engineKey(n + i), seq: n + i });
      }
    }
    expectSame(copy, model);
  });

  it('reserve() grows the columns in slices ahead of the inserts; lookups stay exact across doublings, odd ids included', async () => {
    const table = new LiveTable({ syncRebuildRows: 0 });
    const model = new Map<string, Entry>();
    // The empty id is an id (removed rows are undefined, not ''); lone surrogates and their pairs are distinct ids.
    const odd = ['', '\ud800', '\udc00', '\ud800\udc00', '😀', 'naïve', 'e\u0301', 'é'];
    let n = 0;
    const put = (id: string) => {
      table.set(id, engineKey(n), n);
      model.set(id, { key: engineKey(n), seq: n });
      n++;
    };
    let yields = 0;
    for (let batch = 0; batch < 40; batch++) {
      const extra = 1 + ((batch * 337) % 900);
      await table.reserve(extra, async () => void yields++, 256);
      const capacity = table.capacity;
      expect(capacity).toBeGreaterThanOrEqual(table.size + extra);
      for (let i = 0; i < extra; i++) put(batch === 0 && i < odd.length ? odd[i]! : `b${batch}-${i}`);
      expect(table.capacity).toBe(capacity); // nothing grew inside set()
      if (batch % 7 === 3)
        for (const id of [...model.keys()].filter((_, i) => i % 9 === batch % 9)) {
          table.remove(id);
          model.delete(id);
        }
    }
    expect(yields).toBeGreaterThan(0);
    expectSame(table, model);
    for (const id of odd) expect(table.rowOfId(id) >= 0).toBe(model.has(id));
    expect(table.rowOfId('\ud800\ud800')).toBe(-1);
  });

  it('reserve() makes each new column in its own turn (one turn of six allocations stalled the event loop at 1M)', async () => {
    const { table, model } = filled(3_000);
    const before = table.capacity;
    const capacities: number[] = [];
    let yields = 0;
    // One slice of rows: every wait seen here comes from an allocation (5 row columns, the arena), then none from the copy.
    await table.reserve(
      2 * before,
      async () => {
        yields++;
        capacities.push(table.capacity);
      },
      1_000_000,
    );
    expect(yields).toBe(6);
    expect(capacities.every((c) => c === before)).toBe(true); // not swapped in until copied
    expect(table.capacity).toBeGreaterThanOrEqual(3 * before);
    expectSame(table, model);
    // A write during an allocation's turn: the grown columns are dropped, nothing is lost.
    const { table: other, model: otherModel } = filled(3_000);
    const write = writeOnce(other, otherModel, 'late', 77_777);
    await other.reserve(10_000, write.between, 1_000_000);
    expect(write.wrote()).toBe(true);
    expect(other.capacity).toBe(before);
    expectSame(other, otherModel);
  });

  it('reserve() drops its copy when the table was written to between its slices (set() then grows on its own)', async () => {
    const { table, model } = filled(4_096);
    const before = table.capacity;
    const write = writeOnce(table, model, 'id7', 9_999);
    await table.reserve(10_000, write.between, 1_000);
    expect(write.wrote()).toBe(true);
    expect(table.capacity).toBe(before); // not swapped in: it would have lost the write above
    expectSame(table, model);
    // Control: undisturbed, the same call does swap in grown columns.
    await table.reserve(10_000, async () => undefined, 1_000);
    expect(table.capacity).toBeGreaterThanOrEqual(4_096 + 10_000);
    expectSame(table, model);
  });

  it('squeezed() never returns a stale copy: a write between its slices makes it squeeze in place instead', async () => {
    const { table, model } = filled(1_000);
    for (let i = 0; i < 700; i++) {
      table.remove(`id${i}`);
      model.delete(`id${i}`);
    }
    let wrote = false;
    const result = await table.squeezed(async () => {
      if (wrote) return;
      wrote = true;
      table.set('id999', engineKey(5_000), 5_000); // an overwrite: same row, new key
      model.set('id999', { key: engineKey(5_000), seq: 5_000 });
    }, 100);
    expect(result).toBe(table);
    expect(table.squeezeDue).toBe(false);
    expectSame(table, model);
  });

  describe('incremental rebuilds (two tables live while rows migrate)', () => {
    /** Lookups of `id` (by id and by its key) agree with the model, and a key the model no longer has finds nothing. */
    const expectLookup = (table: LiveTable, model: Map<string, Entry>, id: string, staleKey?: number) => {
      const row = table.rowOfId(id);
      const entry = model.get(id);
      expect(row >= 0 ? [table.keyAt(row), table.seqAt(row)] : undefined).toEqual(entry ? [entry.key, entry.seq] : undefined);
      if (entry) expect(table.idOf(entry.key)).toBe(id);
      if (staleKey !== undefined && staleKey !== entry?.key) {
        expect(table.idOf(staleKey)).toBeUndefined();
        expect(table.rowOfKey(staleKey)).toBe(-1); // a removed row keeps its key in the column: the hash table must not lead to it
      }
    };

    it('agrees with a Map across many growth boundaries, with removals and overwrites interleaved mid-migration', () => {
      const id = fc.oneof({ weight: 4, arbitrary: fc.nat(3_000).map((n) => `id${n}`) }, { weight: 1, arbitrary: fc.constantFrom(...COLLIDING) });
      const op = fc.oneof(
        { weight: 5, arbitrary: fc.tuple(fc.constant('set' as const), id) },
        { weight: 2, arbitrary: fc.tuple(fc.constant('remove' as const), id) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('get' as const), id) },
      );
      let sawRebuilding = false;
      fc.assert(
        fc.property(fc.array(op, { minLength: 200, maxLength: 4_000 }), fc.boolean(), (ops, spread) => {
          const table = new LiveTable({ syncRebuildRows: 0 }); // every rebuild incremental, even of a 16-slot table
          const model = new Map<string, Entry>();
          let counter = 0;
          ops.forEach(([kind, id], i) => {
            const before = model.get(id)?.key;
            if (kind === 'set') {
              const key = spread ? engineKey(counter) : counter;
              const seq = ++counter;
              expect(table.set(id, key, seq)).toBe(before ?? -1);
              model.set(id, { key, seq });
            } else if (kind === 'remove') {
              expect(table.remove(id)).toEqual(model.get(id));
              model.delete(id);
            }
            sawRebuilding ||= table.rebuilding;
            expectLookup(table, model, id, before);
            if (i % 401 === 0) expectSame(table, model);
          });
          expectSame(table, model);
        }),
        { numRuns: 40 },
      );
      expect(sawRebuilding).toBe(true);
    });

    it('at the default threshold: 40k ids with every 3rd removed and every 5th overwritten as they go', () => {
      const table = new LiveTable();
      const model = new Map<string, Entry>();
      let counter = 0;
      let rebuildingSets = 0;
      for (let i = 0; i < 40_000; i++) {
        const key = engineKey(counter++);
        table.set(`doc-${i}`, key, counter);
        model.set(`doc-${i}`, { key, seq: counter });
        if (table.rebuilding) rebuildingSets++;
        if (i % 3 === 2) {
          const gone = `doc-${i - 1}`;
          expect(table.remove(gone)).toEqual(model.get(gone));
          model.delete(gone);
        }
        if (i % 5 === 4) {
          const again = `doc-${i - 4}`;
          const stale = model.get(again)?.key;
          const fresh = engineKey(counter++);
          table.set(again, fresh, counter);
          model.set(again, { key: fresh, seq: counter });
          expectLookup(table, model, again, stale);
        }
        if (table.rebuilding && i % 97 === 0) expectLookup(table, model, `doc-${(i * 7919) % (i + 1)}`);
      }
      expect(rebuildingSets).toBeGreaterThan(1_000); // the big rebuilds were spread over later inserts
      expectSame(table, model);
    });

    it('overwrites alone (no new rows) finish a migration, and misses still end their probe', () => {
      const table = new LiveTable({ syncRebuildRows: 0 });
      const n = 6_000;
      for (let i = 0; i < n; i++) table.set(`o${i}`, engineKey(i), i);
      let counter = n;
      // Keep overwriting until a rebuild starts, then overwrite only: every insert moves rows on.
      while (!table.rebuilding) table.set(`o${counter % n}`, engineKey(counter), ++counter);
      for (let round = 0; round < 20 * n && table.rebuilding; round++) table.set(`o${round % n}`, engineKey(++counter), counter);
      expect(table.rebuilding).toBe(false);
      for (let i = 0; i < 10 * n; i++) table.set(`o${i % n}`, engineKey(++counter), counter);
      expect(table.rowOfId('absent')).toBe(-1);
      expect(table.rowOfKey(engineKey(0))).toBe(-1);
      expect(table.size).toBe(n);
    });

    it('a restored table grows incrementally after its ids are indexed in slices', async () => {
      const n = 3_000;
      const ids = Array.from({ length: n }, (_, i) => `r-${i}`);
      const keys = Float64Array.from(ids, (_, i) => engineKey(i));
      const seqs = Float64Array.from(ids, (_, i) => i + 1);
      const table = await LiveTable.restore(idBytesOf(ids), keys, seqs, async () => undefined, 500, { syncRebuildRows: 0 });
      while (!table.indexIdsSlice(250));
      const model = new Map(Array.from({ length: n }, (_, i) => [`r-${i}`, { key: engineKey(i), seq: i + 1 }]));
      let counter = n;
      let sawRebuilding = false;
      for (let i = 0; i < 3 * n; i++) {
        const id = i % 4 === 3 ? `r-${(i * 13) % n}` : `new-${i}`;
        if (i % 7 === 6) {
          expect(table.remove(id)).toEqual(model.get(id));
          model.delete(id);
        } else {
          const key = engineKey(++counter);
          table.set(id, key, counter);
          model.set(id, { key, seq: counter });
        }
        sawRebuilding ||= table.rebuilding;
        expectLookup(table, model, id);
      }
      expect(sawRebuilding).toBe(true);
      expectSame(table, model);
    });
  });
});

describe('RowSlots rebuilds', () => {
  it('a migration ends before its new table reaches the load limit, however few of the rows it migrates are live; lookups stay exact', () => {
    let seed = 11;
    const random = () => (seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0) / 2 ** 32;
    const keys: number[] = [];
    const removed = new Set<number>();
    let rows = 0;
    let nextKey = 1;
    // As LiveTable's key → row table: rebuilds incremental from row 0 (threshold 0), an overwrite moves a row to a new key.
    const slots = new RowSlots(
      (row) => hashKey(keys[row]!),
      (row) => !removed.has(row),
      () => rows,
      () => rows - removed.size,
      0,
    );
    const find = (key: number) => slots.find(hashKey(key), (row) => keys[row] === key);
    let rebuilds = 0;
    let midMigration = 0;
    const step = (apply: () => void) => {
      const wasMigrating = slots.migrating;
      const before = slots.currentSlots;
      apply();
      if (slots.currentSlots !== before) {
        rebuilds++;
        if (wasMigrating) midMigration++;
      }
    };
    const insert = () => step(() => ((keys[rows] = nextKey++), slots.insert(hashKey(keys[rows]!), rows++)));
    const remove = (row: number) => (slots.remove(hashKey(keys[row]!), row), removed.add(row));
    for (let i = 0; i < 3_000; i++) insert();
    // A sliding window (past 300 live rows, each insert removes the oldest one or two) with overwrites: few live rows, ever more rows behind
    // them (this table is never squeezed), so each rebuild migrates a long range [0, end) for a few hundred live rows.
    let oldest = 0;
    while (rows < 40_000) {
      insert();
      for (let drop = rows - removed.size > 300 ? 1 + Math.floor(random() * 2) : 0; drop > 0; drop--) {
        while (removed.has(oldest)) oldest++;
        remove(oldest);
      }
      const row = rows - 1 - Math.floor(random() * 200);
      if (random() < 0.3 && !removed.has(row)) {
        // An overwrite: the row's new key goes where the row now belongs (the old table while not yet migrated).
        step(() => {
          slots.remove(hashKey(keys[row]!), row);
          keys[row] = nextKey++;
          slots.insert(hashKey(keys[row]!), row);
        });
      }
    }
    expect(rebuilds).toBeGreaterThan(10);
    expect(midMigration).toBe(0);
    for (let row = 0; row < rows; row++) expect(find(keys[row]!)).toBe(removed.has(row) ? -1 : row);
  });
});

describe('LiveRecords.squeezeIfDue', () => {
  it('swaps in the squeezed table after most records went; lookups, metadata filters and iteration stay exact, an iteration across the swap fails', async () => {
    const live = new LiveRecords();
    const model = new Map<string, Entry>();
    for (let i = 0; i < 5_000; i++) {
      live.set(`id${i}`, engineKey(i), i + 1, i % 2 === 0 ? { even: true } : undefined);
      model.set(`id${i}`, { key: engineKey(i), seq: i + 1 });
    }
    const across = live.byId.keys();
    across.next();
    await live.squeezeIfDue(); // not due: nothing happens
    across.next();
    for (let i = 0; i < 4_000; i++) {
      expect(live.remove(`id${i}`)).toEqual(model.get(`id${i}`));
      model.delete(`id${i}`);
    }
    const before = live.memoryUsage();
    await live.squeezeIfDue();
    expect(live.memoryUsage()).toBeLessThan(before);
    expect(() => across.next()).toThrow(/compacted during an iteration/);
    expect(new Map(live.byId)).toEqual(model);
    for (const [id, entry] of model) expect([live.get(id), live.idOf(entry.key)]).toEqual([entry, id]);
    expect(live.get('id0')).toBeUndefined();
    expect([...live.keys()]).toEqual([...model.values()].map((e) => e.key));
    for (const [id, entry] of model) expect(live.filterIndex().get(entry.key)).toEqual(Number(id.slice(2)) % 2 === 0 ? { even: true } : undefined);
  });
});

describe('LiveRecords.idBatches', () => {
  it("yields the live ids in insertion order, a batch at a time, as byId's iteration does (restored, churned and squeezed tables)", async () => {
    const live = new LiveRecords();
    for (let i = 0; i < 3_000; i++) live.set(`id${i}`, engineKey(i), i + 1, undefined);
    for (let i = 0; i < 3_000; i += 3) live.remove(`id${i}`);
    live.set('id1', engineKey(5_000), 5_001, undefined); // an overwrite keeps its row
    live.set('é-non-ascii', engineKey(5_001), 5_002, undefined);
    const expected = [...live.byId.keys()];
    const batches = [...live.idBatches(256)];
    expect(batches.slice(0, -1).every((batch) => batch.length === 256)).toBe(true);
    expect(batches.flat()).toEqual(expected);
    expect([...live.idBatches(expected.length)]).toEqual([expected]);
    expect([...new LiveRecords().idBatches(256)]).toEqual([]);

    // A restored table (ids kept as the snapshot's bytes) yields the same ids.
    const columns = await live.liveColumns(64, async () => undefined);
    const restored = new LiveRecords();
    await restored.restore({ ...columns, counter: 1, count: expected.length, digest: new Uint8Array(32), metadataFrames: [] });
    await restored.ready();
    expect([...restored.idBatches(100)].flat()).toEqual(expected);

    // A squeeze swapped in between two batches: the next batch fails rather than skip or repeat ids.
    const iteration = live.idBatches(100);
    iteration.next();
    for (const id of expected.slice(0, 1_500)) live.remove(id);
    await live.squeezeIfDue();
    expect(() => iteration.next()).toThrow(/compacted during an iteration/);
  });
});

describe('bulk hash-table fills in the addon (native/tables.cc)', () => {
  // Ids whose UTF-8 takes 1, 2, 3 and 4 bytes per character (astral ones are two UTF-16 units each).
  const ids = Array.from({ length: 3_000 }, (_, i) => ['doc-', 'naïve-', '文書-', '𝄞😀-', 'ÿ\u07ff\u0800\uffff-'][i % 5]! + i);
  const n = ids.length;
  const keys = Float64Array.from(ids, (_, i) => (i % 11 === 0 ? 2 ** 53 - 1 - i : engineKey(i)));
  const { lengths, utf8 } = idBytesOf(ids);
  const arena = Buffer.from(utf8);
  const offsets = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i]! + Buffer.byteLength(ids[i]!);
  expect(offsets[n]).toBe(arena.length);
  expect(lengths.length).toBe(n);

  /** A table sized for n rows, with rows [0, 200) inserted one by one and every 3rd of them removed again (tombstones). */
  function started(hashOf: (row: number) => number): RowSlots {
    const slots = new RowSlots(
      hashOf,
      () => true,
      () => n,
      () => n,
    );
    slots.reset(n);
    for (let row = 0; row < 200; row++) slots.insert(hashOf(row), row);
    for (let row = 0; row < 200; row += 3) slots.remove(hashOf(row), row);
    return slots;
  }

  it('fills the key → row table exactly as inserts one row at a time do, over tombstones and wrap-arounds', () => {
    const hashOf = (row: number) => hashKey(keys[row]!);
    const byRow = started(hashOf);
    const bulk = started(hashOf);
    for (let row = 200; row < n; row++) byRow.insert(hashOf(row), row);
    for (const [from, to] of [
      [200, 1_000],
      [1_000, n],
    ] as const) {
      expect(bulk.insertMany(to - from, (slots) => nativeTables().fillKeySlots(slots, keys, from, to))).toBe(true);
    }
    expect(Array.from(bulk.currentSlots)).toEqual(Array.from(byRow.currentSlots));
    expect(bulk.find(hashOf(2_999), (row) => row === 2_999)).toBe(2_999);
  });

  it("fills the id → row table exactly as inserts one row at a time do, writing hashIdBytes' hashes (= hashId's)", () => {
    const hashes = new Int32Array(n);
    const byRow = started((row) => hashId(ids[row]!));
    const bulk = started((row) => hashId(ids[row]!));
    for (let row = 200; row < n; row++) byRow.insert(hashId(ids[row]!), row);
    expect(bulk.insertMany(n - 200, (slots) => nativeTables().fillIdSlots(slots, arena, offsets, hashes, 200, n))).toBe(true);
    expect(Array.from(bulk.currentSlots)).toEqual(Array.from(byRow.currentSlots));
    for (let row = 200; row < n; row++) {
      expect(hashes[row]).toBe(hashIdBytes(arena, offsets[row]!, offsets[row + 1]!));
      expect(hashes[row]).toBe(hashId(ids[row]!));
    }
    expect(Array.from(hashes.subarray(0, 200))).toEqual(new Array(200).fill(0)); // rows outside the range untouched
  });

  it('hashes malformed and truncated UTF-8 as hashIdBytes does (bytes past the arena read as 0)', () => {
    let seed = 7;
    const random = () => (seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0) / 2 ** 32;
    for (let round = 0; round < 300; round++) {
      const arena = Buffer.from(
        Array.from({ length: 1 + Math.floor(random() * 40) }, () => (random() < 0.5 ? 0xc0 + Math.floor(random() * 64) : Math.floor(random() * 256))),
      );
      const cuts = [0, ...Array.from({ length: 3 }, () => Math.floor(random() * arena.length)).sort((a, b) => a - b), arena.length];
      const offsets = Uint32Array.from(cuts);
      const rows = offsets.length - 1;
      const hashes = new Int32Array(rows);
      nativeTables().fillIdSlots(new Int32Array(16), arena, offsets, hashes, 0, rows);
      for (let row = 0; row < rows; row++) expect(hashes[row]).toBe(hashIdBytes(arena, offsets[row]!, offsets[row + 1]!));
    }
  });

  it('leaves the table as row-by-row inserts do for what follows: the next growth starts at the same row', () => {
    const more = Float64Array.from({ length: 6_000 }, (_, i) => engineKey(i));
    const hashOf = (row: number) => hashKey(more[row]!);
    const growing = () => {
      const table = { rows: 0, removed: new Set<number>(), slots: undefined as unknown as RowSlots };
      // Rows [0, rows) belong in the table; rebuilds are incremental (threshold 0), so they show as `migrating`.
      const live = (row: number) => !table.removed.has(row);
      table.slots = new RowSlots(
        hashOf,
        live,
        () => table.rows,
        () => table.rows - table.removed.size,
        0,
      );
      table.slots.reset(n);
      for (let row = 0; row < 200; row++) table.slots.insert(hashOf(row), (table.rows = row + 1) - 1);
      // Tombstones: the bulk fill reuses some, which take no EMPTY slot (what `used` counts).
      for (let row = 0; row < 200; row += 3) (table.slots.remove(hashOf(row), row), table.removed.add(row));
      return table;
    };
    const byRow = growing();
    const bulk = growing();
    for (let row = 200; row < n; row++) byRow.slots.insert(hashOf(row), (byRow.rows = row + 1) - 1);
    bulk.rows = n;
    expect(bulk.slots.insertMany(n - 200, (slots) => nativeTables().fillKeySlots(slots, more, 200, n))).toBe(true);
    const firstMigrating = (table: ReturnType<typeof growing>) => {
      for (let row = n; row < more.length; row++) {
        table.slots.insert(hashOf(row), (table.rows = row + 1) - 1);
        if (table.slots.migrating) return row;
      }
      return -1;
    };
    const row = firstMigrating(byRow);
    expect(row).toBeGreaterThan(n);
    expect(firstMigrating(bulk)).toBe(row);
    expect(Array.from(bulk.slots.currentSlots)).toEqual(Array.from(byRow.slots.currentSlots));
  });

  it('refuses tables that share memory with the columns they are filled from (views of one buffer)', () => {
    const tables = nativeTables();
    const shared = new ArrayBuffer(4 * 64);
    const offsets = new Uint32Array(shared, 0, 33);
    for (let i = 0; i < 33; i++) offsets[i] = i;
    const bytes = Buffer.alloc(64, 0x61);
    // hashes over offsets[2..]: each row's hash would overwrite the next row's checked end offset
    expect(() => tables.fillIdSlots(new Int32Array(64), bytes, offsets, new Int32Array(shared, 8, 31), 0, 31)).toThrow(/share memory/);
    expect(() => tables.fillIdSlots(new Int32Array(shared, 0, 64), bytes, offsets, new Int32Array(32), 0, 31)).toThrow(/share memory/);
    const keyBuffer = new ArrayBuffer(8 * 16);
    expect(() => tables.fillKeySlots(new Int32Array(keyBuffer, 0, 16), new Float64Array(keyBuffer), 0, 4)).toThrow(/share memory/);
    expect(Array.from(offsets)).toEqual(Array.from({ length: 33 }, (_, i) => i));
    // Views of one buffer that do not overlap are fine.
    const apart = new ArrayBuffer(8 * 32);
    expect(tables.fillKeySlots(new Int32Array(apart, 0, 16), new Float64Array(apart, 128, 4).fill(3), 0, 4)).toBe(4);
  });

  it('is not used where a row-by-row insert would rebuild, and refuses bad arguments without touching the table', () => {
    const tables = nativeTables();
    const small = new RowSlots(
      (row) => row,
      () => true,
      () => 64,
      () => 64,
    );
    small.reset(8); // 32 slots, 16 below the load limit
    expect(small.insertMany(17, () => expect.unreachable())).toBe(false);
    const slots = new Int32Array(8);
    expect(() => tables.fillKeySlots(new Int32Array(6), keys, 0, 1)).toThrow(/power-of-two/);
    expect(() => tables.fillKeySlots(slots, keys, 2, 1)).toThrow(RangeError);
    expect(() => tables.fillKeySlots(slots, keys, 0, n + 1)).toThrow(RangeError);
    expect(() => tables.fillKeySlots(slots, Float64Array.of(1.5), 0, 1)).toThrow(/integers/);
    expect(() => tables.fillKeySlots(slots, Float64Array.of(2 ** 53), 0, 1)).toThrow(/integers/);
    expect(() => tables.fillKeySlots(slots, new Float32Array(1) as never, 0, 1)).toThrow(TypeError);
    expect(() => tables.fillIdSlots(slots, arena, Uint32Array.of(0, arena.length + 1), new Int32Array(1), 0, 1)).toThrow(/within the arena/);
    expect(() => tables.fillIdSlots(slots, arena, offsets, new Int32Array(2), 0, 3)).toThrow(RangeError);
    expect(Array.from(slots)).toEqual(new Array(8).fill(0));
    // A full table throws instead of probing forever.
    expect(() => tables.fillKeySlots(new Int32Array(4), Float64Array.of(1, 2, 3, 4, 5), 0, 5)).toThrow(/full/);
  });
});

describe('LiveTable.liveColumns guards', () => {
  const fill = (table: LiveTable, n: number) => {
    for (let i = 0; i < n; i++) table.set(`id-${i}`, i + 1, i + 1);
  };

  it('fails when a write lands between its slices, and writeGuard fails after a write only', async () => {
    const table = new LiveTable();
    fill(table, 20);
    table.remove('id-3');
    await expect(table.liveColumns(async () => void table.set('late', 99, 99), 5)).rejects.toThrow(/written to while a snapshot read it/);
    const guard = table.writeGuard();
    guard();
    expect(table.rowOfId('id-4')).toBeGreaterThanOrEqual(0); // a read is not a write
    guard();
    table.remove('id-4');
    expect(guard).toThrow(/written to while a snapshot read it/);
  });

  it('refuses counts that disagree with the rows rather than hand back unwritten column bytes', async () => {
    const table = new LiveTable();
    fill(table, 12);
    table.remove('id-0');
    const columns = await table.liveColumns(async () => undefined, 4);
    expect([columns.keys.length, columns.ids.utf8.byteLength]).toEqual([11, Buffer.byteLength(Array.from({ length: 11 }, (_, i) => `id-${i + 1}`).join(''))]);
    // Forced out of line (no code path does this): each check must catch its own column.
    const internals = table as unknown as { size: number; removedBytes: number };
    internals.size++;
    await expect(table.liveColumns(async () => undefined, 4)).rejects.toThrow(/counts 12 live rows but holds 11/);
    internals.size--;
    internals.removedBytes -= 2;
    await expect(table.liveColumns(async () => undefined, 4)).rejects.toThrow(/bytes of live ids but holds/);
  });
});
