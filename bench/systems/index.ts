/** Every system the suite knows, in report order; raw usearch first (the reference). */
import { faissAdapter } from './faiss.js';
import { hnswlibAdapter } from './hnswlib.js';
import { lancedbAdapter } from './lancedb.js';
import type { SystemAdapter } from './types.js';
import { usearchAdapter } from './usearch.js';
import { vectraAdapter } from './vectra.js';
import { vecvaultAdapter } from './vecvault.js';

export const SYSTEMS: readonly SystemAdapter[] = [usearchAdapter, vecvaultAdapter, hnswlibAdapter, lancedbAdapter, vectraAdapter, faissAdapter];

export const REFERENCE_SYSTEM = usearchAdapter.key;

export function systemByKey(key: string): SystemAdapter {
  const found = SYSTEMS.find((s) => s.key === key);
  if (!found) throw new Error(`unknown system ${key}; known: ${SYSTEMS.map((s) => s.key).join(', ')}`);
  return found;
}
