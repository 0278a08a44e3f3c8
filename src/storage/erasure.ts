/**
 * Erasures that survive a crash. Values replaced or deleted by a synced batch
 * stay in LevelDB's files until `KvStore.shred` rewrites them; a crash between
 * the batch and the shred would leave them there until LevelDB happens to
 * compact that range. So the batch that replaces or deletes them also writes
 * a *pending erasure* ('E' + 16 random bytes, layout.ts): the key ranges to
 * rewrite, the bracket keys, and the keys whose current value brackets its
 * own older values. The caller shreds and then deletes the marker; if the
 * process dies first, the next `Store.open` finds the marker and does it
 * (`finishErasures`). Shredding needs no key: it is compaction, so the
 * markers hold only key names (index names, index ids and HMACs: nothing
 * secret). Indexes deleted and data-key rotations switched over are finished
 * through their `deleting` commit heads instead (store.ts `recover`).
 */
import { randomBytes } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import type { BatchOp, KvBackend, RangeOptions } from './kv-store.js';
import { erasureKey, erasureRange } from './layout.js';
import { pack, unpack } from '../util/msgpack.js';

const ERASURE_VERSION = 1;

/** What to erase: `ranges` whose deleted values go, with `brackets` (see `KvStore.shred`); `rewrite`: keys that stay, whose older values go. */
export interface Erasure {
  ranges: RangeOptions[];
  brackets: Uint8Array[];
  rewrite: Uint8Array[];
}

/** A new pending erasure: its marker key and the put to add to the batch that replaces or deletes the values. */
export function pendingErasure(e: Erasure): { key: Buffer; op: BatchOp } {
  const key = erasureKey(randomBytes(16));
  const value = pack({ v: ERASURE_VERSION, ranges: e.ranges.map((r) => [r.gte, r.lt]), brackets: e.brackets, rewrite: e.rewrite });
  return { key, op: { type: 'put', key, value } };
}

/**
 * Erases what `e` names from the files (the current values of `rewrite` are
 * written again as brackets), then deletes the marker `key`. Idempotent: run
 * again after a crash, it does the same.
 */
export async function erase(kv: KvBackend, key: Uint8Array, e: Erasure): Promise<void> {
  const rewrites: BatchOp[] = [];
  for (const k of e.rewrite) {
    const value = await kv.get(k);
    if (value !== undefined) rewrites.push({ type: 'put', key: k, value });
  }
  await kv.shred(e.ranges, e.brackets, key, rewrites);
  await kv.batch([{ type: 'del', key }]); // shred deletes its probe already; a backend whose shred does nothing does not
}

function decode(value: Uint8Array): Erasure {
  const bad = () => new IntegrityError('A pending erasure record of the store is malformed. Restore the store from a backup.');
  let raw: { v?: unknown; ranges?: unknown; brackets?: unknown; rewrite?: unknown };
  try {
    raw = unpack(value) as typeof raw;
  } catch {
    throw bad();
  }
  const bytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array;
  if (
    typeof raw !== 'object' ||
    raw === null ||
    raw.v !== ERASURE_VERSION ||
    !Array.isArray(raw.ranges) ||
    !raw.ranges.every((r) => Array.isArray(r) && r.length === 2 && bytes(r[0]) && bytes(r[1])) ||
    !Array.isArray(raw.brackets) ||
    !raw.brackets.every(bytes) ||
    !Array.isArray(raw.rewrite) ||
    !raw.rewrite.every(bytes)
  ) {
    throw bad();
  }
  const copy = (b: Uint8Array) => new Uint8Array(b);
  return {
    ranges: (raw.ranges as [Uint8Array, Uint8Array][]).map(([gte, lt]) => ({ gte: copy(gte), lt: copy(lt) })),
    brackets: (raw.brackets as Uint8Array[]).map(copy),
    rewrite: (raw.rewrite as Uint8Array[]).map(copy),
  };
}

/** At open: finishes every erasure a crash interrupted. */
export async function finishErasures(kv: KvBackend): Promise<number> {
  const pending: { key: Uint8Array; e: Erasure }[] = [];
  for await (const [key, value] of kv.entries(erasureRange())) pending.push({ key: new Uint8Array(key), e: decode(value) });
  for (const { key, e } of pending) await erase(kv, key, e);
  return pending.length;
}
