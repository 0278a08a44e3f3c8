/**
 * What only a shared PostgreSQL store does: several openers of one index
 * (separate Clients on separate connection strings, each with its own graph,
 * as separate processes would be), commits that compare-and-set the manifest
 * counter, followers, leakage into the database, a rolled-back database, and
 * the server going away and coming back. Multi-process runs are in
 * postgres-processes.test.ts.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type EncryptedIndex } from '../src/index.js';
import { PgKv } from '../src/storage/postgres/pg-kv.js';
import { postgresBackend, type Backend } from './support/backends.js';
import { rejectsWithCode } from './support/helpers.js';
import { PgCluster, skipPostgres } from './support/postgres.js';

const skip = skipPostgres();
let cluster: PgCluster;
beforeAll(async () => {
  if (!skip) cluster = await PgCluster.start();
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

async function twoOpeners(backend: Backend, dimension = 2): Promise<{ key: Uint8Array; a: EncryptedIndex; b: EncryptedIndex }> {
  const key = Client.generateKey();
  const a = await backend.client('a').createIndex({ indexName: 'shared', indexKey: key, dimension });
  const b = await backend.client('b').loadIndex({ indexName: 'shared', indexKey: key });
  return { key, a, b };
}

describe('new Client({ store })', () => {
  it('checks the store option before touching anything', () => {
    const path = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return [(error as { code?: string }).code, (error as { path?: string }).path];
      }
      return 'no error';
    };
    expect(path(() => new Client({ store: { kind: 'mysql' } as never }))).toEqual(['VECVAULT_VALIDATION', 'store.kind']);
    expect(path(() => new Client({ store: { kind: 'postgres', connectionString: '' } }))).toEqual(['VECVAULT_VALIDATION', 'store.connectionString']);
    expect(path(() => new Client({ store: { kind: 'postgres', connectionString: 'postgres://x', schema: 'a"; drop' } }))).toEqual([
      'VECVAULT_VALIDATION',
      'store.schema',
    ]);
    expect(path(() => new Client({ path: '/tmp/x', store: { kind: 'postgres', connectionString: 'postgres://x' } }))).toEqual(['VECVAULT_VALIDATION', 'store']);
    expect(path(() => new Client({ store: { kind: 'postgres', connectionString: 'postgres://127.0.0.1:1/none' } }))).toBe('no error'); // lazy: nothing connects yet
  });

  it('an unreachable database is VECVAULT_IO on first use', async () => {
    const client = new Client({ store: { kind: 'postgres', connectionString: 'postgres://postgres@127.0.0.1:1/none' } });
    await rejectsWithCode(client.listIndexes(), 'VECVAULT_IO');
    await client.close();
  });
});

describe.skipIf(skip)('PostgreSQL: one index, several openers', () => {
  it('a write through one opener is seen by the other at once (strong reads), and within the polling bound with eventual reads', async () => {
    const { a, b } = await twoOpeners(postgresBackend(cluster));
    await a.upsert({ items: [{ id: 'x', vector: [1, 0], metadata: { v: 1 } }] });
    expect(await b.get({ ids: ['x'], include: ['metadata'] })).toEqual([{ id: 'x', metadata: { v: 1 } }]);
    expect((await b.query({ queryVectors: [1, 0], topK: 1 })).results).toEqual([{ id: 'x' }]);
    await b.delete({ ids: ['x'] });
    await a.upsert({ items: [{ id: 'y', vector: [0, 1] }] });
    expect((await a.listIds()).ids).toEqual(['y']);
    // eventual: NOTIFY (or the 1 s poll) brings it in without a query round trip.
    await b.upsert({ items: [{ id: 'z', vector: [1, 1] }] });
    const start = Date.now();
    let seen = false;
    while (!seen && Date.now() - start < 3000) {
      seen = (await a.query({ queryVectors: [1, 1], topK: 5, consistency: 'eventual' })).results.some((r) => r.id === 'z');
      if (!seen) await new Promise((r) => setTimeout(r, 10));
    }
    expect(seen).toBe(true);
    expect(Date.now() - start).toBeLessThan(1500);
    await rejectsWithCode(a.query({ queryVectors: [1, 1], consistency: 'sometimes' as 'eventual' }), 'VECVAULT_VALIDATION');
  });

  it('a strong read while the background follower is still adding a commit to the graph waits for it (no stale query after a fresh get)', async () => {
    // The window CI hit once: the follower (woken by NOTIFY) had taken the new commit's counter and filled the
    // live table but was still inside the engine's add, so a get found the record and a strong query then
    // searched a graph without it. A large commit keeps that window open long enough to land in it every time.
    const dimension = 32;
    const { a, b } = await twoOpeners(postgresBackend(cluster), dimension);
    const n = 20_000;
    const vectors = Array.from({ length: n }, (_, i) =>
      Array.from({ length: dimension }, (_, d) => Math.sin(i * 0.37 + d * 1.3) + (d === i % dimension ? 2 : 0)),
    );
    await a.upsert({ ids: vectors.map((_, i) => `v${i}`), vectors });
    // The follower fills the live table synchronously before it awaits the graph: watch for that, then read strongly.
    const start = Date.now();
    while (b.stats().count < n && Date.now() - start < 20_000) await new Promise((r) => setTimeout(r, 1));
    expect(b.stats().count).toBe(n);
    const probe = n - 1;
    expect((await b.get({ ids: [`v${probe}`], include: [] })).length).toBe(1);
    const { results } = await b.query({ queryVectors: vectors[probe]!, topK: 1, exact: true });
    expect(results).toEqual([{ id: `v${probe}` }]);
  }, 60_000);

  it('concurrent writers through two openers lose no acknowledged write and apply none twice', async () => {
    const backend = postgresBackend(cluster);
    const { key, a, b } = await twoOpeners(backend);
    const acked: string[] = [];
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      writes.push(a.upsert({ items: [{ id: `a${i}`, vector: [i, 1], metadata: { by: 'a' } }] }).then(() => acked.push(`a${i}`)));
      writes.push(b.upsert({ items: [{ id: `b${i}`, vector: [1, i], metadata: { by: 'b' } }] }).then(() => acked.push(`b${i}`)));
      // Both overwrite one shared id: the survivor is one of the two writes, counted once.
      writes.push(a.upsert({ items: [{ id: 'both', vector: [i, i], metadata: { by: 'a', i } }] }));
      writes.push(b.upsert({ items: [{ id: 'both', vector: [i, i], metadata: { by: 'b', i } }] }));
    }
    await Promise.all(writes);
    const expected = [...acked, 'both'].sort();
    expect((await a.listIds()).ids.sort()).toEqual(expected);
    expect((await b.listIds()).ids.sort()).toEqual(expected);
    // A third opener rebuilds from the rows: the manifest's count and digest add up.
    const fresh = await backend.client('c').loadIndex({ indexName: 'shared', indexKey: key });
    expect((await fresh.listIds()).count).toBe(81);
    await a.upsert({ items: [{ id: 'last', vector: [5, 5] }] });
    expect((await b.verify()).ok).toBe(true); // b catches up first: it checks the newest commit
  });

  it('a stale commit is refused by the compare-and-set (ConflictError) and an upsert retries on its own', async () => {
    const backend = postgresBackend(cluster);
    const { a, b } = await twoOpeners(backend);
    await a.upsert({ items: [{ id: 'p', vector: [1, 0] }] });
    // b has not caught up (no read since): its write conflicts underneath, catches up and retries.
    await b.upsert({ items: [{ id: 'q', vector: [0, 1] }] });
    expect((await b.listIds()).ids.sort()).toEqual(['p', 'q']);
    // The raw compare-and-set: moving the manifest row from a counter it no longer holds changes nothing.
    const raw = await backend.raw();
    const manifest = (await raw.entries()).find((e) => e.key[0] === 0x49 && e.key.length === 18 && e.key[17] === 0x4d)!;
    await raw.close();
    const db = new pg.Client({ connectionString: cluster.connectionString });
    await db.connect();
    const res = await db.query(`UPDATE "${backend.schema}".vecvault_kv SET counter = counter + 1 WHERE key = $1 AND counter = $2`, [manifest.key, 0]);
    await db.end();
    expect(res.rowCount).toBe(0);
    // The backend itself: a second commit of the same number is refused with ConflictError and writes nothing.
    const kv = new PgKv(new pg.Pool({ connectionString: cluster.connectionString, max: 2 }), `${backend.schema}_cas`);
    await kv.init();
    const mkey = Buffer.from('I0123456789abcdefM');
    const put = (key: string, value: string) => ({ type: 'put' as const, key: Buffer.from(key), value: Buffer.from(value) });
    await kv.batch([{ type: 'put', key: mkey, value: Buffer.from('m0') }], { guard: { key: mkey, counter: 0 } });
    await kv.batch([put('rec-1', 'one'), { type: 'put', key: mkey, value: Buffer.from('m1') }], { guard: { key: mkey, counter: 1 } });
    await rejectsWithCode(
      kv.batch([put('rec-2', 'two'), { type: 'put', key: mkey, value: Buffer.from('m1b') }], { guard: { key: mkey, counter: 1 } }),
      'VECVAULT_CONFLICT',
    );
    await rejectsWithCode(kv.batch([{ type: 'put', key: mkey, value: Buffer.from('again') }], { guard: { key: mkey, counter: 0 } }), 'VECVAULT_CONFLICT');
    expect(await kv.get(Buffer.from('rec-2'))).toBeUndefined();
    expect(Buffer.from((await kv.get(mkey))!).toString()).toBe('m1');
    expect(await kv.counter(mkey)).toBe(1);
    await kv.close();
  });

  it('a writer that keeps losing takes a turn: other commits wait for it, its own do not (control: without a turn they land at once)', async () => {
    const schema = `${postgresBackend(cluster).schema}_turn`;
    const open = async () => {
      const kv = new PgKv(new pg.Pool({ connectionString: cluster.connectionString, max: 3 }), schema);
      await kv.init();
      return kv;
    };
    const [a, b] = [await open(), await open()];
    const mkey = Buffer.from('I0123456789abcdefM');
    const commit = (kv: PgKv, counter: number, value: string) =>
      kv.batch([{ type: 'put', key: mkey, value: Buffer.from(value) }], { guard: { key: mkey, counter } });
    const settlesWithin = (p: Promise<unknown>, ms: number) =>
      Promise.race([
        p.then(
          () => 'settled',
          () => 'settled',
        ),
        new Promise((r) => setTimeout(() => r('pending'), ms)),
      ]);
    await commit(a, 0, 'm0');
    // Control: no turn held, a's commit lands at once.
    expect(await settlesWithin(commit(a, 1, 'm1'), 2000)).toBe('settled');
    const release = await b.takeTurn(mkey);
    const waiting = commit(a, 2, 'a2');
    expect(await settlesWithin(waiting, 300)).toBe('pending');
    await commit(b, 2, 'b2'); // the turn holder's own commit does not wait on itself
    await release();
    await rejectsWithCode(waiting, 'VECVAULT_CONFLICT'); // it went on once released, and found the counter moved
    expect(Buffer.from((await a.get(mkey))!).toString()).toBe('b2');
    expect(await settlesWithin(commit(a, 3, 'a3'), 2000)).toBe('settled'); // released for good
    expect(await a.counter(mkey)).toBe(3);
    await a.close();
    await b.close();
  });

  it('a snapshot written by one opener is what a late opener loads; the others keep serving meanwhile', async () => {
    const backend = postgresBackend(cluster);
    const { key, a, b } = await twoOpeners(backend, 4);
    const vectors = Array.from({ length: 300 }, (_, i) => [i, 1, i % 7, 2]);
    await a.upsert({ ids: vectors.map((_, i) => `v${i}`), vectors });
    await a.snapshot();
    await b.upsert({ ids: ['tail'], vectors: [[9, 9, 9, 9]] });
    const late = await backend.client('late').loadIndex({ indexName: 'shared', indexKey: key });
    expect((await late.listIds()).count).toBe(301);
    expect((await late.query({ queryVectors: [9, 9, 9, 9], topK: 1 })).results).toEqual([{ id: 'tail' }]);
    // An opener behind the snapshot (whose change log is gone) catches up by comparing records.
    await b.upsert({ ids: ['after'], vectors: [[5, 5, 5, 5]] });
    await late.snapshot();
    expect((await a.listIds()).count).toBe(302);
  });

  it('pg_dump of the database holds no planted id, metadata, contents or vector; the index name is found (scanner control)', async () => {
    const backend = postgresBackend(cluster);
    const client = backend.client('leak');
    const marker = (what: string) => `PLANTED-${what}-7f3a9c`;
    const index = await client.createIndex({ indexName: marker('name'), indexKey: Client.generateKey(), dimension: 4 });
    const vector = [1234.5678, -8765.4321, 42.4242, 0.0001234];
    await index.upsert({ items: [{ id: marker('id'), vector, metadata: { secret: marker('metadata') }, contents: marker('contents') }] });
    await index.snapshot();
    await client.close();
    const dump = cluster.dump();
    const needles = (text: string) => [text, Buffer.from(text).toString('hex')];
    const found = (text: string) => needles(text).some((n) => dump.includes(n));
    expect(found(marker('name'))).toBe(true); // names are in the clear (README): the scan sees bytea contents
    for (const what of ['id', 'metadata', 'contents']) expect(found(marker(what))).toBe(false);
    const vectorHex = Buffer.from(Float32Array.from(vector).buffer).toString('hex');
    expect(dump.includes(vectorHex)).toBe(false);
    expect(dump.includes(Buffer.from(Float32Array.from(vector.slice(0, 2)).buffer).toString('hex'))).toBe(false);
  });

  it('a database rolled back below what this process saw → IntegrityError', async () => {
    const backend = postgresBackend(cluster);
    const { a } = await twoOpeners(backend);
    await a.upsert({ items: [{ id: 'one', vector: [1, 0] }] });
    const raw = await backend.raw();
    const old = await raw.entries();
    await a.upsert({ items: [{ id: 'two', vector: [0, 1] }] });
    // Put every row back as it was one commit ago (a restore of an older backup).
    const now = await raw.entries();
    for (const row of now) if (!old.some((o) => o.key.equals(row.key))) await raw.del(row.key);
    for (const row of old) await raw.put(row.key, row.value);
    await raw.close();
    const db = new pg.Client({ connectionString: cluster.connectionString });
    await db.connect();
    await db.query(`UPDATE "${backend.schema}".vecvault_kv SET counter = counter - 1 WHERE counter IS NOT NULL`);
    await db.end();
    await rejectsWithCode(a.query({ queryVectors: [1, 0] }), 'VECVAULT_INTEGRITY');
  });

  it('the server going away fails calls with StorageError; once it is back they succeed and nothing acknowledged is lost', async () => {
    const backend = postgresBackend(cluster);
    const { key, a } = await twoOpeners(backend);
    await a.upsert({ items: [{ id: 'before', vector: [1, 0] }] });
    await cluster.stopServer();
    try {
      await rejectsWithCode(a.upsert({ items: [{ id: 'during', vector: [0, 1] }] }), 'VECVAULT_IO');
      await rejectsWithCode(a.query({ queryVectors: [1, 0] }), 'VECVAULT_IO');
    } finally {
      cluster.startServer();
    }
    await a.upsert({ items: [{ id: 'after', vector: [0, 1] }] });
    expect((await a.listIds()).ids.sort()).toEqual(['after', 'before']);
    const fresh = await backend.client('fresh').loadIndex({ indexName: 'shared', indexKey: key });
    expect((await fresh.listIds()).ids.sort()).toEqual(['after', 'before']);
  }, 30_000);
});
