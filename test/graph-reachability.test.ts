/**
 * Records the graph cannot reach (issue 13, item 6): the native check finds
 * live nodes no search reaches, the repair relinks them, and opening an index
 * from a snapshot runs both. Orphans are made deterministically with the
 * engine's test hook (every link into a node removed, as usearch's slot reuse
 * and pruning can leave one); the negative controls show such a record is
 * not returned for its own exact vector while nothing repairs it.
 */
import { cpSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeEngine, type NativeAnnEngine } from '../src/engine/native.js';
import { Client } from '../src/index.js';
import type { EngineOptions } from '../src/engine/types.js';
import { openFresh, reopen } from './support/fixtures.js';
import { rejectsWithCode, tempStore } from './support/helpers.js';
import { makeUnsigned, manifestOf } from './support/unsigned.js';
import { randomFlat } from './support/vectors.js';

const DIM = 8;
const COUNT = 1200;
const OPTIONS: EngineOptions = { dimension: DIM, metric: 'l2sq', precision: 'f32', connectivity: 8, expansionAdd: 64, expansionSearch: 64 };
const EF_ALL = 2048; // more than the graph holds: the walk covers everything reachable

const keyOf = (i: number): bigint => BigInt(i) * 7919n + 11n;
const row = (values: Float32Array, i: number): Float32Array => values.subarray(i * DIM, (i + 1) * DIM);

/** Keys of rows whose own exact vector does not bring them back (k 10 at `EF_ALL`). */
async function unfound(engine: NativeAnnEngine, values: Float32Array, rows: number[]): Promise<bigint[]> {
  const queries = new Float32Array(rows.length * DIM);
  rows.forEach((r, i) => queries.set(row(values, r), i * DIM));
  const result = await engine.search(queries, 10, { expansionSearch: EF_ALL });
  return rows.flatMap((r, i) => (result.keys.subarray(i * 10, i * 10 + result.counts[i]!).includes(keyOf(r)) ? [] : [keyOf(r)]));
}

/** Cuts off the node of the first of `rows` that is not the entry point; returns its row. */
async function orphanOne(engine: NativeAnnEngine, rows: number[]): Promise<number> {
  for (const r of rows) {
    try {
      expect(await engine.unlinkForTesting(keyOf(r))).toBeGreaterThan(0);
      return r;
    } catch {
      // the entry point: try the next
    }
  }
  throw new Error('no row could be cut off');
}

const engines: NativeAnnEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

describe('graph reachability check and repair (engine)', () => {
  it('a repairing check right after one that left the graph whole does no walk; any change, or a plain check, walks again', async () => {
    const values = randomFlat(COUNT, DIM, 43);
    const engine = nativeEngine.create(OPTIONS);
    engines.push(engine);
    await engine.add(
      BigUint64Array.from({ length: COUNT }, (_, i) => keyOf(i)),
      values,
    );
    expect((await engine.checkGraph()).checks).toBeGreaterThan(0);
    expect(await engine.checkGraph()).toMatchObject({ checks: 0, unreachable: 0, live: COUNT });
    expect((await engine.checkGraph({ repair: false })).checks).toBeGreaterThan(0); // a plain check always walks
    // A change in between: the graph is walked again, and a cut-off node is found and relinked.
    const cut = await orphanOne(engine, [5, 6, 7]);
    const after = await engine.checkGraph();
    expect(after.checks).toBeGreaterThan(0);
    expect(after.unreachable).toBeGreaterThanOrEqual(1);
    expect(await unfound(engine, values, [cut])).toEqual([]);
    await engine.remove(BigUint64Array.of(keyOf(9)));
    expect((await engine.checkGraph()).checks).toBeGreaterThan(0);
  });

  it('finds a cut-off record that its own vector cannot find, and after the repair every live record is found', async () => {
    const values = randomFlat(COUNT, DIM, 41);
    const engine = nativeEngine.create(OPTIONS);
    engines.push(engine);
    await engine.add(
      BigUint64Array.from({ length: COUNT }, (_, i) => keyOf(i)),
      values,
    );
    const all = Array.from({ length: COUNT }, (_, i) => i);
    const before = await engine.checkGraph({ repair: false });
    expect(before.live).toBe(COUNT);

    const cut = await orphanOne(engine, [17, 18, 19]);
    // Negative control: no repair, so the record is stored (contains) but no search returns it.
    expect(engine.contains(keyOf(cut))).toBe(true);
    expect(await unfound(engine, values, [cut])).toEqual([keyOf(cut)]);

    const check = await engine.checkGraph({ repair: false });
    expect([...check.keys]).toContain(keyOf(cut));
    expect(check.unreachable).toBe(before.unreachable + check.keys.length - before.keys.length);
    expect(check.remaining).toBe(check.unreachable); // counting only: nothing changed
    // Ground truth agrees with the check: exactly the reported keys are unfindable.
    expect((await unfound(engine, values, all)).sort()).toEqual([...check.keys].sort());

    const repair = await engine.checkGraph();
    expect(repair.unreachable).toBe(check.unreachable);
    expect(repair.relinked).toBeGreaterThanOrEqual(1);
    expect(repair.remaining).toBe(0);
    expect(await unfound(engine, values, all)).toEqual([]);
    expect((await engine.checkGraph({ repair: false })).unreachable).toBe(0);
  });

  it('repairs after churn with slot reuse and keeps removed records out of results', async () => {
    const values = randomFlat(COUNT + 300, DIM, 43);
    const engine = nativeEngine.create(OPTIONS);
    engines.push(engine);
    await engine.add(
      BigUint64Array.from({ length: COUNT }, (_, i) => keyOf(i)),
      values.subarray(0, COUNT * DIM),
    );
    const removed = Array.from({ length: 300 }, (_, i) => i * 3);
    await engine.remove(BigUint64Array.from(removed, keyOf));
    await engine.add(
      BigUint64Array.from({ length: 300 }, (_, i) => keyOf(COUNT + i)),
      values.subarray(COUNT * DIM),
    ); // reuses the freed slots
    const gone = new Set(removed);
    const liveRows = Array.from({ length: COUNT + 300 }, (_, i) => i).filter((i) => !gone.has(i));
    await orphanOne(engine, [1, 2, 4]);
    await orphanOne(engine, [COUNT + 5, COUNT + 6, COUNT + 7]);
    expect((await unfound(engine, values, liveRows)).length).toBeGreaterThanOrEqual(2);
    const repair = await engine.checkGraph();
    expect(repair.live).toBe(COUNT);
    expect(repair.remaining).toBe(0);
    expect(await unfound(engine, values, liveRows)).toEqual([]);
    const hits = await engine.search(values.subarray(0, 50 * DIM), 10, { expansionSearch: EF_ALL });
    for (const key of hits.keys) expect(gone.has(Number((key - 11n) / 7919n))).toBe(false);
  });

  it('validates its options', async () => {
    const engine = nativeEngine.create(OPTIONS);
    engines.push(engine);
    await expect(engine.checkGraph({ maxRounds: -1 })).rejects.toMatchObject({ code: 'VECVAULT_VALIDATION' });
    await expect(engine.checkGraph({ repair: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'VECVAULT_VALIDATION' });
    expect(await engine.checkGraph()).toMatchObject({ unreachable: 0, relinked: 0, remaining: 0, live: 0 });
  });
});

describe('graph reachability on open (index)', () => {
  /**
   * Upserts, cuts one record's node off in the live engine, closes, reopens. With `writerChecks` false the
   * writer's engine offers no check, as before snapshots were checked, so the snapshot keeps the cut.
   */
  async function snapshotWithOrphan(disableCheck: boolean, writerChecks = false, beforeReopen?: (path: string, key: Uint8Array) => Promise<void>) {
    const vectors = Array.from({ length: 1000 }, (_, i) => Array.from(randomFlat(1, DIM, 1000 + i)));
    const created: NativeAnnEngine[] = [];
    const create = nativeEngine.create;
    const deserializeFrom = nativeEngine.deserializeFrom;
    nativeEngine.create = (options) => {
      const engine = create.call(nativeEngine, options);
      created.push(engine);
      return engine;
    };
    const restored = { walks: 0 }; // reachability checks the restored engine ran during the open
    nativeEngine.deserializeFrom = async (...args) => {
      const engine = await deserializeFrom.apply(nativeEngine, args);
      const check = engine.checkGraph.bind(engine);
      engine.checkGraph = (options) => (restored.walks++, check(options)); // shadows the method on this instance
      // The negative control: the restored engine offers no check, so nothing repairs the graph.
      if (disableCheck) (engine as { checkGraph?: unknown }).checkGraph = undefined;
      return engine;
    };
    try {
      const fresh = await openFresh({ indexName: 'g', metric: 'euclidean', indexConfig: { connectivity: 8, expansionAdd: 64 } });
      await fresh.index.upsert({ ids: vectors.map((_, i) => `v${i}`), vectors });
      const engine = created.at(-1)!;
      let cutId = '';
      for (const i of [10, 11, 12]) {
        const [key] = (await engine.search(Float32Array.from(vectors[i]!), 1, { expansionSearch: EF_ALL })).keys;
        try {
          await engine.unlinkForTesting(key!);
          cutId = `v${i}`;
          break;
        } catch {
          // the entry point: try the next
        }
      }
      expect(cutId).not.toBe('');
      if (!writerChecks) (engine as { checkGraph?: unknown }).checkGraph = undefined;
      await fresh.client.close();
      await beforeReopen?.(fresh.path, fresh.key);
      const opened = await reopen(fresh.path, fresh.key, 'g');
      const walks = restored.walks;
      await opened.index.train(); // queries walk the graph from now on (a small untrained index is answered by an exact scan)
      return { ...opened, vectors, cutId, walks };
    } finally {
      nativeEngine.create = create;
      nativeEngine.deserializeFrom = deserializeFrom;
    }
  }

  it('a snapshot checked whole before it was written says so in its manifest: an open that replays nothing skips its own walk', async () => {
    let flag: unknown;
    const { client, index, vectors, cutId, walks } = await snapshotWithOrphan(false, true, async (path, key) => {
      flag = (await manifestOf(path, key, 'g')).manifest.snapshot?.reachable;
    });
    try {
      expect(flag).toBe(true);
      expect(walks).toBe(0);
      expect(index.stats()).toMatchObject({ openedFrom: 'snapshot', graphCheck: null });
      expect(await ownHits(index, vectors[Number(cutId.slice(1))]!)).toContain(cutId); // relinked before the write
    } finally {
      await client.close();
    }
  });

  it('a snapshot written without the check carries no flag: the open walks and relinks its orphan', async () => {
    let flag: unknown = 'unread';
    const { client, index, vectors, cutId, walks } = await snapshotWithOrphan(false, false, async (path, key) => {
      flag = (await manifestOf(path, key, 'g')).manifest.snapshot?.reachable;
    });
    try {
      expect(flag).toBeUndefined();
      expect(walks).toBe(1);
      expect(index.stats().graphCheck).toMatchObject({ after: 'snapshot', remaining: 0 });
      expect(await ownHits(index, vectors[Number(cutId.slice(1))]!)).toContain(cutId);
    } finally {
      await client.close();
    }
  });

  it('the flag is authenticated with the manifest: a flipped byte or an unsigned re-seal of a signed manifest is an IntegrityError', async () => {
    let path = '';
    let key: Uint8Array = new Uint8Array();
    await snapshotWithOrphan(false, false, async (p, k) => {
      path = p;
      key = k;
    }).then(({ client }) => client.close());
    const { manifest, raw, put, seal } = await manifestOf(path, key, 'g');
    expect(raw[0]).toBe(2); // signed (per-user keys era): the flag sits under the signature
    const flipped = Buffer.from(raw);
    flipped[flipped.length - 20]! ^= 1;
    const refused = async () => {
      const client = new Client({ path });
      await rejectsWithCode(client.loadIndex({ indexName: 'g', indexKey: key }), 'VECVAULT_INTEGRITY');
      await client.close();
    };
    await put(flipped);
    await refused();
    // A holder of the keys who cannot sign (a read-only user has the manifest key) sets the flag: refused too.
    await put(seal({ ...manifest, snapshot: { ...manifest.snapshot!, reachable: true } }));
    await refused();
  });

  it('negative control: in an unsigned index, a key holder who sets the flag on a graph with an orphan only hides it from search (as any graph they write could); any other value walks', async () => {
    let forge: (value: unknown) => Promise<void> = async () => undefined;
    const setFlag = async (path: string, key: Uint8Array) => {
      await makeUnsigned(path, 'g', key);
      const { manifest, put, seal } = await manifestOf(path, key, 'g');
      forge = (value) => put(seal({ ...manifest, snapshot: { ...manifest.snapshot!, reachable: value as boolean } }));
      await forge(true);
    };
    const forged = await snapshotWithOrphan(false, false, setFlag);
    const { path, key } = forged;
    try {
      expect(forged.walks).toBe(0);
      expect(await ownHits(forged.index, forged.vectors[Number(forged.cutId.slice(1))]!)).not.toContain(forged.cutId);
      expect((await forged.index.get({ ids: [forged.cutId] })).map((r) => r.id)).toEqual([forged.cutId]); // stored, counted, readable
      expect(forged.index.stats().count).toBe(1000);
    } finally {
      await forged.client.close();
    }
    // Anything but `true` (here 1, as older or foreign writers might put) means: walk.
    await forge(1);
    const opened = await reopen(path, key, 'g');
    expect(opened.index.stats().graphCheck).toMatchObject({ after: 'snapshot', remaining: 0 });
    expect(opened.index.stats().graphCheck!.relinked).toBeGreaterThanOrEqual(1);
    await opened.client.close();
  });

  /** Opens a private copy of a golden fixture's cleanly closed `a-euclid-f32`. */
  async function openGolden(fixture: string) {
    const from = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', fixture);
    const path = tempStore();
    cpSync(join(from, 'store'), path, { recursive: true });
    const line = readFileSync(join(from, 'key.hex'), 'utf8')
      .trim()
      .split('\n')
      .find((l) => l.startsWith('a-euclid-f32 '))!;
    return reopen(path, Buffer.from(line.split(' ')[1]!, 'hex'), 'a-euclid-f32');
  }

  it.each(['golden-v1', 'golden-v4'])('an old store (%s: snapshots without the flag) still opens and still gets the walk', async (fixture) => {
    const opened = await openGolden(fixture);
    expect(opened.index.stats()).toMatchObject({ openedFrom: 'snapshot', changesSinceSnapshot: 0, graphCheck: { after: 'snapshot', remaining: 0 } });
    await opened.client.close();
  });

  it('golden-v5 (snapshots with the flag, written by 81c5893) opens without the walk', async () => {
    const opened = await openGolden('golden-v5');
    expect(opened.index.stats()).toMatchObject({ openedFrom: 'snapshot', changesSinceSnapshot: 0, graphCheck: null });
    await opened.client.close();
  });

  const ownHits = async (index: Awaited<ReturnType<typeof snapshotWithOrphan>>['index'], vector: number[]) =>
    ((await index.query({ queryVectors: vector, topK: 10, expansionSearch: EF_ALL })).results as { id: string }[]).map((r) => r.id);

  it('negative control: restored without the check, the cut-off record is stored but never returned', async () => {
    const { client, index, vectors, cutId } = await snapshotWithOrphan(true);
    try {
      expect(index.stats()).toMatchObject({ openedFrom: 'snapshot', graphCheck: null });
      expect((await index.get({ ids: [cutId] })).map((r) => r.id)).toEqual([cutId]);
      expect(await ownHits(index, vectors[Number(cutId.slice(1))]!)).not.toContain(cutId);
    } finally {
      await client.close();
    }
  });

  it('a snapshot is checked before it is written: the cut record is relinked at close, and found after a restore without the check', async () => {
    const { client, index, vectors, cutId } = await snapshotWithOrphan(true, true);
    try {
      expect(index.stats()).toMatchObject({ openedFrom: 'snapshot', graphCheck: null });
      expect(await ownHits(index, vectors[Number(cutId.slice(1))]!)).toContain(cutId);
    } finally {
      await client.close();
    }
  });

  it('the restore finds and relinks it: every record comes back for its own vector', async () => {
    const { client, index, vectors, cutId } = await snapshotWithOrphan(false);
    try {
      const { graphCheck } = index.stats();
      expect(graphCheck).toMatchObject({ after: 'snapshot', remaining: 0 });
      expect(graphCheck!.unreachable).toBeGreaterThanOrEqual(1);
      expect(graphCheck!.relinked).toBeGreaterThanOrEqual(1);
      expect(await ownHits(index, vectors[Number(cutId.slice(1))]!)).toContain(cutId);
      const results = (await index.query({ queryVectors: vectors, topK: 1, expansionSearch: EF_ALL })).results as { id: string }[][];
      expect(results.map((r) => r[0]?.id)).toEqual(vectors.map((_, i) => `v${i}`));
      await index.compact();
      expect(index.stats().graphCheck).toMatchObject({ after: 'compaction', remaining: 0 });
    } finally {
      await client.close();
    }
  });
});
