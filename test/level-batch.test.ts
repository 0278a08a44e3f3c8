/**
 * The store's reused native write batch (src/storage/level-batch.ts): it is
 * found in the pinned classic-level (so an upgrade that moves its binding
 * calls fails here, not silently in memory), each write holds exactly its own
 * operations (the batch is cleared after every write, also a failed one),
 * writes running at once both land, and a write after close rejects instead of
 * reaching LevelDB's closed handle. Real LevelDB in a temp dir.
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

async function openStore(): Promise<KvStore> {
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-level-batch-'));
  dirs.push(dir);
  return KvStore.open(join(dir, 'db'));
}

const key = (prefix: string, i: number) => Buffer.from(`${prefix}-${String(i).padStart(6, '0')}`);
/** More operations than one direct call takes (SLICE): the write goes through the reused batch. */
const N = 1000;
const puts = (prefix: string, fill: number): BatchOp[] =>
  Array.from({ length: N }, (_, i) => ({ type: 'put', key: key(prefix, i), value: Buffer.alloc(100, fill) }));

describe('the reused native write batch', () => {
  it('is used with the pinned classic-level', async () => {
    const kv = await openStore();
    expect(kv.reusesWriteBatch).toBe(true);
    await kv.close();
  });

  it('holds only the current write: an earlier write is not replayed by a later one', async () => {
    const kv = await openStore();
    await kv.batch(puts('a', 1));
    await kv.batch([{ type: 'put', key: key('a', 7), value: Buffer.from('newer') }]); // a small write: one direct call
    await kv.batch(puts('b', 2));
    expect(Buffer.from((await kv.get(key('a', 7)))!).toString()).toBe('newer'); // not 'a' #7 again from an uncleared batch
    expect((await kv.get(key('b', N - 1)))![0]).toBe(2);
    await kv.batch(Array.from({ length: N }, (_, i): BatchOp => ({ type: 'del', key: key('a', i) })));
    expect(await kv.get(key('a', 0))).toBeUndefined();
    expect((await kv.get(key('b', 0)))![0]).toBe(2);
    await kv.close();
  });

  it('lands two large writes started at once (the second takes a batch of its own)', async () => {
    const kv = await openStore();
    await Promise.all([kv.batch(puts('x', 3)), kv.batch(puts('y', 4))]);
    expect((await kv.get(key('x', N - 1)))![0]).toBe(3);
    expect((await kv.get(key('y', N - 1)))![0]).toBe(4);
    await kv.close();
  });

  it('rejects a large write after close without touching the closed database', async () => {
    const kv = await openStore();
    await kv.batch(puts('a', 1)); // the batch exists now
    await kv.close();
    await expect(kv.batch(puts('b', 2))).rejects.toThrow();
  });
});
