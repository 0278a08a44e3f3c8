/**
 * Engine key → record id, for turning search hits into ids. Open addressing
 * over a Float64Array (keys are integers below 2^48, exact in a double) with
 * the ids in a parallel array: filled from a 100k-record snapshot in a few ms
 * with no allocation per entry, where a Map<number, string> took 20–60 ms of
 * the open (and its garbage) while the engine loaded the graph on the pool.
 *
 * Keys come from engineKey(): n·odd mod 2^48, whose low bits already spread
 * consecutive n over distinct slots, so the slot is just the low bits.
 */
const EMPTY = -1;
const TOMBSTONE = -2;
const MAX_LOAD = 0.5;

export class KeyTable {
  private keys: Float64Array;
  private ids: (string | undefined)[];
  private mask: number;
  /** Live entries. */
  size = 0;
  /** Live entries plus tombstones: what probing walks over. */
  private used = 0;

  constructor(capacity = 16) {
    const slots = slotsFor(capacity);
    this.keys = new Float64Array(slots).fill(EMPTY);
    this.ids = new Array<string | undefined>(slots);
    this.mask = slots - 1;
  }

  /** A table holding `ids[i]` under `keys[i]` (keys distinct). */
  static from(keys: ArrayLike<number>, ids: readonly string[]): KeyTable {
    const table = new KeyTable(keys.length);
    for (let i = 0; i < keys.length; i++) table.set(keys[i]!, ids[i]!);
    return table;
  }

  /** `from`, a slice at a time with `between()` awaited between slices (a snapshot's table at open). */
  static async fromSliced(keys: ArrayLike<number>, ids: readonly string[], between: () => Promise<void>, slice = 32_768): Promise<KeyTable> {
    const table = new KeyTable(keys.length);
    for (let start = 0; start < keys.length; start += slice) {
      if (start > 0) await between();
      const end = Math.min(keys.length, start + slice);
      for (let i = start; i < end; i++) table.set(keys[i]!, ids[i]!);
    }
    return table;
  }

  get(key: number): string | undefined {
    for (let slot = (key % 2 ** 32) & this.mask; ; slot = (slot + 1) & this.mask) {
      const at = this.keys[slot]!;
      if (at === key) return this.ids[slot];
      if (at === EMPTY) return undefined;
    }
  }

  set(key: number, id: string): void {
    let reuse = -1;
    let slot = (key % 2 ** 32) & this.mask;
    for (; ; slot = (slot + 1) & this.mask) {
      const at = this.keys[slot]!;
      if (at === key) {
        this.ids[slot] = id;
        return;
      }
      if (at === TOMBSTONE && reuse < 0) reuse = slot;
      if (at === EMPTY) break;
    }
    if (reuse >= 0) slot = reuse;
    else this.used++;
    this.keys[slot] = key;
    this.ids[slot] = id;
    this.size++;
    if (this.used > this.keys.length * MAX_LOAD) this.rehash(this.size * 2);
  }

  delete(key: number): boolean {
    for (let slot = (key % 2 ** 32) & this.mask; ; slot = (slot + 1) & this.mask) {
      const at = this.keys[slot]!;
      if (at === EMPTY) return false;
      if (at === key) {
        this.keys[slot] = TOMBSTONE;
        this.ids[slot] = undefined;
        this.size--;
        return true;
      }
    }
  }

  clear(): void {
    this.keys = new Float64Array(16).fill(EMPTY);
    this.ids = new Array<string | undefined>(16);
    this.mask = 15;
    this.size = 0;
    this.used = 0;
  }

  /** Re-inserts the live entries into a table sized for `capacity`, dropping tombstones. */
  private rehash(capacity: number): void {
    const { keys, ids } = this;
    const slots = slotsFor(capacity);
    this.keys = new Float64Array(slots).fill(EMPTY);
    this.ids = new Array<string | undefined>(slots);
    this.mask = slots - 1;
    this.size = 0;
    this.used = 0;
    for (let slot = 0; slot < keys.length; slot++) {
      if (keys[slot]! >= 0) this.set(keys[slot]!, ids[slot]!);
    }
  }
}

/** A power of two with room for `entries` below the load limit. */
function slotsFor(entries: number): number {
  let slots = 16;
  while (slots * MAX_LOAD < entries + 1) slots *= 2;
  return slots;
}
