/**
 * The store's point reads (KvStore.getMany): on the calling thread in turns
 * with the event loop free in between, the same bytes as LevelDB's pool reads,
 * in the order asked, missing keys as undefined. Real LevelDB in a temp dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KvStore, type BatchOp } from '../src/storage/kv-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const key = (i: number) => Buffer.from(`k-${String(i).padStart(7, '0')}`);

async function filledStore(count: number): Promise<KvStore> {
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-kv-reads-'));
  dirs.push(dir);
  const kv = await KvStore.open(join(dir, 'db'));
  for (let start = 0; start < count; start += 5000) {
    const ops: BatchOp[] = Array.from({ length: Math.min(5000, count - start) }, (_, j) => ({
      type: 'put',
      key: key(start + j),
      value: Buffer.alloc(200, (start + j) % 251),
    }));
    await kv.batch(ops);
  }
  return kv;
}

/** setImmediate callbacks that ran while `read` was pending. */
async function turnsDuring(read: () => Promise<unknown>): Promise<number> {
  let ticks = 0;
  let running = true;
  const tick = () => {
    if (!running) return;
    ticks++;
    setImmediate(tick);
  };
  setImmediate(tick);
  await read();
  running = false;
  return ticks;
}

describe('KvStore.getMany', () => {
  it('returns what the pool reads return, in the order asked, missing keys as undefined', async () => {
    const kv = await filledStore(3000);
    const keys = [key(2999), key(5), Buffer.from('absent'), key(1234), key(5), key(3000)];
    const here = await kv.getMany(keys);
    const pool = await kv.getMany(keys, { fillCache: false }); // always LevelDB's getMany on the pool
    expect(here.map((v) => v && Buffer.from(v).toString('hex'))).toEqual(pool.map((v) => v && Buffer.from(v).toString('hex')));
    expect(here.map((v) => v?.[0])).toEqual([2999 % 251, 5, undefined, 1234 % 251, 5, undefined]);
    expect(here[0]!.byteLength).toBe(200);
    await kv.close();
  });

  it('reads many keys in turns, letting the event loop run between them (control: one unbroken turn)', async () => {
    const kv = await filledStore(30_000);
    const keys = Array.from({ length: 30_000 }, (_, i) => key((i * 7919) % 30_000));
    const turns = await turnsDuring(async () => {
      const values = await kv.getMany(keys);
      expect(values.every((v, i) => v !== undefined && v[0] === ((i * 7919) % 30_000) % 251)).toBe(true);
    });
    expect(turns).toBeGreaterThanOrEqual(3);
    kv.syncReads = { turnMs: Infinity, slowMs: Infinity, slowForPool: Infinity };
    expect(await turnsDuring(() => kv.getMany(keys))).toBe(0);
    await kv.close();
  });

  it('a call that keeps meeting slow reads reads the rest on the pool, with the same values', async () => {
    const kv = await filledStore(3000);
    const keys = [...Array.from({ length: 2000 }, (_, i) => key((i * 31) % 3000)), Buffer.from('absent')];
    const expected = (await kv.getMany(keys)).map((v) => v?.[0]);
    // Every read counts as slow (slowMs < 0): after the third the rest go to the pool, and the loop runs meanwhile.
    kv.syncReads = { turnMs: Infinity, slowMs: -1, slowForPool: 3 };
    // Count the reads made on this thread (LevelDB's own getSync, called through): three, then the pool.
    const db = (kv as unknown as { db: { getSync: (key: Uint8Array) => unknown } }).db;
    const getSync = db.getSync.bind(db);
    let hereReads = 0;
    db.getSync = (k) => (hereReads++, getSync(k));
    let values: (Uint8Array | undefined)[] = [];
    const turns = await turnsDuring(async () => {
      values = await kv.getMany(keys);
    });
    expect(values.map((v) => v?.[0])).toEqual(expected);
    expect(values.at(-1)).toBeUndefined();
    expect(hereReads).toBe(3); // without the hand-off to the pool: all 2,001
    expect(turns).toBeGreaterThanOrEqual(1);
    await kv.close();
  });
});
