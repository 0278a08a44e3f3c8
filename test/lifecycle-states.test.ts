/**
 * Lifecycle trait matrix (in the style of abstract-level's tests): every
 * public operation × every state a handle can be in → the result it gives
 * today. Each cell is one named case on a fresh store, so a refactor that
 * changes any cell shows up by name.
 *
 * Index states:
 *   open      a loaded, usable index
 *   closing   `client.close()` has been called and not awaited; the operation is
 *             called in the same tick, right after it. Nothing is left to
 *             snapshot (the setup ends with `index.snapshot()`). A call that
 *             starts once close() began is refused (VECVAULT_CLOSED) whatever
 *             it is, reads included; calls started before close() finish
 *             first (review finding 7c, test/trust-defects.test.ts). At
 *             ad18a31 the outcome depended on the operation (writes and
 *             in-memory reads ran, record reads and pool queries were refused).
 *   closed    after `await client.close()`
 *   deleted   after `await index.deleteIndex()` (the Client stays open)
 *   broken    an engine failure after a commit: not reachable through the
 *             public API (see the it.todo below)
 *
 * Client states: open, closing, closed.
 *
 * Outcomes: 'ok' (and the value is checked), 'rejects CODE' (a rejected
 * promise), 'throws CODE' (a synchronous throw).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, type EncryptedIndex } from '../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const NAME = 'life';
const DIM = 4;
const SEED_ITEMS = [
  { id: 'a', vector: [1, 0, 0, 0], metadata: { g: 'x' }, contents: 'text a' },
  { id: 'b', vector: [0, 1, 0, 0], metadata: { g: 'y' }, contents: new Uint8Array([1, 2]) },
  { id: 'c', vector: [0, 0, 1, 0], metadata: { g: 'x' } },
];

interface Fixture {
  path: string;
  key: Uint8Array;
  client: Client;
  index: EncryptedIndex;
}

/** A store with one index holding SEED_ITEMS, snapshotted: nothing left for close() to write. */
async function openFixture(): Promise<Fixture> {
  const path = mkdtempSync(join(tmpdir(), 'vecvault-states-'));
  dirs.push(path);
  const key = Client.generateKey();
  const client = new Client({ path });
  const index = await client.createIndex({ indexName: NAME, indexKey: key, dimension: DIM });
  await index.upsert({ items: SEED_ITEMS });
  await index.snapshot();
  return { path, key, client, index };
}

type Outcome = { kind: 'ok'; value: unknown } | { kind: 'rejects' | 'throws'; code: string };

/** Calls `fn` at once (same tick) and records how it ended. */
async function outcome(fn: () => unknown): Promise<Outcome> {
  let pending: unknown;
  try {
    pending = fn();
  } catch (error) {
    return { kind: 'throws', code: codeOf(error) };
  }
  try {
    return { kind: 'ok', value: await pending };
  } catch (error) {
    return { kind: 'rejects', code: codeOf(error) };
  }
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : `no code: ${String(error)}`;
}

function label(o: Outcome): string {
  return o.kind === 'ok' ? 'ok' : `${o.kind} ${o.code}`;
}

/** Reopens the store (after the fixture's Client is closed) and lists what the index holds. */
async function persistedIds(fx: Fixture): Promise<string[] | 'not found'> {
  const client = new Client({ path: fx.path });
  try {
    if (!(await client.listIndexes()).includes(NAME)) return 'not found';
    const index = await client.loadIndex({ indexName: NAME, indexKey: fx.key });
    return (await index.listIds()).ids.sort();
  } finally {
    await client.close();
  }
}

// ------------------------------------------------------------------ index operations

type IndexState = 'open' | 'closing' | 'closed' | 'deleted';
const INDEX_STATES: IndexState[] = ['open', 'closing', 'closed', 'deleted'];

interface IndexOp {
  name: string;
  run: (index: EncryptedIndex) => unknown;
  /** Checks the value of an 'ok' outcome. */
  value?: (value: unknown) => void;
  /** The ids the store holds after a successful call (checked after reopening, for writes). */
  persisted?: string[] | 'not found';
  expected: Record<IndexState, string>;
}

const CLOSED = 'rejects VECVAULT_CLOSED';
const ALL_CLOSED = { closed: CLOSED, deleted: CLOSED };

const INDEX_OPS: IndexOp[] = [
  {
    name: 'upsert',
    run: (index) => index.upsert({ items: [{ id: 'new', vector: [0, 0, 0, 1] }] }),
    value: (v) => expect(v).toEqual({ status: 'success', upsertedCount: 1 }),
    persisted: ['a', 'b', 'c', 'new'],
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'delete',
    run: (index) => index.delete({ ids: ['a', 'missing'] }),
    value: (v) => expect(v).toEqual({ status: 'success', deletedCount: 1 }),
    persisted: ['b', 'c'],
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'query (unfiltered, one vector)',
    run: (index) => index.query({ queryVectors: [1, 0, 0, 0], topK: 2 }),
    value: (v) => expect(v).toEqual({ results: [{ id: 'a' }, expect.objectContaining({ id: expect.any(String) })] }),
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'query (filtered)',
    run: (index) => index.query({ queryVectors: [1, 0, 0, 0], topK: 5, filters: { g: 'x' } }),
    value: (v) => expect(v).toEqual({ results: [{ id: 'a' }, { id: 'c' }] }),
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'query (batch of one)',
    run: (index) => index.query({ queryVectors: [[1, 0, 0, 0]], topK: 1 }),
    value: (v) => expect(v).toEqual({ results: [[{ id: 'a' }]] }),
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'query (one vector, include contents)',
    run: (index) => index.query({ queryVectors: [1, 0, 0, 0], topK: 1, include: ['contents', 'distance'] }),
    value: (v) => expect(v).toEqual({ results: [{ id: 'a', distance: 0, contents: 'text a' }] }),
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'query (one vector, include metadata)',
    run: (index) => index.query({ queryVectors: [1, 0, 0, 0], topK: 1, include: ['metadata'] }),
    value: (v) => expect(v).toEqual({ results: [{ id: 'a', metadata: { g: 'x' } }] }),
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'get',
    run: (index) => index.get({ ids: ['b', 'missing'] }),
    value: (v) => expect(v).toEqual([{ id: 'b', vector: [0, 1, 0, 0], metadata: { g: 'y' }, contents: new Uint8Array([1, 2]) }, { id: 'missing' }]),
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'listIds',
    run: (index) => index.listIds(),
    value: (v) => expect({ ...(v as { ids: string[] }), ids: (v as { ids: string[] }).ids.sort() }).toEqual({ ids: ['a', 'b', 'c'], count: 3 }),
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'listIds (filtered)',
    run: (index) => index.listIds({ filters: { g: 'y' } }),
    value: (v) => expect(v).toEqual({ ids: ['b'], count: 1 }),
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'stats',
    run: (index) => index.stats(),
    value: (v) => expect(v).toMatchObject({ indexName: NAME, count: 3, dimension: DIM, metric: 'euclidean' }),
    expected: { open: 'ok', closing: 'throws VECVAULT_CLOSED', closed: 'throws VECVAULT_CLOSED', deleted: 'throws VECVAULT_CLOSED' },
  },
  {
    name: 'snapshot',
    run: (index) => index.snapshot(),
    value: (v) => expect(v).toBeUndefined(),
    persisted: ['a', 'b', 'c'],
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'compact',
    run: (index) => index.compact(),
    value: (v) => expect(v).toBeUndefined(),
    persisted: ['a', 'b', 'c'],
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'deleteIndex',
    run: (index) => index.deleteIndex(),
    value: (v) => expect(v).toBeUndefined(),
    persisted: 'not found',
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'train',
    run: (index) => index.train(),
    value: (v) => expect(v).toEqual({ status: 'success', message: expect.any(String) }),
    expected: { open: 'ok', closing: CLOSED, ...ALL_CLOSED },
  },
  {
    name: 'getIndexName',
    run: (index) => index.getIndexName(),
    value: (v) => expect(v).toBe(NAME),
    expected: { open: 'ok', closing: 'ok', closed: 'ok', deleted: 'ok' },
  },
  {
    name: 'getDimension',
    run: (index) => index.getDimension(),
    value: (v) => expect(v).toBe(DIM),
    expected: { open: 'ok', closing: 'ok', closed: 'ok', deleted: 'ok' },
  },
  {
    name: 'getMetric',
    run: (index) => index.getMetric(),
    value: (v) => expect(v).toBe('euclidean'),
    expected: { open: 'ok', closing: 'ok', closed: 'ok', deleted: 'ok' },
  },
  {
    name: 'isTrained',
    run: (index) => index.isTrained(),
    value: (v) => expect(v).toBe(false), // a small index is searched exactly (untrained); see test/cyborgdb-compat.test.ts
    expected: { open: 'ok', closing: 'ok', closed: 'ok', deleted: 'ok' },
  },
  {
    name: 'isTraining',
    run: (index) => index.isTraining(),
    value: (v) => expect(v).toBe(false),
    expected: { open: 'ok', closing: 'ok', closed: 'ok', deleted: 'ok' },
  },
  {
    name: 'getIndexType',
    run: (index) => index.getIndexType(),
    value: (v) => expect(v).toBe('hnsw'),
    expected: { open: 'ok', closing: 'ok', closed: 'ok', deleted: 'ok' },
  },
  {
    name: 'getIndexConfig',
    run: (index) => index.getIndexConfig(),
    value: (v) => expect(v).toMatchObject({ type: 'hnsw', connectivity: 16 }),
    expected: { open: 'ok', closing: 'ok', closed: 'ok', deleted: 'ok' },
  },
  {
    name: 'getEmbedding',
    run: (index) => index.getEmbedding(),
    value: (v) => expect(v).toBeNull(), // the fixture's index has no embedding (test/embedding.test.ts covers one that does)
    expected: { open: 'ok', closing: 'ok', closed: 'ok', deleted: 'ok' },
  },
  {
    name: 'getNLists',
    run: (index) => index.getNLists(),
    value: (v) => expect(v).toBeGreaterThanOrEqual(1),
    expected: { open: 'ok', closing: 'ok', closed: 'ok', deleted: 'ok' },
  },
];

const indexCells = INDEX_OPS.flatMap((op) => INDEX_STATES.map((state) => ({ op, state, expected: op.expected[state] })));

describe('index operation × state', () => {
  it.each(indexCells.map((c) => [`${c.op.name} when ${c.state} → ${c.expected}`, c] as const))('%s', async (_name, { op, state, expected }) => {
    const fx = await openFixture();
    let got: Outcome;
    if (state === 'closing') {
      const closing = fx.client.close();
      got = await outcome(() => op.run(fx.index)); // called in the same tick as close()
      await closing;
    } else {
      if (state === 'closed') await fx.client.close();
      if (state === 'deleted') await fx.index.deleteIndex();
      got = await outcome(() => op.run(fx.index));
    }
    expect(label(got)).toBe(expected);
    if (got.kind === 'ok') op.value?.(got.value);
    // A write acknowledged while closing must be durable: reopen and look.
    await fx.client.close();
    if (state === 'closing' && got.kind === 'ok' && op.persisted !== undefined) expect(await persistedIds(fx)).toEqual(op.persisted);
    if (state === 'closed') expect(await persistedIds(fx)).toEqual(['a', 'b', 'c']); // the refused call changed nothing
    if (state === 'deleted') expect(await persistedIds(fx)).toBe('not found');
  });

  it.todo(
    'broken (memory out of step with the store after an engine failure following a commit): every call → VECVAULT_INTEGRITY, loadIndex gives a fresh handle — not reachable through the public API, needs an engine fault seam',
  );
});

// ------------------------------------------------------------------ client operations

type ClientState = 'open' | 'closing' | 'closed';
const CLIENT_STATES: ClientState[] = ['open', 'closing', 'closed'];

interface ClientOp {
  name: string;
  run: (fx: Fixture) => unknown;
  value?: (value: unknown, fx: Fixture) => void;
  expected: Record<ClientState, string>;
}

const CLIENT_OPS: ClientOp[] = [
  {
    name: 'createIndex',
    run: (fx) => fx.client.createIndex({ indexName: 'other', indexKey: Client.generateKey(), dimension: 2 }),
    value: (v) => expect((v as EncryptedIndex).getIndexName()).toBe('other'),
    expected: { open: 'ok', closing: 'rejects VECVAULT_CLOSED', closed: 'rejects VECVAULT_CLOSED' },
  },
  {
    name: 'createIndex (name taken)',
    run: (fx) => fx.client.createIndex({ indexName: NAME, indexKey: fx.key }),
    expected: { open: 'rejects VECVAULT_INDEX_EXISTS', closing: 'rejects VECVAULT_CLOSED', closed: 'rejects VECVAULT_CLOSED' },
  },
  {
    name: 'loadIndex',
    run: (fx) => fx.client.loadIndex({ indexName: NAME, indexKey: fx.key }),
    // An index already open in this Client comes back as the same handle.
    value: (v, fx) => expect(v).toBe(fx.index),
    expected: { open: 'ok', closing: 'rejects VECVAULT_CLOSED', closed: 'rejects VECVAULT_CLOSED' },
  },
  {
    name: 'loadIndex (wrong key)',
    run: (fx) => fx.client.loadIndex({ indexName: NAME, indexKey: Client.generateKey() }),
    expected: { open: 'rejects VECVAULT_INVALID_KEY', closing: 'rejects VECVAULT_CLOSED', closed: 'rejects VECVAULT_CLOSED' },
  },
  {
    name: 'loadIndex (unknown name)',
    run: (fx) => fx.client.loadIndex({ indexName: 'nope', indexKey: fx.key }),
    expected: { open: 'rejects VECVAULT_INDEX_NOT_FOUND', closing: 'rejects VECVAULT_CLOSED', closed: 'rejects VECVAULT_CLOSED' },
  },
  {
    name: 'listIndexes',
    run: (fx) => fx.client.listIndexes(),
    value: (v) => expect(v).toEqual([NAME]),
    expected: { open: 'ok', closing: 'rejects VECVAULT_CLOSED', closed: 'rejects VECVAULT_CLOSED' },
  },
  {
    name: 'close',
    run: (fx) => fx.client.close(),
    value: (v) => expect(v).toBeUndefined(),
    expected: { open: 'ok', closing: 'ok', closed: 'ok' },
  },
];

const clientCells = CLIENT_OPS.flatMap((op) => CLIENT_STATES.map((state) => ({ op, state, expected: op.expected[state] })));

describe('client operation × state', () => {
  it.each(clientCells.map((c) => [`${c.op.name} when ${c.state} → ${c.expected}`, c] as const))('%s', async (_name, { op, state, expected }) => {
    const fx = await openFixture();
    let got: Outcome;
    if (state === 'closing') {
      const closing = fx.client.close();
      got = await outcome(() => op.run(fx));
      await closing;
    } else {
      if (state === 'closed') await fx.client.close();
      got = await outcome(() => op.run(fx));
    }
    expect(label(got)).toBe(expected);
    if (got.kind === 'ok') op.value?.(got.value, fx);
    await fx.client.close();
    expect(await persistedIds(fx)).toEqual(['a', 'b', 'c']);
  });

  it('close() is idempotent: every call resolves, before, during and after the close', async () => {
    const fx = await openFixture();
    const first = fx.client.close();
    const second = fx.client.close();
    await expect(first).resolves.toBeUndefined();
    await expect(second).resolves.toBeUndefined();
    await expect(fx.client.close()).resolves.toBeUndefined();
    expect(fx.index.getIndexName()).toBe(NAME);
    await expect(fx.index.listIds()).rejects.toMatchObject({ code: 'VECVAULT_CLOSED' });
  });
});

// ------------------------------------------------------------------ around a deleted index

describe('the Client after one of its indexes was deleted', () => {
  it('loadIndex → VECVAULT_INDEX_NOT_FOUND, listIndexes leaves it out, the name can be created again as a new, empty index', async () => {
    const fx = await openFixture();
    await fx.index.deleteIndex();
    await expect(fx.client.loadIndex({ indexName: NAME, indexKey: fx.key })).rejects.toMatchObject({ code: 'VECVAULT_INDEX_NOT_FOUND' });
    expect(await fx.client.listIndexes()).toEqual([]);
    const again = await fx.client.createIndex({ indexName: NAME, indexKey: fx.key, dimension: 2 });
    expect(again).not.toBe(fx.index);
    expect((await again.listIds()).count).toBe(0);
    expect(again.getDimension()).toBe(2);
    await expect(fx.index.listIds()).rejects.toMatchObject({ code: 'VECVAULT_CLOSED' }); // the old handle stays dead
    await fx.client.close();
  });

  it('a closed handle is not revived by loading the index again: loadIndex gives a new handle', async () => {
    const fx = await openFixture();
    await fx.client.close();
    const client = new Client({ path: fx.path });
    const index = await client.loadIndex({ indexName: NAME, indexKey: fx.key });
    expect(index).not.toBe(fx.index);
    expect((await index.listIds()).count).toBe(3);
    await expect(fx.index.listIds()).rejects.toMatchObject({ code: 'VECVAULT_CLOSED' });
    await client.close();
  });
});
