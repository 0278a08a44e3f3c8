/**
 * The live records of an open index as compact columns: one row per record
 * (id as UTF-8 bytes, engine key, commit seq, id hash) and two open-addressing hash tables
 * over the rows, id → row and engine key → row, each an Int32Array of row
 * numbers. A Map<string, { key, seq }> cost a Map entry, an object and two
 * boxed doubles per record (~120 B), and the key → id table and the filter
 * index's per-record entries as much again: ~45 MiB of V8 heap at 200k
 * records. Here a record costs its id's UTF-8 bytes plus ~60 B of typed
 * arrays, none of it anything the GC has to trace (see `arena`).
 *
 * Rows are appended in insertion order and never reused, so iteration order
 * is a Map's (an overwrite keeps its row); removed rows are holes, squeezed
 * out once they outnumber the live ones: the owner swaps in a copy of the
 * live rows built in slices (`squeezed()`), or, past three times, the next
 * insert renumbers the rows and rebuilds both hash tables at once. Removals leave tombstones in the hash tables; a table is rebuilt
 * from the row columns when live entries plus tombstones pass half its slots,
 * a few rows per later insert (`RowSlots`): at 1M records one rebuild in one
 * go held the event loop for tens of milliseconds.
 *
 * A restored snapshot's columns become the table as they are (its id bytes
 * copied into the arena, never cut into strings): the key → row
 * table is filled a slice at a time at open (search hits need it), the
 * id → row table later (`indexIdsSlice`), or at once by the first call that
 * looks an id up.
 */
import type { IdBytes } from '../storage/sealed.js';
import { concatSliced } from '../storage/sealed.js';
import { loadNativeAddon } from '../util/native-addon.js';
import { hashId, hashIdBytes, idEqualsBytes, idOffsets, utf16Length } from './id-bytes.js';

export { hashId };

/** Slot values: a row is stored as row + 1, so a new table (all zeros) needs no fill: at 1M rows filling two 16 MiB tables held the event loop. */
const EMPTY = 0;
const TOMBSTONE = -1;
const MAX_LOAD = 0.5;
const MIN_ROWS = 16;

/**
 * The addon's bulk fills (native/tables.cc): rows [from, to) inserted in one call, with the hashes below; each returns
 * how many EMPTY slots the rows took. A restore inserts every row of a snapshot into both tables: in JS that was
 * 30–55 ms of CPU at 200k rows in a fresh process, on the main thread while the graph loads.
 */
interface NativeTables {
  fillKeySlots(slots: Int32Array, keys: Float64Array, from: number, to: number): number;
  fillIdSlots(slots: Int32Array, arena: Uint8Array, offsets: Uint32Array, hashes: Int32Array, from: number, to: number): number;
}

export function nativeTables(): NativeTables {
  return (loadNativeAddon() as { tables: NativeTables }).tables;
}

/** Engine keys are integers below 2^53: both halves, multiplied and folded so the low bits (the slot) depend on all of them. */
export function hashKey(key: number): number {
  const high = Math.floor(key / 2 ** 32);
  const hash = Math.imul((key - high * 2 ** 32) ^ high, 0x9e3779b1);
  return hash ^ (hash >>> 16);
}

/** A power of two with room for `entries` below the load limit. */
function slotsFor(entries: number): number {
  let slots = 16;
  while (slots * MAX_LOAD < entries + 1) slots *= 2;
  return slots;
}

function emptySlots(entries: number): Int32Array {
  return new Int32Array(slotsFor(entries)); // all EMPTY
}

/** Rows below this are re-inserted at once when a table grows; above it, a few per later insert. */
const SYNC_REBUILD_ROWS = 4096;
/** Rows migrated per insert while a rebuild is under way: it ends before the new table's load limit (see RowSlots). */
const MIGRATE_PER_INSERT = 8;

/**
 * One open-addressing table of row numbers (linear probing), rebuilt
 * incrementally. A rebuild starts a new table (`rebuildEntries`) and keeps
 * the old one: rows [0, end) present when it started are in the old table
 * until the migration passes them (`moved`), rows inserted later (≥ end) and
 * rows already moved are in the new one. Every insert moves
 * MIGRATE_PER_INSERT more rows, so the migration is over after end ÷ 8
 * inserts, and the new table then holds at most live + end ÷ 8 + 1 entries:
 * it is sized for at least that, so it never fills while a migration is under
 * way.
 */
export class RowSlots {
  /** The table new entries go to. */
  private slots = emptySlots(0);
  /** Entries plus tombstones in `slots`: what probing walks over. */
  private used = 0;
  /** The table being migrated from, or null. */
  private old: Int32Array | null = null;
  private moved = 0;
  private end = 0;

  /**
   * `hashOfRow(row)` is the hash the row is in the table under; `isLive(row)` whether it still is;
   * `limit()` how many rows (from 0) belong in this table now; `liveCount()` how many of them are live.
   */
  constructor(
    private readonly hashOfRow: (row: number) => number,
    private readonly isLive: (row: number) => boolean,
    private readonly limit: () => number,
    private readonly liveCount: () => number,
    private readonly syncBelow = SYNC_REBUILD_ROWS,
  ) {}

  /** Empties the table, sized for `entries` without a rebuild. */
  reset(entries: number): void {
    this.slots = emptySlots(entries);
    this.used = 0;
    this.old = null;
    this.moved = this.end = 0;
  }

  /** Whether a migration is under way (tests). */
  get migrating(): boolean {
    return this.old !== null;
  }

  /** The first row with hash `hash` that `matches`, or -1. */
  find(hash: number, matches: (row: number) => boolean): number {
    let mask = this.slots.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = this.slots[slot]!;
      if (stored === EMPTY) break;
      if (stored > 0 && matches(stored - 1)) return stored - 1;
    }
    const old = this.old;
    if (old === null) return -1;
    mask = old.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = old[slot]!;
      if (stored === EMPTY) return -1;
      const row = stored - 1;
      // Rows the migration passed are stale here (the new table has them as they are now).
      if (row >= this.moved && row < this.end && matches(row)) return row;
    }
  }

  /**
   * Inserts `count` rows at once through `fill(slots)`, which puts them in the table and returns how many EMPTY slots
   * they took, when they fit the table as it is (no migration under way, none due): as `insert` row by row would.
   * False, having done nothing, otherwise.
   */
  insertMany(count: number, fill: (slots: Int32Array) => number): boolean {
    if (this.old !== null || this.used + count > this.slots.length * MAX_LOAD) return false;
    this.used += fill(this.slots);
    return true;
  }

  /** The current table (tests compare bulk and row-by-row fills). */
  get currentSlots(): Int32Array {
    return this.slots;
  }

  insert(hash: number, row: number): void {
    if (this.inOld(row)) {
      // A row not yet migrated whose hash changed (an overwrite's new key): the migration reads it from the columns anyway.
      probeInsert(this.old!, hash, row);
      // Moves on too: overwrites alone (no new rows) must still end the migration before they use up the old table's empty slots.
      this.migrate(MIGRATE_PER_INSERT);
      return;
    }
    if (probeInsert(this.slots, hash, row)) this.used++;
    if (this.old !== null) this.migrate(MIGRATE_PER_INSERT);
    if (this.used > this.slots.length * MAX_LOAD) this.rebuild();
  }

  remove(hash: number, row: number): void {
    const table = this.inOld(row) ? this.old! : this.slots;
    const mask = table.length - 1;
    let slot = hash & mask;
    while (table[slot] !== row + 1) slot = (slot + 1) & mask;
    table[slot] = TOMBSTONE;
  }

  /** Rebuilds at once from the rows (after they were renumbered). */
  rebuildNow(live: number): void {
    this.reset(rebuildEntries(live, 0));
    this.end = this.limit();
    this.migrate(this.end);
  }

  byteLength(): number {
    return this.slots.byteLength + (this.old?.byteLength ?? 0);
  }

  private inOld(row: number): boolean {
    return this.old !== null && row >= this.moved && row < this.end;
  }

  /** Starts a rebuild into a new table (`rebuildEntries`); small tables are done at once. */
  private rebuild(): void {
    if (this.old !== null) this.migrate(this.end); // cannot happen within the bound above; correct if it did
    this.old = this.slots;
    this.end = this.limit();
    this.slots = emptySlots(rebuildEntries(this.liveCount(), this.end));
    this.used = 0;
    this.moved = 0;
    if (this.end < this.syncBelow) this.migrate(this.end);
  }

  /** Moves up to `count` more rows from the old table's range into the new table. */
  private migrate(count: number): void {
    const stop = Math.min(this.end, this.moved + count);
    for (let row = this.moved; row < stop; row++) {
      if (this.isLive(row) && probeInsert(this.slots, this.hashOfRow(row), row)) this.used++;
      this.moved = row + 1;
    }
    if (this.moved >= this.end) this.old = null;
  }
}

/**
 * Entries a rebuilt table is sized for, `live` rows live and rows [0, `end`) to migrate: half as many again as the
 * live ones (so the next rebuild is at least live ÷ 2 inserts away), and never fewer than the migration can bring
 * (see RowSlots). Sized for twice the live rows, as before, the tables were 4–8 slots per live row: after a build of
 * 200k records 2 × 4 MiB, now 2 × 2 MiB (docs/performance.md, "Fourteenth round").
 */
function rebuildEntries(live: number, end: number): number {
  return Math.max(Math.ceil(1.5 * live), live + Math.ceil(end / MIGRATE_PER_INSERT) + 1);
}

/** Puts `row` in the first free slot from `hash`; returns whether that slot was EMPTY (not a tombstone). */
function probeInsert(table: Int32Array, hash: number, row: number): boolean {
  const mask = table.length - 1;
  let slot = hash & mask;
  while (table[slot]! > 0) slot = (slot + 1) & mask;
  const fresh = table[slot] === EMPTY;
  table[slot] = row + 1;
  return fresh;
}

function grown<T extends Float64Array | Int32Array | Uint32Array | Uint8Array>(column: T, capacity: number): T {
  const bigger = new (column.constructor as new (n: number) => T)(capacity);
  bigger.set(column);
  return bigger;
}

/** Id arena bytes of a new table. */
const MIN_ARENA = 256;
/** The arena is addressed by u32 offsets (and Node's buffers end at 4 GiB anyway): ids of at most 1,024 UTF-16 units fill it only past ~1.4M rows of the longest. */
const MAX_ARENA = 2 ** 32 - 1;

/** A zeroed buffer of its own (Buffer.alloc never takes from Node's shared pool). */
function arenaOf(bytes: number): Buffer {
  return Buffer.alloc(bytes);
}

/** Copies `source[from, to)` to `target` at `at`: a loop for the short ids most are, one native copy for long ones. */
function copyBytes(source: Buffer, from: number, to: number, target: Buffer, at: number): void {
  if (to - from > 32) {
    source.copy(target, at, from, to);
    return;
  }
  for (let i = from; i < to; i++) target[at++] = source[i]!;
}

/** The row columns a squeeze copies live rows into. */
interface RowColumns {
  arena: Buffer;
  offsets: Uint32Array;
  keys: Float64Array;
  seqs: Float64Array;
  hashes: Int32Array;
}

export class LiveTable {
  /**
   * Every row's id as UTF-8, row after row: row r's is `arena[offsets[r], offsets[r + 1])`. Appended to only,
   * so bytes once written never change (a snapshot may hold a view); a removed row's stay until a squeeze.
   * As JS strings, 1M ids held ~40 MiB of V8 heap that every full GC traced (22–38 ms vs 6–7 ms as bytes).
   */
  private arena: Buffer = arenaOf(MIN_ARENA);
  /** Where each row's id starts in the arena; `offsets[rows]` is where the next one goes. One longer than the other columns. */
  private offsets: Uint32Array = new Uint32Array(MIN_ROWS + 1);
  /** 1 marks a removed row. */
  private removed: Uint8Array = new Uint8Array(MIN_ROWS);
  /** Whether every id in the arena is ASCII (a byte per UTF-16 unit): a snapshot's id lengths are then the byte lengths. */
  private ascii = true;
  /** Arena bytes of removed rows. */
  private removedBytes = 0;
  private keys: Float64Array = new Float64Array(MIN_ROWS);
  private seqs: Float64Array = new Float64Array(MIN_ROWS);
  /** hashId of each row's id, for probing and rehashing without decoding the bytes. */
  private hashes = new Int32Array(MIN_ROWS);
  /** Rows in use, removed ones included. */
  private rows = 0;
  /** Live rows. */
  size = 0;
  /** Rows [0, idsIndexed) are in `idSlots`; a restored table indexes its ids after the open. */
  private idsIndexed = 0;
  private readonly idSlots: RowSlots;
  private readonly keySlots: RowSlots;
  /**
   * What `rowOfId` / `rowOfKey` look for, read by matchers made once: a closure per lookup cost ~100 B of garbage
   * each, and an upsert looks every id up twice (a heap-sampling profile of 200k `LiveRecords.set` calls).
   */
  private readonly sought = { id: '', hash: 0, key: 0 };
  private readonly matchesSoughtId = (row: number) =>
    this.hashes[row] === this.sought.hash && this.removed[row] === 0 && idEqualsBytes(this.sought.id, this.arena, this.offsets[row]!, this.offsets[row + 1]!);
  private readonly matchesSoughtKey = (row: number) => this.keys[row] === this.sought.key;

  /** `syncRebuildRows`: tables with fewer rows are rebuilt at once (tests set 0 to drive the incremental path on small tables). */
  constructor(options: { syncRebuildRows?: number } = {}) {
    const live = (row: number) => this.removed[row] === 0;
    this.idSlots = new RowSlots(
      (row) => this.hashes[row]!,
      live,
      () => this.idsIndexed,
      () => this.size,
      options.syncRebuildRows,
    );
    this.keySlots = new RowSlots(
      (row) => hashKey(this.keys[row]!),
      live,
      () => this.rows,
      () => this.size,
      options.syncRebuildRows,
    );
  }
  /** Bumped whenever rows are renumbered: an iteration across it stops with an error rather than skip or repeat rows. */
  private generation = 0;
  /** Bumped by every set and remove (squeezed() checks nothing wrote while it copied). */
  private mutations = 0;

  /**
   * A table over a snapshot's columns (ids distinct, keys distinct): the keys
   * and seqs are taken over without copying, the ids as their stored bytes
   * (no string each), copied into the table's own arena. Their offsets come
   * from the stored UTF-16 lengths (prefix sums when all are ASCII); lengths
   * that do not match the bytes throw. The key → row table is filled `slice`
   * rows at a time with `between()` awaited between slices; the id → row
   * table later.
   */
  static async restore(
    ids: IdBytes,
    keys: Float64Array,
    seqs: Float64Array,
    between: () => Promise<void>,
    slice = 32_768,
    options: { syncRebuildRows?: number } = {},
  ): Promise<LiveTable> {
    const table = new LiveTable(options);
    const n = ids.lengths.length;
    if (keys.length !== n || seqs.length !== n) throw new RangeError('restored columns differ in length');
    const { offsets, ascii } = await idOffsets(ids.lengths, ids.utf8, between, 2 * slice);
    // A copy: the stored bytes are a view of the whole decoded table (its columns and metadata frames too).
    table.arena = await concatSliced([ids.utf8], between);
    table.offsets = offsets;
    table.ascii = ascii;
    table.removed = new Uint8Array(n);
    table.keys = keys;
    table.seqs = seqs;
    table.hashes = new Int32Array(n);
    table.rows = table.size = n;
    // Sized for all n rows: filling them never triggers a rebuild midway.
    table.keySlots.reset(n);
    table.idSlots.reset(n);
    const tables = nativeTables();
    for (let start = 0; start < n; start += slice) {
      await between();
      const end = Math.min(n, start + slice);
      if (!table.keySlots.insertMany(end - start, (slots) => tables.fillKeySlots(slots, keys, start, end))) {
        for (let row = start; row < end; row++) table.insertKeySlot(keys[row]!, row); // not reached: sized for n rows above
      }
    }
    return table;
  }

  /** Whether either hash table is part-way through an incremental rebuild (tests). */
  get rebuilding(): boolean {
    return this.idSlots.migrating || this.keySlots.migrating;
  }

  /** Rows the columns hold before they must grow (tests). */
  get capacity(): number {
    return this.keys.length;
  }

  /** Id bytes the arena holds before it must grow (tests). */
  get arenaCapacity(): number {
    return this.arena.length;
  }

  /** Whether every id is in the id → row table yet. */
  get idsComplete(): boolean {
    return this.idsIndexed === this.rows;
  }

  /** Adds up to `count` more restored ids to the id → row table; returns whether all are in. */
  indexIdsSlice(count: number): boolean {
    const end = Math.min(this.rows, this.idsIndexed + count);
    const { arena, offsets, hashes } = this; // inserting into the id index never touches them
    const from = this.idsIndexed;
    if (this.idSlots.insertMany(end - from, (slots) => nativeTables().fillIdSlots(slots, arena, offsets, hashes, from, end))) {
      this.idsIndexed = end;
      return end === this.rows;
    }
    for (let row = this.idsIndexed; row < end; row++) {
      const hash = hashIdBytes(arena, offsets[row]!, offsets[row + 1]!);
      this.hashes[row] = hash;
      this.idsIndexed = row + 1; // before the insert: a rebuild it triggers re-inserts rows below idsIndexed
      this.idSlots.insert(hash, row);
    }
    return end === this.rows;
  }

  /** The row of `id`, or -1. */
  rowOfId(id: string): number {
    if (this.idsIndexed < this.rows) this.indexIdsSlice(this.rows); // callers that can wait index in slices first (LiveRecords.ready)
    const hash = hashId(id);
    this.sought.id = id;
    this.sought.hash = hash;
    return this.idSlots.find(hash, this.matchesSoughtId);
  }

  /** The row of engine key `key`, or -1. */
  rowOfKey(key: number): number {
    this.sought.key = key;
    return this.keySlots.find(hashKey(key), this.matchesSoughtKey);
  }

  /** The id behind engine key `key`, if it is live. */
  idOf(key: number): string | undefined {
    const row = this.rowOfKey(key);
    return row < 0 ? undefined : this.idAt(row);
  }

  /** The id of `row`, decoded from the arena (a new string each call). */
  idAt(row: number): string {
    return this.arena.toString(this.ascii ? 'latin1' : 'utf8', this.offsets[row]!, this.offsets[row + 1]!);
  }

  keyAt(row: number): number {
    return this.keys[row]!;
  }

  seqAt(row: number): number {
    return this.seqs[row]!;
  }

  /**
   * Makes `id` live at `key` (a key no other live record has), replacing its
   * earlier key and seq; returns the row's earlier key, or -1 for a new id.
   */
  set(id: string, key: number, seq: number): number {
    this.mutations++;
    let row = this.rowOfId(id);
    if (row >= 0) {
      const old = this.keys[row]!;
      this.seqs[row] = seq;
      if (old !== key) {
        this.removeKeySlot(old, row);
        this.keys[row] = key;
        this.insertKeySlot(key, row);
      }
      return old;
    }
    if (this.rows > 64 && this.rows - this.size > 2 * this.size) this.squeeze(); // squeezed() was not swapped in: keep rows ≤ 3 × live + 64
    row = this.rows;
    if (row === this.keys.length) {
      const capacity = Math.max(MIN_ROWS, row * 2);
      this.keys = grown(this.keys, capacity);
      this.seqs = grown(this.seqs, capacity);
      this.hashes = grown(this.hashes, capacity);
      this.removed = grown(this.removed, capacity);
      this.offsets = grown(this.offsets, capacity + 1);
    }
    const hash = hashId(id);
    this.offsets[row + 1] = this.appendId(id, this.offsets[row]!);
    this.removed[row] = 0;
    this.keys[row] = key;
    this.seqs[row] = seq;
    this.hashes[row] = hash;
    this.rows++;
    this.idsIndexed = this.rows; // rowOfId above completed the index
    this.size++;
    this.idSlots.insert(hash, row);
    this.insertKeySlot(key, row);
    return -1;
  }

  /** Takes `id` out; returns its row's key and seq, or undefined when it was not live. */
  remove(id: string): { key: number; seq: number } | undefined {
    const row = this.rowOfId(id);
    if (row < 0) return undefined;
    const entry = { key: this.keys[row]!, seq: this.seqs[row]! };
    this.idSlots.remove(this.hashes[row]!, row);
    this.removeKeySlot(entry.key, row);
    this.removed[row] = 1;
    this.removedBytes += this.offsets[row + 1]! - this.offsets[row]!;
    this.size--;
    this.mutations++;
    return entry;
  }

  /**
   * Whether removed rows outnumber live ones: the owner should swap in
   * `squeezed()` (LiveRecords does after each write). Rows are never more than
   * three times the live ones plus 64 even if it does not: `set` squeezes at
   * once past that, which keeps RowSlots' bound.
   */
  get squeezeDue(): boolean {
    return this.rows > 64 && this.rows - this.size > this.size;
  }

  /**
   * A new table of the live rows (order kept), built `slice` rows at a time
   * with `between()` awaited between slices: at 1M rows the one-go squeeze
   * held the event loop for tens of milliseconds. The caller must not write
   * to this table meanwhile (LiveRecords runs it inside the write queue); if
   * a write slipped in anyway, this table is squeezed in place at once and
   * returned instead, so the result is never stale. Reads of this table stay
   * valid until the caller swaps; then it should `retire()` this one.
   */
  async squeezed(between: () => Promise<void>, slice = 32_768, options: { syncRebuildRows?: number } = {}): Promise<LiveTable> {
    const mutations = this.mutations;
    const fresh = new LiveTable(options);
    const size = this.size;
    const capacity = Math.max(MIN_ROWS, 2 * size);
    fresh.keys = new Float64Array(capacity); // sized for the rows its columns hold: set() never grows them
    fresh.seqs = new Float64Array(capacity);
    fresh.hashes = new Int32Array(capacity);
    fresh.removed = new Uint8Array(capacity);
    fresh.offsets = new Uint32Array(capacity + 1);
    fresh.arena = arenaOf(Math.min(MAX_ARENA, Math.max(MIN_ARENA, 2 * this.liveBytes())));
    fresh.ascii = this.ascii;
    fresh.idSlots.reset(size);
    fresh.keySlots.reset(size);
    const into: RowColumns = { arena: fresh.arena, offsets: fresh.offsets, keys: fresh.keys, seqs: fresh.seqs, hashes: fresh.hashes }; // never regrown below
    let to = 0;
    for (let start = 0; start < this.rows && this.mutations === mutations; start += slice) {
      if (start > 0) await between();
      if (this.mutations !== mutations) break;
      const end = Math.min(this.rows, start + slice);
      for (let row = start; row < end; row++) {
        if (this.removed[row] !== 0) continue;
        const hash = this.copyRow(row, into, to);
        fresh.rows = fresh.idsIndexed = fresh.size = to + 1; // before the inserts: the slot tables read these
        fresh.idSlots.insert(hash, to);
        fresh.keySlots.insert(hashKey(this.keys[row]!), to);
        to++;
      }
    }
    if (this.mutations === mutations) return fresh;
    this.squeeze(); // written to meanwhile (not by LiveRecords): the one-go squeeze, never a stale copy
    return this;
  }

  /**
   * Grows the row columns and the id arena for `extra` more rows ahead of
   * the inserts (the arena by the ids' average length so far), copying
   * `slice` rows at a time with `between()` awaited between slices: `set`
   * doubling them in one go held the event loop for 33–44 ms at 524,288 rows
   * (a ~20 MB copy). Nothing must write meanwhile (LiveRecords calls it
   * inside the write queue); if something did, the copy is dropped and `set`
   * grows the columns itself when it must.
   */
  async reserve(extra: number, between: () => Promise<void>, slice = 65_536): Promise<void> {
    const rows = this.rows;
    const needed = rows + extra;
    const used = this.offsets[rows]!;
    const neededBytes = Math.min(MAX_ARENA, used + Math.ceil(1.25 * extra * (rows > 0 ? used / rows : 16))); // a margin: later ids are often longer (doc-9999, doc-10000)
    const growRows = needed > this.keys.length;
    const growArena = neededBytes > this.arena.length;
    if (!growRows && !growArena) return;
    let capacity = this.keys.length;
    if (growRows) {
      capacity = Math.max(MIN_ROWS, 2 * capacity);
      while (capacity < needed) capacity *= 2;
    }
    let arenaBytes = this.arena.length;
    if (growArena) {
      arenaBytes = Math.max(MIN_ARENA, 2 * arenaBytes);
      while (arenaBytes < neededBytes) arenaBytes *= 2;
      arenaBytes = Math.min(MAX_ARENA, arenaBytes);
    }
    const mutations = this.mutations;
    const indexed = this.idsIndexed;
    const changed = () => this.mutations !== mutations || this.idsIndexed !== indexed;
    // One allocation per turn: all six at 524,288 rows (~25 MB that glibc zeroes, below the mmap threshold) held the
    // event loop 58 ms in one turn at 1M (a CPU profile of the build's stalls).
    const alloc = async <T>(grow: boolean, make: () => T, current: T): Promise<T> => {
      if (!grow) return current;
      const made = make();
      await between();
      return made;
    };
    const keys = await alloc(growRows, () => new Float64Array(capacity), this.keys);
    const seqs = await alloc(growRows, () => new Float64Array(capacity), this.seqs);
    const hashes = await alloc(growRows, () => new Int32Array(capacity), this.hashes);
    const removed = await alloc(growRows, () => new Uint8Array(capacity), this.removed);
    const offsets = await alloc(growRows, () => new Uint32Array(capacity + 1), this.offsets);
    const arena = await alloc(growArena, () => arenaOf(arenaBytes), this.arena);
    for (let start = 0; start < rows; start += slice) {
      if (start > 0) await between();
      if (changed()) return;
      const end = Math.min(rows, start + slice);
      if (growRows) {
        keys.set(this.keys.subarray(start, end), start);
        seqs.set(this.seqs.subarray(start, end), start);
        hashes.set(this.hashes.subarray(start, end), start);
        removed.set(this.removed.subarray(start, end), start);
        offsets.set(this.offsets.subarray(start, end + 1), start);
      }
      if (growArena) this.arena.copy(arena, this.offsets[start]!, this.offsets[start]!, this.offsets[end]!);
    }
    if (changed()) return;
    this.keys = keys;
    this.seqs = seqs;
    this.hashes = hashes;
    this.removed = removed;
    this.offsets = offsets;
    this.arena = arena;
  }

  /**
   * The live rows' ids in their stored form (see encodeIdList: the same
   * bytes), engine keys and seqs, in row order, `slice` rows at a time with
   * `between()` awaited between slices: a snapshot's table without a string
   * per id. With no removed rows the id bytes are a view of the arena (bytes
   * once written never change); else the live ones are copied. Nothing must
   * write meanwhile (the caller holds the write queue): a write throws.
   */
  async liveColumns(between: () => Promise<void>, slice = 65_536): Promise<{ ids: IdBytes; keys: Float64Array; seqs: Float64Array }> {
    const unchanged = this.writeGuard();
    const { rows, size: n, arena, ascii } = this;
    // Not zeroed: every entry is written below, so the pages are faulted in slice by slice as they are written. A
    // zero-filled 20 MB at 1M rows was touched all at once in the first turn (51–68 ms on a VM whose faults trap).
    const lengths = new Uint32Array(Buffer.allocUnsafeSlow(4 * n).buffer, 0, n);
    const keys = new Float64Array(Buffer.allocUnsafeSlow(8 * n).buffer, 0, n);
    const seqs = new Float64Array(Buffer.allocUnsafeSlow(8 * n).buffer, 0, n);
    const whole = rows === n;
    const utf8 = whole ? arena.subarray(0, this.offsets[rows]!) : Buffer.allocUnsafeSlow(this.liveBytes());
    let to = 0;
    let at = 0;
    for (let start = 0; start < rows; start += slice) {
      if (start > 0) await between();
      unchanged();
      const end = Math.min(rows, start + slice);
      for (let row = start; row < end; row++) {
        if (this.removed[row] !== 0) continue;
        const from = this.offsets[row]!;
        const until = this.offsets[row + 1]!;
        lengths[to] = ascii ? until - from : utf16Length(arena, from, until);
        keys[to] = this.keys[row]!;
        seqs[to] = this.seqs[row]!;
        if (!whole) {
          copyBytes(arena, from, until, utf8, at);
          at += until - from;
        }
        to++;
      }
    }
    // The columns were not zeroed: a count that disagreed would leave stale heap bytes in them.
    if (to !== n) throw new Error(`the live-record table counts ${n} live rows but holds ${to}`);
    if (!whole && at !== utf8.length) throw new Error(`the live-record table counts ${utf8.length} bytes of live ids but holds ${at}`);
    return { ids: { lengths, utf8 }, keys, seqs };
  }

  /**
   * A check that throws once this table was written to or replaced after the call: for a reader that spans turns
   * (a snapshot's columns, then its metadata looked up frame by frame) and must see one state throughout.
   */
  writeGuard(): () => void {
    const { generation, mutations } = this;
    return () => {
      if (this.generation !== generation || this.mutations !== mutations) throw new Error('the live-record table was written to while a snapshot read it');
    };
  }

  /** Makes iterations still running over this table fail, as a squeeze in place does (it was replaced by `squeezed()`). */
  retire(): void {
    this.generation++;
  }

  clear(): void {
    this.arena = arenaOf(MIN_ARENA);
    this.offsets = new Uint32Array(MIN_ROWS + 1);
    this.removed = new Uint8Array(MIN_ROWS);
    this.ascii = true;
    this.removedBytes = 0;
    this.keys = new Float64Array(MIN_ROWS);
    this.seqs = new Float64Array(MIN_ROWS);
    this.hashes = new Int32Array(MIN_ROWS);
    this.rows = this.size = this.idsIndexed = 0;
    this.idSlots.reset(0);
    this.keySlots.reset(0);
    this.generation++;
    this.mutations++;
  }

  /** Live rows in insertion order. Writes during the iteration are seen as a Map's iteration would see them. */
  *liveRows(): Generator<number> {
    const generation = this.generation;
    for (let row = 0; row < this.rows; row++) {
      if (this.generation !== generation) throw new Error('the live-record table was compacted during an iteration');
      if (this.removed[row] === 0) yield row;
    }
  }

  /** Live engine keys, in insertion order. */
  *liveKeys(): Generator<number> {
    for (const row of this.liveRows()) yield this.keys[row]!;
  }

  /** Bytes held by the columns, the id arena and the hash tables. */
  memoryUsage(): number {
    const columns = this.keys.byteLength + this.seqs.byteLength + this.hashes.byteLength + this.removed.byteLength + this.offsets.byteLength;
    return columns + this.arena.byteLength + this.idSlots.byteLength() + this.keySlots.byteLength();
  }

  /** Arena bytes of the live rows' ids. */
  private liveBytes(): number {
    return this.offsets[this.rows]! - this.removedBytes;
  }

  /** Writes `id`'s UTF-8 at arena offset `at`, growing the arena if it must; returns where it ends. */
  private appendId(id: string, at: number): number {
    const n = id.length;
    if (at + n > this.arena.length) this.growArena(at, at + n);
    const arena = this.arena;
    for (let i = 0; i < n; i++) {
      const c = id.charCodeAt(i);
      if (c >= 0x80) {
        this.ascii = false;
        if (at + 3 * n > arena.length) this.growArena(at, at + 3 * n); // at most 3 bytes per UTF-16 unit
        return at + this.arena.write(id, at, this.arena.length - at, 'utf8'); // from the start again: the same bytes for the ASCII prefix
      }
      arena[at + i] = c;
    }
    return at + n;
  }

  /** A bigger arena at once (reserve() grows it in slices ahead of large batches). */
  private growArena(used: number, needed: number): void {
    if (needed > MAX_ARENA) throw new RangeError('the live record ids exceed 4 GiB of UTF-8');
    let bytes = Math.max(MIN_ARENA, 2 * this.arena.length);
    while (bytes < needed) bytes *= 2;
    const arena = arenaOf(Math.min(MAX_ARENA, bytes));
    this.arena.copy(arena, 0, 0, used);
    this.arena = arena;
  }

  private insertKeySlot(key: number, row: number): void {
    this.keySlots.insert(hashKey(key), row);
  }

  private removeKeySlot(key: number, row: number): void {
    this.keySlots.remove(hashKey(key), row);
  }

  /** Copies row `row` (its id bytes, key, seq and id hash) to row `to` of `target`'s columns; returns the hash. */
  private copyRow(row: number, target: RowColumns, to: number): number {
    const from = this.offsets[row]!;
    const until = this.offsets[row + 1]!;
    const at = target.offsets[to]!;
    copyBytes(this.arena, from, until, target.arena, at);
    target.offsets[to + 1] = at + (until - from);
    target.keys[to] = this.keys[row]!;
    target.seqs[to] = this.seqs[row]!;
    const hash = row < this.idsIndexed ? this.hashes[row]! : hashIdBytes(this.arena, from, until);
    target.hashes[to] = hash;
    return hash;
  }

  /** Moves the live rows down over the removed ones (order kept) into columns sized for them, and rebuilds both tables. */
  private squeeze(): void {
    const capacity = Math.max(MIN_ROWS, 2 * this.size);
    const keys = new Float64Array(capacity);
    const seqs = new Float64Array(capacity);
    const hashes = new Int32Array(capacity);
    const offsets = new Uint32Array(capacity + 1);
    const arena = arenaOf(Math.min(MAX_ARENA, Math.max(MIN_ARENA, 2 * this.liveBytes())));
    let to = 0;
    for (let row = 0; row < this.rows; row++) {
      if (this.removed[row] !== 0) continue;
      this.copyRow(row, { arena, offsets, keys, seqs, hashes }, to);
      to++;
    }
    this.arena = arena;
    this.offsets = offsets;
    this.removed = new Uint8Array(capacity);
    this.removedBytes = 0;
    this.keys = keys;
    this.seqs = seqs;
    this.hashes = hashes;
    this.rows = this.idsIndexed = to;
    this.generation++;
    this.idSlots.rebuildNow(this.size);
    this.keySlots.rebuildNow(this.size);
  }
}
