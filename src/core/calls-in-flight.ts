/**
 * Counts public calls from their start until they settle, so a close can wait
 * for the calls that began before it (and only those).
 */
export class CallsInFlight {
  private count = 0;
  private waiting: (() => void)[] = [];

  /** Runs `work`, counted from now (synchronously) until it settles. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    this.count++;
    try {
      return await work();
    } finally {
      if (--this.count === 0) for (const resolve of this.waiting.splice(0)) resolve();
    }
  }

  /** Resolves once no counted call is in flight. */
  settled(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}
