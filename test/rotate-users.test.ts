/**
 * Key rotation meets per-user keys and signed commits: `rotateKey` keeps the
 * index signed and every user working (their material does not depend on the
 * root key); `rotateDataKey` re-seals a signed index under a new generation
 * that stays signed (writer tags, the signing seed under the new admin key),
 * refuses an index that has users (their entries are bound to the index id a
 * data-key rotation changes) and refuses user handles.
 */
import { describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';
import { openClient, openFresh } from './support/fixtures.js';
import { rejectsWithCode } from './support/helpers.js';

const items = [
  { id: 'a', vector: [1, 0, 0], metadata: { team: 'red' } },
  { id: 'b', vector: [0, 1, 0], metadata: { team: 'blue' } },
];

describe('rotation of a signed index with users', () => {
  it('rotateKey: the root opens with the new key only; readers and writers keep their keys and permissions', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'n', dimension: 3 });
    await index.upsert({ items });
    const reader = await index.createUserKey({ userId: 'r', permissions: ['read'] });
    const writer = await index.createUserKey({ userId: 'w', permissions: ['read', 'write'] });
    const newKey = Client.generateKey();
    await index.rotateKey({ indexKey: newKey });
    await client.close();

    const again = openClient(path);
    await rejectsWithCode(again.loadIndex({ indexName: 'n', indexKey: key }), 'VECVAULT_INVALID_KEY');
    const root = await again.loadIndex({ indexName: 'n', indexKey: newKey });
    expect((await root.listUsers()).map((u) => u.userId).sort()).toEqual(['r', 'w']);
    const asWriter = await again.loadIndex({ indexName: 'n', indexKey: writer, userId: 'w' });
    await asWriter.upsert({ items: [{ id: 'c', vector: [0, 0, 1] }] });
    const asReader = await again.loadIndex({ indexName: 'n', indexKey: reader, userId: 'r' });
    expect((await asReader.listIds()).ids.sort()).toEqual(['a', 'b', 'c']);
    await rejectsWithCode(asReader.upsert({ items: [{ id: 'd', vector: [1, 1, 0] }] }), 'VECVAULT_PERMISSION');
    await rejectsWithCode(asWriter.rotateKey({ indexKey: Client.generateKey() }), 'VECVAULT_PERMISSION');
    expect((await root.verify()).ok).toBe(true);
  });

  it('rotateDataKey: a signed index stays signed and verifiable under the new generation; with users it is NOT_SUPPORTED, nothing changed', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'n', dimension: 3 });
    await index.upsert({ items });
    const before = index.stats();
    await index.rotateDataKey();
    expect(index.stats().count).toBe(before.count);
    await client.close();

    const again = openClient(path);
    const root = await again.loadIndex({ indexName: 'n', indexKey: key });
    expect((await root.verify()).ok).toBe(true);
    await root.upsert({ items: [{ id: 'c', vector: [0, 0, 1] }] }); // signs and tags with the new generation's keys
    // Users can be created on the rotated index; then a data-key rotation is refused and changes nothing.
    const readerKey = await root.createUserKey({ userId: 'r', permissions: ['read'] });
    const counter = root.stats().commitCounter;
    await rejectsWithCode(root.rotateDataKey(), 'VECVAULT_NOT_SUPPORTED');
    expect(root.stats().commitCounter).toBe(counter);
    const asReader = await again.loadIndex({ indexName: 'n', indexKey: readerKey, userId: 'r' });
    expect((await asReader.listIds()).ids.sort()).toEqual(['a', 'b', 'c']);
    await rejectsWithCode(asReader.rotateDataKey(), 'VECVAULT_PERMISSION');
    await again.close();

    const third = openClient(path);
    expect((await (await third.loadIndex({ indexName: 'n', indexKey: key })).verify()).ok).toBe(true);
  });
});
