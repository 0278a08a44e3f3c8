import { heapWorkEnded, heapWorkStarted } from '../util/memory.js';

/**
 * Write-side work of one index runs one task at a time, in call order
 * (upserts, deletes, snapshots, compactions, close). Readers are not queued:
 * they use the epoch to tell a write racing them from tampering on disk.
 */
export class WriteQueue {
  private tail: Promise<unknown> = Promise.resolve();
  /** Bumped when a write starts committing and when its memory update ends. */
  private epoch = 0;
  private writing = false;
  /** Tasks queued or running. */
  private pending = 0;

  /** Runs `task` after every task queued before it; `check` runs first (e.g. the index is still open). */
  run<T>(task: () => Promise<T>, check: () => void): Promise<T> {
    this.pending++;
    const run = this.tail.then(async () => {
      check();
      heapWorkStarted(); // no memory-reducing GC inside a write, snapshot or close (util/memory.ts)
      try {
        return await task();
      } finally {
        heapWorkEnded();
      }
    });
    this.tail = run.catch(() => undefined).finally(() => this.pending--);
    return run;
  }

  /** Whether a task is queued or running (the index is not idle). */
  get busy(): boolean {
    return this.pending > 0;
  }

  /** Resolves once every task queued so far has settled. */
  settled(): Promise<unknown> {
    return this.tail;
  }

  /** Marks the span where disk and memory may disagree: from the commit until memory caught up. */
  async committing<T>(work: () => Promise<T>): Promise<T> {
    this.epoch++;
    this.writing = true;
    try {
      return await work();
    } finally {
      this.writing = false;
      this.epoch++;
    }
  }

  /** A mark for `racedSince`, taken before a read. */
  mark(): number {
    return this.epoch;
  }

  /** Whether a write was between its commit and its memory update at any time since `mark`. */
  racedSince(mark: number): boolean {
    return this.writing || this.epoch !== mark;
  }
}
