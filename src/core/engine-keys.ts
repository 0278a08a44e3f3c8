/**
 * Engine keys: the n-th key ever assigned in an index (manifest.nextKey),
 * never reused, spread over 48 bits.
 */
import { NativeError } from '../errors.js';

const MAX_KEYS = 2 ** 33;
const KEY_SPREAD = 0xb5297; // odd, so n ↦ n·KEY_SPREAD mod 2^48 is a bijection

/**
 * Spreads sequential counters over 48 bits. usearch's key table uses linear
 * probing on the raw key; consecutive keys fill one contiguous run, and every
 * lookup (remove, exact filtered search) then scans it: 200× slower measured.
 * n < 2^33 keeps n·KEY_SPREAD below 2^53, so the product is exact in a double.
 */
export function engineKey(counter: number): number {
  if (counter >= MAX_KEYS) throw new NativeError('This index has assigned 2^33 keys over its life; copy its records into a new index.');
  return (counter * KEY_SPREAD) % 2 ** 48;
}
