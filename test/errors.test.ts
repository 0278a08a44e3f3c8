import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Client, ClosedError, ValidationError, VecvaultError } from '../src/index.js';
import { openClient, openFresh } from './support/fixtures.js';
import { rejectsWithCode, tempStore } from './support/helpers.js';

describe('typed errors', () => {
  it('wrong key, missing index, existing name', async () => {
    const { path, key, client, index } = await openFresh({ indexName: 'x', dimension: 2 });
    await index.upsert({ ids: ['a'], vectors: [[1, 2]] });
    await client.close();
    const again = openClient(path);
    const err = await rejectsWithCode(again.loadIndex({ indexName: 'x', indexKey: Client.generateKey() }), 'VECVAULT_INVALID_KEY');
    expect(err.message).not.toContain(Buffer.from(key).toString('hex'));
    await rejectsWithCode(again.loadIndex({ indexName: 'nope', indexKey: key }), 'VECVAULT_INDEX_NOT_FOUND');
    await rejectsWithCode(again.createIndex({ indexName: 'x', indexKey: key }), 'VECVAULT_INDEX_EXISTS');
    // The failed attempts changed nothing.
    const loaded = await again.loadIndex({ indexName: 'x', indexKey: key });
    expect((await loaded.listIds()).ids).toEqual(['a']);
  });

  it('rejects every kind of bad input with ValidationError and writes nothing', async () => {
    const client = openClient();
    const key = Client.generateKey();
    const bad = (p: Promise<unknown>) => rejectsWithCode(p, 'VECVAULT_VALIDATION');
    await bad(client.createIndex({ indexName: 'k', indexKey: new Uint8Array(16) }));
    await bad(client.createIndex({ indexName: 'k', indexKey: 'secret' as unknown as Uint8Array }));
    await bad(client.createIndex({ indexName: 'k' }));
    await bad(client.createIndex({ indexName: '', indexKey: key }));
    await bad(client.createIndex({ indexName: 'k', indexKey: key, metric: 'manhattan' as never }));
    await bad(client.createIndex({ indexName: 'k', indexKey: key, dimension: 0 }));
    await bad(client.createIndex({ indexName: 'k', indexKey: key, indexConfig: { connectivity: -1 } }));
    await bad(client.createIndex({ indexName: 'k', indexKey: key, dimension: 4, storagePrecision: 'int8', metric: 'euclidean' }));
    await rejectsWithCode(client.createIndex({ indexName: 'k', indexKey: key, kmsName: 'aws' }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(client.createIndex({ indexName: 'k', kmsName: 'aws' }), 'VECVAULT_KMS'); // no such slot
    expect(await client.listIndexes()).toEqual([]);

    const index = await client.createIndex({ indexName: 'k', indexKey: key, dimension: 3, metric: 'cosine' });
    await index.upsert({ ids: ['keep'], vectors: [[1, 2, 3]] });
    const cases: [string, Promise<unknown>][] = [
      ['wrong dimension', index.upsert({ ids: ['a'], vectors: [[1, 2]] })],
      ['NaN', index.upsert({ ids: ['a'], vectors: [[1, Number.NaN, 3]] })],
      ['Infinity', index.upsert({ ids: ['a'], vectors: [[1, Infinity, 3]] })],
      ['float32 overflow', index.upsert({ ids: ['a'], vectors: [[1e39, 1, 1]] })],
      ['zero vector under cosine', index.upsert({ ids: ['a'], vectors: [[0, 0, 0]] })],
      ['empty id', index.upsert({ ids: [''], vectors: [[1, 2, 3]] })],
      ['non-string id', index.upsert({ ids: [7 as unknown as string], vectors: [[1, 2, 3]] })],
      [
        'duplicate ids',
        index.upsert({
          ids: ['a', 'a'],
          vectors: [
            [1, 2, 3],
            [1, 2, 3],
          ],
        }),
      ],
      ['length mismatch', index.upsert({ ids: ['a', 'b'], vectors: [[1, 2, 3]] })],
      ['metadata length mismatch', index.upsert({ ids: ['a'], vectors: [[1, 2, 3]], metadata: [] })],
      ['empty ids with vectors', index.upsert({ ids: [], vectors: [[1, 2, 3]] })],
      ['metadata with a function', index.upsert([{ id: 'a', vector: [1, 2, 3], metadata: { f: (() => 1) as never } }])],
      ['metadata __proto__ key', index.upsert([{ id: 'a', vector: [1, 2, 3], metadata: JSON.parse('{"__proto__": {"x": 1}}') }])],
      ['contents not string/bytes', index.upsert([{ id: 'a', vector: [1, 2, 3], contents: 5 as never }])],
      ['unknown include', index.query({ queryVectors: [1, 2, 3], include: ['secret' as never] })],
      ['topK 0', index.query({ queryVectors: [1, 2, 3], topK: 0 })],
      ['query wrong dimension', index.query({ queryVectors: [1, 2] })],
      ['query NaN', index.query({ queryVectors: [[1, 2, Number.NaN]] })],
      ['flat query not a multiple', index.query({ queryVectors: new Float32Array(4), dimension: 3 })],
      ['get unknown include', index.get({ ids: ['keep'], include: ['distance' as never] })],
      ['get bad ids', index.get({ ids: 'keep' as never })],
      ['delete empty id', index.delete({ ids: [''] })],
    ];
    for (const [name, call] of cases) {
      const err = await rejectsWithCode(call, 'VECVAULT_VALIDATION').catch((e: Error) => {
        throw new Error(`${name}: ${e.message}`);
      });
      expect(err, name).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).path, name).toBeTruthy();
    }
    expect((await index.listIds()).ids).toEqual(['keep']);
    expect(index.stats().commitCounter).toBe(1);
  });

  it('ids, names and strings with lone surrogates are rejected (they would collide once encoded)', async () => {
    const { client, index } = await openFresh({ indexName: 'x', dimension: 2 });
    await rejectsWithCode(index.upsert({ ids: ['doc-\uD83D'], vectors: [[1, 2]] }), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.upsert([{ id: 'ok', vector: [1, 2], metadata: { t: 'a\uDC00' } }]), 'VECVAULT_VALIDATION');
    await rejectsWithCode(index.upsert([{ id: 'ok', vector: [1, 2], contents: '\uD800' }]), 'VECVAULT_VALIDATION');
    await rejectsWithCode(client.createIndex({ indexName: 'n\uD800', indexKey: Client.generateKey() }), 'VECVAULT_VALIDATION');
    await index.upsert({ ids: ['doc-😀'], vectors: [[1, 2]] }); // well-formed astral characters are fine
    expect((await index.listIds()).ids).toEqual(['doc-😀']);
  });

  it('calls after close() or deleteIndex() fail with ClosedError (a ValidationError)', async () => {
    const client = new Client({ path: tempStore() });
    const key = Client.generateKey();
    const a = await client.createIndex({ indexName: 'a', indexKey: key, dimension: 2 });
    const b = await client.createIndex({ indexName: 'b', indexKey: key, dimension: 2 });
    await a.deleteIndex();
    for (const call of [() => a.upsert({ ids: ['x'], vectors: [[1, 2]] }), () => a.query({ queryVectors: [1, 2] }), () => a.listIds(), () => a.deleteIndex()]) {
      const err = await rejectsWithCode(call, 'VECVAULT_CLOSED');
      expect(err).toBeInstanceOf(ValidationError);
      expect(err).toBeInstanceOf(VecvaultError);
    }
    await client.close();
    await client.close(); // idempotent
    const err = await rejectsWithCode(() => b.get({ ids: ['x'] }), 'VECVAULT_CLOSED');
    expect(err).toBeInstanceOf(ClosedError);
    await rejectsWithCode(client.loadIndex({ indexName: 'b', indexKey: key }), 'VECVAULT_CLOSED');
    await rejectsWithCode(client.listIndexes(), 'VECVAULT_CLOSED');
  });

  it('a second process gets StoreLockedError while the first holds the store', async () => {
    const path = tempStore();
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/child-hold.ts', path], { stdio: ['pipe', 'pipe', 'inherit'] });
    const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
    expect(chunk.toString()).toContain('ready');
    const client = new Client({ path });
    await rejectsWithCode(client.listIndexes(), 'VECVAULT_STORE_LOCKED');
    child.stdin.end();
    await once(child, 'exit');
    // Released: now it opens.
    expect(await client.listIndexes()).toEqual([]);
    await client.close();
  });

  it('a second Client in the same process shares the store instead (issue 11; test/cyborgdb-compat.test.ts)', async () => {
    const path = tempStore();
    const first = new Client({ path });
    await first.listIndexes();
    const second = new Client({ path });
    expect(await second.listIndexes()).toEqual([]);
    await first.close();
    expect(await second.listIndexes()).toEqual([]);
    await second.close();
  });
});
