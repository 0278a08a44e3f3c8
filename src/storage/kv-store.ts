/**
 * The key-value store under vecvault: classic-level (LevelDB) with binary
 * keys and values. It only ever sees ciphertext, HMACs and index names.
 * Every logical operation is one atomic, fsync'd batch.
 */
import { ClassicLevel } from 'classic-level';
import { mkdirSync } from 'node:fs';
import { StoreLockedError, VecvaultError } from '../errors.js';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';

export type Bytes = Uint8Array;
export type BatchOp = { type: 'put'; key: Bytes; value: Bytes } | { type: 'del'; key: Bytes };

export interface RangeOptions {
  gte: Bytes;
  lt: Bytes;
}

export class KvStore {
  private constructor(private readonly db: ClassicLevel<Bytes, Bytes>) {}

  /** Opens (creating) the LevelDB directory; a held LOCK becomes StoreLockedError. */
  static async open(location: string): Promise<KvStore> {
    mkdirSync(location, { recursive: true });
    // No compression: values are ciphertext, which does not compress.
    const db = new ClassicLevel<Bytes, Bytes>(location, { keyEncoding: 'view', valueEncoding: 'view' });
    try {
      await db.open({ compression: false });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new StoreLockedError(
          `The store at ${location} is open in another process (or another Client in this one). Close it there first; only one may hold a store at a time.`,
          { cause: error },
        );
      }
      throw new VecvaultError('VECVAULT_INTEGRITY', `Could not open the store at ${location}: ${(error as Error).message}`, { cause: error });
    }
    return new KvStore(db);
  }

  get(key: Bytes): Promise<Bytes | undefined> {
    return this.db.get(key);
  }

  /** `fillCache: false` for bulk reads (snapshot chunks) that would only evict hot blocks. */
  getMany(keys: Bytes[], options: { fillCache?: boolean } = {}): Promise<(Bytes | undefined)[]> {
    return this.db.getMany(keys, options);
  }

  /**
   * Atomic and durable: acknowledged writes survive a crash or power loss.
   * Built as a chained batch in slices, because handing LevelDB one large
   * array encodes every operation in a single synchronous step (~150 ms for
   * 25k records) that would stall the host's event loop.
   */
  async batch(ops: BatchOp[]): Promise<void> {
    if (ops.length === 0) return;
    if (ops.length <= SLICE) return this.db.batch(ops, { sync: true });
    const batch = this.db.batch();
    try {
      for (let i = 0; i < ops.length; i++) {
        if (i > 0 && i % SLICE === 0) await yieldToEventLoop();
        const op = ops[i]!;
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
    } catch (error) {
      await batch.close();
      throw error;
    }
    await batch.write({ sync: true });
  }

  async *entries(range: RangeOptions): AsyncGenerator<[Bytes, Bytes]> {
    for await (const entry of this.db.iterator({ ...range })) yield entry;
  }

  async *keys(range: RangeOptions): AsyncGenerator<Bytes> {
    for await (const key of this.db.keys({ ...range })) yield key;
  }

  /** Asks LevelDB to compact a range now, so deleted and overwritten values leave the disk. */
  compactRange(range: RangeOptions): Promise<void> {
    return this.db.compactRange(range.gte, range.lt);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
