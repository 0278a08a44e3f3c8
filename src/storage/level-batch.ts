/**
 * One LevelDB write batch per store, cleared and reused by every large write
 * (KvStore's commits of more than a slice of operations).
 *
 * classic-level's chained batch owns a native copy of every key and value
 * (LevelDB's WriteBatch: ~5 MB for 10,000 records of 96 dimensions, grown by
 * doubling) and frees it only when V8 finalizes the JS object: its `_close`
 * is a no-op, and V8 does not see that memory, so during a bulk load the
 * copies of several upserts wait for a full GC (measured in a loop of 20
 * writes of 10,000 × 480 B: 112–135 MiB anonymous growth against 91 MiB with
 * one reused batch; docs/performance.md, "Memory"). A reused batch keeps one
 * copy's capacity instead (LevelDB's Clear keeps it), at most RETAIN_MAX_BYTES:
 * after a larger write the handle is dropped and left to the GC as before.
 *
 * It calls the five functions of classic-level's binding its own ChainedBatch
 * calls (batch_init, batch_put, batch_del, batch_write, batch_clear) on the
 * database's native context. classic-level is pinned to an exact version
 * (package.json) and test/level-batch.test.ts checks these calls are found,
 * so an upgrade that moves them fails a test; at run time, if they are
 * missing, KvStore falls back to the chained batch.
 */
import { createRequire } from 'node:module';
import type { ClassicLevel } from 'classic-level';
import { SLICE, yieldToEventLoop } from '../util/event-loop.js';
import type { BatchOp, Bytes } from './kv-store.js';

interface LevelBinding {
  batch_init(db: object): object;
  batch_put(batch: object, key: Bytes, value: Bytes): void;
  batch_del(batch: object, key: Bytes): void;
  batch_clear(batch: object): void;
  batch_write(batch: object, options: { sync: boolean }): Promise<void>;
}

/** A written batch whose bytes exceed this is not kept (LevelDB's WriteBatch keeps its largest size's capacity). */
export const RETAIN_MAX_BYTES = 16 << 20;

let binding: LevelBinding | null | undefined;

function levelBinding(): LevelBinding | null {
  if (binding !== undefined) return binding;
  try {
    const b = createRequire(import.meta.url)('classic-level/binding.js') as Partial<LevelBinding>;
    const calls = [b.batch_init, b.batch_put, b.batch_del, b.batch_clear, b.batch_write];
    binding = calls.every((call) => typeof call === 'function') ? (b as LevelBinding) : null;
  } catch {
    binding = null;
  }
  return binding;
}

/** Bytes copied into a batch between two yields (~1–2 ms of memcpy). */
const SLICE_BYTES = 4 << 20;

/**
 * Hands `ops` to `each` a slice at a time (at most SLICE operations and
 * about SLICE_BYTES), with the event loop let run between slices: copying
 * a large batch into LevelDB's in one step held it for 150–190 ms.
 */
export async function inSlices(ops: BatchOp[], each: (slice: BatchOp[]) => void): Promise<void> {
  for (let start = 0, count = 0, sliceBytes = 0; start < ops.length; start += count) {
    if (start > 0) await yieldToEventLoop();
    for (count = 0, sliceBytes = 0; start + count < ops.length && count < SLICE && sliceBytes < SLICE_BYTES; count++) {
      const op = ops[start + count]!;
      sliceBytes += op.key.byteLength + (op.type === 'put' ? op.value.byteLength : 0);
    }
    each(ops.slice(start, start + count));
  }
}

/** The reused batch while one write holds it (ReusableBatch.begin). */
export interface BatchInProgress {
  /** Copies `ops` into the native batch now (synchronously: pass a slice at a time); returns the bytes added so far. */
  add(ops: BatchOp[]): number;
  /** Writes everything added as one atomic batch. Call `end()` afterwards either way. */
  write(sync: boolean): Promise<void>;
  /** Clears the batch and gives it back (idempotent); without a write, nothing added reaches the store. */
  end(): void;
}

export class ReusableBatch {
  private handle: object | null = null;
  private busy = false;

  private constructor(
    private readonly binding: LevelBinding,
    private readonly db: ClassicLevel<Bytes, Bytes>,
    private readonly context: object,
  ) {}

  /** The reusable batch of an open database, or null where classic-level's binding does not expose what it needs. */
  static of(db: ClassicLevel<Bytes, Bytes>): ReusableBatch | null {
    const calls = levelBinding();
    const symbol = Object.getOwnPropertySymbols(db).find((s) => s.description === 'context');
    const context = symbol === undefined ? undefined : (db as unknown as Record<symbol, unknown>)[symbol];
    if (calls === null || typeof context !== 'object' || context === null) return null;
    return new ReusableBatch(calls, db, context);
  }

  /** Whether a write holds the batch now (a concurrent one then takes a chained batch of its own). */
  get inUse(): boolean {
    return this.busy;
  }

  /**
   * Writes `ops` atomically, copying them in slices between yields. The
   * database must be open; it is checked again right before the write
   * (LevelDB's handle is gone after a close).
   */
  async write(ops: BatchOp[], sync: boolean): Promise<void> {
    const staged = this.begin();
    try {
      await inSlices(ops, (slice) => staged.add(slice));
      await staged.write(sync);
    } finally {
      staged.end();
    }
  }

  /**
   * Takes the batch (the caller checked `inUse`) for operations added over
   * time, e.g. an upsert's records as each slice is sealed, so they are never
   * all held in JS at once. The caller must `end()` it, written or not.
   */
  begin(): BatchInProgress {
    if (this.busy) throw new Error('the reused write batch is in use');
    this.busy = true;
    const handle = (this.handle ??= this.binding.batch_init(this.context));
    this.binding.batch_clear(handle); // already empty; cleared again so nothing of an earlier write can ever go with this one
    let bytes = 0;
    let ended = false;
    const { binding, db } = this;
    return {
      add(ops) {
        if (ended) throw new Error('the write batch was already written or dropped');
        for (const op of ops) {
          if (op.type === 'put') binding.batch_put(handle, op.key, op.value);
          else binding.batch_del(handle, op.key);
          bytes += op.key.byteLength + (op.type === 'put' ? op.value.byteLength : 0);
        }
        return bytes;
      },
      async write(sync) {
        if (ended) throw new Error('the write batch was already written or dropped');
        if (db.status !== 'open') throw Object.assign(new Error('Database is not open'), { code: 'LEVEL_DATABASE_NOT_OPEN' });
        await binding.batch_write(handle, { sync });
      },
      end: () => {
        if (ended) return;
        ended = true;
        binding.batch_clear(handle);
        if (bytes > RETAIN_MAX_BYTES && this.handle === handle) this.handle = null; // its capacity goes with the GC, as a chained batch's would
        this.busy = false;
      },
    };
  }

  /** Lets the batch's memory go (with its handle, at the next GC); called at close. */
  release(): void {
    if (!this.busy) this.handle = null;
  }
}
