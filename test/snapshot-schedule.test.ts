/** When background snapshots happen: after writes pause, not between the calls of a bulk import; at once past a large backlog. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { openFresh, reopen } from './support/fixtures.js';
import { randomVectors } from './support/vectors.js';

const generation = (index: { stats(): { snapshotGeneration: number } }) => index.stats().snapshotGeneration;

/** Waits (up to 5 s) until a background snapshot past generation `from` has finished. */
async function settle(index: { stats(): { snapshotGeneration: number; changesSinceSnapshot: number } }, from: number): Promise<void> {
  for (let i = 0; i < 100 && (generation(index) === from || index.stats().changesSinceSnapshot > 0); i++) await sleep(50);
}

it('a due snapshot waits for writes to pause, then is taken; a backlog of 100k changes is taken at once', async () => {
  const { index } = await openFresh({ indexName: 'b', dimension: 4 });
  const vectors = randomVectors(12_000, 4, 5);
  const ids = vectors.map((_, i) => `v${i}`);
  // 12k changes ≥ the 10k threshold: due, but deferred while writes keep coming.
  await index.upsert({ ids, vectors });
  expect(generation(index)).toBe(0);
  await index.upsert({ ids: ['x'], vectors: [[1, 2, 3, 4]] }); // a write right after: still no snapshot in between
  expect(generation(index)).toBe(0);
  expect(index.stats().changesSinceSnapshot).toBe(12_001);
  await settle(index, 0); // writes paused: it is taken
  expect(generation(index)).toBe(1);
  expect(index.stats().changesSinceSnapshot).toBe(0);

  // A backlog of 100k changes (more than half the index): queued right behind the write.
  const more = randomVectors(100_000, 4, 6);
  await index.upsert({ ids: more.map((_, i) => `w${i}`), vectors: more });
  await index.upsert({ ids: ['y'], vectors: [[4, 3, 2, 1]] }); // runs after the queued snapshot
  expect(generation(index)).toBe(2);
});

it('a call that outlasts the idle timer does not let a snapshot in between the calls of an import', async () => {
  const { index } = await openFresh({ indexName: 'slow', dimension: 4 });
  const first = randomVectors(12_000, 4, 7);
  await index.upsert({ ids: first.map((_, i) => `a${i}`), vectors: first }); // due: the idle timer is armed
  const second = randomVectors(2_000, 4, 8);
  // The timer (250 ms) expires while this call is still queued and running: it must wait for the queue, not
  // queue a snapshot behind the call (a bulk import in calls of 10,000 took five snapshots that way).
  const busyUntil = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  await index.upsert({ ids: second.map((_, i) => `b${i}`), vectors: second, onProgress: () => busyUntil(400) });
  await index.upsert({ ids: ['z'], vectors: [[1, 1, 1, 1]] });
  expect(generation(index)).toBe(0);
  expect(index.stats().changesSinceSnapshot).toBe(14_001);
  await settle(index, 0);
  expect(generation(index)).toBe(1);
});

it('close() after a snapshot with nothing changed since still compacts its range: the older generations leave the files', async () => {
  const vectors = randomVectors(6_000, 64, 9);
  const ids = vectors.map((_, i) => `v${i}`);
  const storeBytes = (path: string) =>
    readdirSync(path, { recursive: true, encoding: 'utf8' })
      .map((name) => statSync(join(path, name)))
      .reduce((sum, stat) => sum + (stat.isFile() ? stat.size : 0), 0);
  // Three generations written, the last by an explicit snapshot() right before close() (as after an idle snapshot).
  const build = async (explicit: boolean) => {
    const { path, client, index } = await openFresh({ indexName: 'g', dimension: 64 });
    await index.upsert({ ids, vectors });
    await index.snapshot();
    await index.upsert({ ids: ['x'], vectors: [vectors[0]!] });
    await index.snapshot();
    await index.upsert({ ids: ['y'], vectors: [vectors[1]!] });
    if (explicit) await index.snapshot();
    expect(index.stats().snapshotGeneration).toBe(explicit ? 3 : 2);
    await client.close();
    return storeBytes(path);
  };
  const closedWithSnapshot = await build(false); // close() writes the third generation and compacts
  const closedAfterSnapshot = await build(true);
  // Control (measured): without the compaction at close, the second store held the dropped generations' chunks in
  // LevelDB's log: 10.3 MB against 5.0.
  expect(closedAfterSnapshot).toBeLessThan(closedWithSnapshot * 1.2);
});

it('snapshot() with nothing changed since the committed snapshot writes none; after a change it does', async () => {
  const { path, key, client, index } = await openFresh({ indexName: 'same', dimension: 4 });
  const vectors = randomVectors(2_000, 4, 11);
  await index.upsert({ ids: vectors.map((_, i) => `v${i}`), vectors });
  await index.snapshot();
  expect(generation(index)).toBe(1);
  // A bulk import's last call queues the backlog's snapshot; the caller's snapshot() right after found nothing new
  // and used to write the whole graph a second time (200k × 96: ~1.2 s and its transient memory).
  await index.snapshot();
  expect(generation(index)).toBe(1);
  await index.upsert({ ids: ['x'], vectors: [[1, 2, 3, 4]] });
  await index.snapshot();
  expect(generation(index)).toBe(2);
  await index.delete({ ids: ['x'] });
  await client.close(); // writes generation 3 (one change)
  const reopened = await reopen(path, key, 'same');
  expect(generation(reopened.index)).toBe(3);
  await reopened.index.snapshot(); // opened from a snapshot that covers every commit
  expect(generation(reopened.index)).toBe(3);
  expect((await reopened.index.listIds()).count).toBe(2_000);
  await reopened.client.close();
});
