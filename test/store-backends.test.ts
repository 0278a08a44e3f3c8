/**
 * The acceptance behaviours of a store, run against both backends from one
 * suite: LevelDB (a directory) and PostgreSQL (a throwaway cluster, a fresh
 * schema per test). Round trip through a new Client, overwrite and delete,
 * filters, tampering with stored rows (with an untouched control), a writer
 * killed mid-stream, a wrong key. PostgreSQL runs when its server binaries are found (always in CI).
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Metadata } from '../src/index.js';
import { levelBackend, postgresBackend, recordRows, type Backend } from './support/backends.js';
import { rejectsWithCode } from './support/helpers.js';
import { PgCluster, skipPostgres } from './support/postgres.js';
import { randomVectors } from './support/vectors.js';

const pgSkip = skipPostgres();
let cluster: PgCluster | undefined;
beforeAll(async () => {
  if (!pgSkip) cluster = await PgCluster.start();
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});
if (pgSkip) console.warn(`store-backends: the PostgreSQL half is skipped: ${pgSkip}`);

const backends: { name: string; make: () => Backend; skip: boolean }[] = [
  { name: 'leveldb', make: levelBackend, skip: false },
  { name: 'postgres', make: () => postgresBackend(cluster!), skip: pgSkip !== false },
];

function items(n: number, dim: number, seed: number) {
  return randomVectors(n, dim, seed).map((vector, i) => ({
    id: `doc-${i}`,
    vector,
    metadata: { n: i, tag: i % 3 === 0 ? 'fizz' : 'buzz', nested: { even: i % 2 === 0 } } as Metadata,
    contents: i % 2 === 0 ? `text of ${i}` : new Uint8Array([i & 255, 7]),
  }));
}

/** Loads `name` in a new Client and reads every record of ids `doc-0…doc-(n-1)`. */
async function loadAndReadAll(backend: Backend, key: Uint8Array, n: number, tag: string, name = 'docs') {
  const client = backend.client(tag);
  try {
    const index = await client.loadIndex({ indexName: name, indexKey: key });
    return await index.get({ ids: Array.from({ length: n }, (_, i) => `doc-${i}`) });
  } finally {
    await client.close();
  }
}

async function populated(backend: Backend, n = 40) {
  const key = Client.generateKey();
  const client = backend.client('writer');
  const index = await client.createIndex({ indexName: 'docs', indexKey: key, dimension: 6 });
  await index.upsert({ items: items(n, 6, 3) });
  await client.close();
  return key;
}

describe.each(backends)('store behaviours: $name', ({ make, skip }) => {
  it.skipIf(skip)('round-trips records through close and a new Client (query, get, listIds)', async () => {
    const backend = make();
    const key = Client.generateKey();
    const data = items(300, 8, 7);
    const a = backend.client('a');
    const index = await a.createIndex({ indexName: 'docs', indexKey: key, metric: 'cosine' });
    await index.upsert({ items: data.slice(0, 150) });
    await index.upsert({ items: data.slice(150) });
    const queries = randomVectors(4, 8, 99);
    const before = await index.query({ queryVectors: queries, topK: 7, include: ['distance', 'metadata', 'contents'] });
    const got = await index.get({ ids: ['doc-3', 'missing', 'doc-4'] });
    await a.close();
    const b = backend.client('b');
    const again = await b.loadIndex({ indexName: 'docs', indexKey: key });
    expect(await again.query({ queryVectors: queries, topK: 7, include: ['distance', 'metadata', 'contents'] })).toEqual(before);
    expect(await again.get({ ids: ['doc-3', 'missing', 'doc-4'] })).toEqual(got);
    expect((await again.listIds()).count).toBe(300);
    expect(await b.listIndexes()).toEqual(['docs']);
  });

  it.skipIf(skip)('same-id upsert overwrites; deleted ids never come back, before and after reopening', async () => {
    const backend = make();
    const key = Client.generateKey();
    const a = backend.client('a');
    const index = await a.createIndex({ indexName: 'o', indexKey: key, dimension: 3 });
    await index.upsert({
      ids: ['a', 'b', 'c'],
      vectors: [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
      metadata: [{ v: 1 }, { v: 1 }, { v: 1 }],
    });
    await index.upsert({ ids: ['a'], vectors: [[0, 0, 5]], metadata: [{ v: 2 }] });
    expect(await index.delete({ ids: ['b', 'zzz', 'b'] })).toEqual({ status: 'success', deletedCount: 1 });
    const check = async (ix: typeof index) => {
      expect(await ix.get({ ids: ['a', 'b'] })).toEqual([{ id: 'a', vector: [0, 0, 5], metadata: { v: 2 } }, { id: 'b' }]);
      expect((await ix.listIds()).ids.sort()).toEqual(['a', 'c']);
      expect((await ix.query({ queryVectors: [0, 1, 0], topK: 10 })).results.map((r) => r.id).sort()).toEqual(['a', 'c']);
    };
    await check(index);
    await a.close();
    const b = backend.client('b');
    await check(await b.loadIndex({ indexName: 'o', indexKey: key }));
  });

  it.skipIf(skip)('filters select the same records before and after reopening', async () => {
    const backend = make();
    const key = await populated(backend, 60);
    const client = backend.client('reader');
    const index = await client.loadIndex({ indexName: 'docs', indexKey: key });
    const fizz = (await index.listIds({ filters: { tag: 'fizz' } })).ids.sort();
    expect(fizz).toEqual(Array.from({ length: 20 }, (_, i) => `doc-${i * 3}`).sort());
    const { results } = await index.query({ queryVectors: randomVectors(1, 6, 5)[0]!, topK: 100, filters: { 'nested.even': true, n: { $lt: 10 } } });
    expect(results.map((r) => r.id).sort()).toEqual(['doc-0', 'doc-2', 'doc-4', 'doc-6', 'doc-8']);
  });

  it.skipIf(skip)('a flipped byte, a swap of two records, or a deleted record in the stored rows → IntegrityError; untouched rows load (control)', async () => {
    const backend = make();
    const key = await populated(backend, 40);
    expect(await loadAndReadAll(backend, key, 40, 'control')).toHaveLength(40);
    const tamper = async (fn: (raw: Awaited<ReturnType<Backend['raw']>>, rows: { key: Buffer; value: Buffer }[]) => Promise<void>) => {
      const raw = await backend.raw();
      const rows = recordRows(await raw.entries());
      await fn(raw, rows);
      await raw.close();
      return rows;
    };
    // Flip one byte of one record's ciphertext.
    const [victim] = await tamper(async (raw, [row]) => {
      const value = Buffer.from(row!.value);
      value[30]! ^= 1;
      await raw.put(row!.key, value);
    });
    await rejectsWithCode(loadAndReadAll(backend, key, 40, 'flip'), 'VECVAULT_INTEGRITY');
    await tamper(async (raw) => raw.put(victim!.key, victim!.value)); // restored: loads again
    expect(await loadAndReadAll(backend, key, 40, 'restored')).toHaveLength(40);
    // Swap two records.
    const rows = await tamper(async (raw, [a, b]) => {
      await raw.put(a!.key, b!.value);
      await raw.put(b!.key, a!.value);
    });
    await rejectsWithCode(loadAndReadAll(backend, key, 40, 'swap'), 'VECVAULT_INTEGRITY');
    await tamper(async (raw) => {
      await raw.put(rows[0]!.key, rows[0]!.value);
      await raw.put(rows[1]!.key, rows[1]!.value);
    });
    // Delete one record.
    await tamper(async (raw, [row]) => raw.del(row!.key));
    await rejectsWithCode(loadAndReadAll(backend, key, 40, 'deleted'), 'VECVAULT_INTEGRITY');
  });

  it.skipIf(skip)(
    'a writer killed with SIGKILL mid-stream: every acknowledged write is there and the index opens whole',
    async () => {
      const backend = make();
      const key = await populated(backend, 5); // closed: LevelDB's lock is free for the child
      const proc = spawn(
        process.execPath,
        ['--import', 'tsx', 'test/support/child-backend.ts', JSON.stringify(backend.options('doomed')), Buffer.from(key).toString('hex'), 'k'],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      const acks: string[] = [];
      let buffer = '';
      await new Promise<void>((resolve) => {
        proc.stdout.on('data', (chunk: Buffer) => {
          buffer += chunk.toString('utf8');
          const lines = buffer.split('\n');
          buffer = lines.pop()!;
          for (const line of lines) acks.push((JSON.parse(line) as { ack: string }).ack);
          if (acks.length >= 12) resolve();
        });
      });
      proc.kill('SIGKILL');
      await new Promise((r) => proc.on('exit', r));
      const client = backend.client('after-crash');
      const index = await client.loadIndex({ indexName: 'docs', indexKey: key });
      const ids = new Set((await index.listIds()).ids);
      for (const id of acks) expect(ids.has(id)).toBe(true);
      expect(ids.size - 5 - acks.length).toBeLessThanOrEqual(1); // at most the write in flight, committed but not acknowledged
      expect((await index.get({ ids: [acks[3]!], include: ['contents'] }))[0]!.contents).toBe('text 3');
    },
    60_000,
  );

  it.skipIf(skip)('a wrong key is VECVAULT_INVALID_KEY and reads nothing', async () => {
    const backend = make();
    await populated(backend, 5);
    const client = backend.client('wrong');
    await rejectsWithCode(client.loadIndex({ indexName: 'docs', indexKey: Client.generateKey() }), 'VECVAULT_INVALID_KEY');
  });
});
