/** Bugs found in review, each pinned by the scenario that showed it. */
import { describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';
import { catalogKey } from '../src/storage/layout.js';
import { pack, unpack } from '../src/storage/sealed.js';
import { rawStore, rejectsWithCode, tempStore } from './support/helpers.js';

describe('review regressions', () => {
  it('two concurrent first upserts with different dimensions: one fails cleanly, the index stays usable', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    let client = new Client({ path });
    const index = await client.createIndex({ indexName: 'x', indexKey: key });
    const outcomes = await Promise.allSettled([index.upsert({ ids: ['a'], vectors: [[1, 2, 3]] }), index.upsert({ ids: ['b'], vectors: [[1, 2, 3, 4]] })]);
    expect(outcomes[0].status).toBe('fulfilled');
    expect((outcomes[1] as PromiseRejectedResult).reason.code).toBe('VECVAULT_VALIDATION');
    expect((await index.listIds()).ids).toEqual(['a']);
    await client.close();
    client = new Client({ path });
    expect((await (await client.loadIndex({ indexName: 'x', indexKey: key })).listIds()).ids).toEqual(['a']);
    await client.close();
  });

  it('ids, names and strings with lone surrogates are rejected (they would collide once encoded)', async () => {
    const client = new Client({ path: tempStore() });
    const index = await client.createIndex({ indexName: 'x', indexKey: Client.generateKey(), dimension: 2 });
    await rejectsWithCode(index.upsert({ ids: ['doc-\uD83D'], vectors: [[1, 2]] }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.upsert([{ id: 'ok', vector: [1, 2], metadata: { t: 'a\uDC00' } }]), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.upsert([{ id: 'ok', vector: [1, 2], contents: '\uD800' }]), 'VECVAULT_VALIDATION');
    await rejectsWithCode(client.createIndex({ indexName: 'n\uD800', indexKey: Client.generateKey() }), 'VECVAULT_VALIDATION');
    await index.upsert({ ids: ['doc-😀'], vectors: [[1, 2]] }); // well-formed astral characters are fine
    expect((await index.listIds()).ids).toEqual(['doc-😀']);
    await client.close();
  });

  it('metadata is copied: mutating the caller object later changes neither filters nor snapshots', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    let client = new Client({ path });
    let index = await client.createIndex({ indexName: 'x', indexKey: key, dimension: 2 });
    const meta = { tag: 'a' };
    await index.upsert([{ id: 'r1', vector: [1, 2], metadata: meta }]);
    meta.tag = 'b';
    await index.upsert([{ id: 'r2', vector: [2, 1], metadata: meta }]);
    expect((await index.listIds({ filters: { tag: 'a' } })).ids).toEqual(['r1']);
    // Query results carry copies too (metadata is served from memory).
    const { results } = await index.query({ queryVectors: [1, 2], topK: 1, include: ['metadata'] });
    expect(results).toEqual([{ id: 'r1', metadata: { tag: 'a' } }]);
    (results[0]!.metadata as { tag: string }).tag = 'z';
    expect((await index.listIds({ filters: { tag: 'a' } })).ids).toEqual(['r1']);
    await client.close();
    client = new Client({ path });
    index = await client.loadIndex({ indexName: 'x', indexKey: key });
    expect((await index.listIds({ filters: { tag: 'a' } })).ids).toEqual(['r1']);
    await client.close();
  });

  it('records without metadata still match negative filters after a reload from the snapshot', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    let client = new Client({ path });
    let index = await client.createIndex({ indexName: 'x', indexKey: key, dimension: 2 });
    await index.upsert([{ id: 'nometa', vector: [1, 2] }, { id: 'meta', vector: [2, 1], metadata: { f: 1 } }]);
    const check = async () => {
      expect((await index.listIds({ filters: { f: { $exists: false } } })).ids).toEqual(['nometa']);
      expect((await index.listIds({ filters: { f: { $ne: 1 } } })).ids).toEqual(['nometa']);
    };
    await check();
    await client.close();
    client = new Client({ path });
    index = await client.loadIndex({ indexName: 'x', indexKey: key });
    expect(index.stats().openedFrom).toBe('snapshot');
    await check();
    await client.close();
  });

  it('a read racing close() gets ClosedError, not a tampering report; loadIndex after close opens a fresh handle', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const client = new Client({ path });
    const index = await client.createIndex({ indexName: 'x', indexKey: key, dimension: 2 });
    await index.upsert([{ id: 'a', vector: [1, 2], metadata: { m: 1 } }]);
    const read = index.get({ ids: ['a'] });
    const closing = index.close();
    const outcome = await read.then(
      (v) => v,
      (e: { code: string }) => e.code,
    );
    // Either the read finished first, or it learns the index closed; never a tampering report.
    if (outcome !== 'VECVAULT_CLOSED') expect(outcome).toEqual([{ id: 'a', vector: [1, 2], metadata: { m: 1 } }]);
    const again = await client.loadIndex({ indexName: 'x', indexKey: key });
    expect(again).not.toBe(index);
    await closing;
    expect((await again.get({ ids: ['a'], include: ['metadata'] }))[0]).toEqual({ id: 'a', metadata: { m: 1 } });
    await client.close();
  });

  it('every close() call waits for the store to be closed', async () => {
    const path = tempStore();
    const client = new Client({ path });
    await client.listIndexes();
    const order: string[] = [];
    await Promise.all([client.close().then(() => order.push('first')), client.close().then(() => order.push('second'))]);
    expect(order).toEqual(['first', 'second']);
    const next = new Client({ path });
    expect(await next.listIndexes()).toEqual([]);
    await next.close();
  });

  it('catalog entries with fields of the wrong type → IntegrityError, never a TypeError', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    let client = new Client({ path });
    await client.createIndex({ indexName: 'x', indexKey: key });
    await client.close();
    // Control: the same decode and re-pack with nothing changed still loads, so each failure below is the field's doing.
    const db0 = await rawStore(path);
    await db0.put(catalogKey('x'), pack(unpack((await db0.get(catalogKey('x')))!)));
    await db0.close();
    client = new Client({ path });
    await client.loadIndex({ indexName: 'x', indexKey: key });
    await client.close();
    for (const [field, value] of [['dekGeneration', 'x'], ['dekGeneration', 1.5], ['keyId', 5], ['indexId', 'nope'], ['salt', new Uint8Array(3)]] as const) {
      const db = await rawStore(path);
      const original = (await db.get(catalogKey('x')))!;
      await db.put(catalogKey('x'), pack({ ...(unpack(original) as object), [field]: value }));
      await db.close();
      client = new Client({ path });
      await rejectsWithCode(client.loadIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INTEGRITY');
      await client.close();
      const restore = await rawStore(path);
      await restore.put(catalogKey('x'), original);
      await restore.close();
    }
  });
});
