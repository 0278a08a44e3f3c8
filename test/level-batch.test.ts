/**
 * The store's reused native write batch (src/storage/level-batch.ts): it is
 * found in the pinned classic-level (so an upgrade that moves its binding
 * calls fails here, not silently in memory), each write holds exactly its own
 * operations (the batch is cleared after every write, also a failed one),
 * writes running at once both land, and a write after close rejects instead of
 * reaching LevelDB's closed handle. A staged batch (an upsert's records added
 * as they are sealed) that is dropped leaves nothing behind: not in the store,
 * not in the next write. Real LevelDB in a temp dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';
import { KvStore, type BatchOp } from '../src/storage/kv-store.js';
import { randomVectors } from './support/helpers.js';

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

  it('a staged batch holds the reused batch until written or dropped; a dropped one writes nothing, now or later', async () => {
    const kv = await openStore();
    const staged = kv.stage()!;
    expect(kv.stage()).toBeUndefined(); // taken: a concurrent write uses a batch of its own
    staged.add(puts('gone', 5));
    await kv.batch(puts('other', 6)); // meanwhile, through a chained batch
    staged.discard();
    const next = kv.stage()!;
    next.add(puts('b', 7));
    await next.write([{ type: 'put', key: key('last', 0), value: Buffer.from('x') }]);
    expect(await kv.get(key('gone', 0))).toBeUndefined();
    expect((await kv.get(key('other', 0)))![0]).toBe(6);
    expect((await kv.get(key('b', N - 1)))![0]).toBe(7);
    expect(Buffer.from((await kv.get(key('last', 0)))!).toString()).toBe('x');
    expect(kv.stage()).toBeDefined(); // free again after the write
    await kv.close();
  });

  it('an upsert that fails after its records were staged leaves none of them in the store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vecvault-level-batch-'));
    dirs.push(dir);
    const indexKey = new Uint8Array(32).fill(9);
    let client = new Client({ path: join(dir, 'vv') });
    let index = await client.createIndex({ indexName: 'i', indexKey, dimension: 4 });
    const vectors = randomVectors(600, 4, 1);
    const boom = new Error('stop');
    // onProgress runs after the graph insert, once every slice was sealed (and staged): its throw cancels the commit.
    await expect(
      index.upsert({
        ids: vectors.map((_, i) => `n${i}`),
        vectors,
        onProgress: () => {
          throw boom;
        },
      }),
    ).rejects.toBe(boom);
    await index.upsert({ ids: ['kept'], vectors: [[1, 2, 3, 4]] }); // the next write reuses the batch
    await client.close();
    client = new Client({ path: join(dir, 'vv') });
    index = await client.loadIndex({ indexName: 'i', indexKey });
    // verify() reads every stored record: a stray one of the failed call would be counted (and reported).
    const report = await index.verify();
    expect(report.checked.records).toBe(1);
    expect(report.problems).toEqual([]);
    await client.close();
  });
});
