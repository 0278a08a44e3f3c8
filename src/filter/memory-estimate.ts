/**
 * Rough byte counts for `index.stats()`, modelled on V8's layout (64-bit,
 * pointer compression off): good to a small factor, cheap to compute.
 */

import { isPlainRecord } from './metadata-values.js';

const OBJECT_HEADER = 24;
const SLOT = 8;
const STRING_HEADER = 16;
const HEAP_NUMBER = 16;
/** Map/Set entry: key, value, chain link in an OrderedHashTable, plus load-factor slack. */
export const HASH_ENTRY = 32;
export const HASH_TABLE_HEADER = 64;

/** Walks at most `MAX_WALK` values so a huge or cyclic object cannot stall `set()`. */
const MAX_WALK = 100_000;

export function estimateStringBytes(value: string): number {
  return STRING_HEADER + value.length * 2;
}

export function estimateValueBytes(root: unknown): number {
  let bytes = 0;
  let budget = MAX_WALK;
  const pending: unknown[] = [root];
  while (pending.length > 0 && budget-- > 0) {
    const value = pending.pop();
    if (typeof value === 'string') bytes += estimateStringBytes(value);
    else if (typeof value === 'number') bytes += HEAP_NUMBER;
    else if (Array.isArray(value)) {
      bytes += OBJECT_HEADER + value.length * SLOT;
      for (let i = 0; i < value.length && pending.length < MAX_WALK; i++) pending.push(value[i]);
    } else if (isPlainRecord(value)) {
      const keys = Object.keys(value);
      bytes += OBJECT_HEADER + keys.length * 2 * SLOT;
      for (const key of keys) {
        bytes += estimateStringBytes(key) / 4; // keys are interned and shared across records
        if (pending.length < MAX_WALK) pending.push(value[key]);
      }
    } else bytes += SLOT;
  }
  return Math.round(bytes);
}
