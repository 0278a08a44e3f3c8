/** Lets timers and I/O run between slices of long synchronous work (validation, sealing). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Items handled between two yields: about a millisecond of work for typical vectors. */
export const SLICE = 256;
