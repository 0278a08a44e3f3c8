/**
 * index.verify() and recoverIndex(): verify authenticates every value of an
 * index and reports (never throws) what fails; recover copies what still
 * authenticates into a new store, reports what it could not, and never writes
 * to the damaged store. Tampering goes through raw LevelDB on a closed store.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client, recoverIndex } from '../src/index.js';
import { openFresh, reopen } from './support/fixtures.js';
import { rawStore, tempStore } from './support/helpers.js';
import { rowVector } from './support/child-writer.js';

/** Every file under `dir` with its bytes' hash and mtime: a store that recover must leave exactly as it was. */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out[p] = `${createHash('sha256').update(readFileSync(p)).digest('hex')} ${st.mtimeMs} ${st.mode}`;
    }
  };
  walk(dir);
  return out;
}

const RECORD = 0x52;
const CHANGELOG = 0x4c;
const SNAPSHOT = 0x53;

/** Keys of one kind ('R' records, 'L' change log, 'S' snapshot chunks) in a raw store. */
async function rawKeys(path: string, kind: number): Promise<Uint8Array[]> {
  const db = await rawStore(path);
  const keys: Uint8Array[] = [];
  for await (const key of db.keys()) if (key[0] === 0x49 && key[17] === kind) keys.push(key);
  await db.close();
  return keys;
}

/** Flips one bit of the stored value under `key` (a closed store). */
async function flipValue(path: string, key: Uint8Array, at = 20): Promise<void> {
  const db = await rawStore(path);
  const value = Buffer.from((await db.get(key))!);
  value[at]! ^= 0x01;
  await db.put(key, value);
  await db.close();
}

async function fillIndex(n = 60) {
  const fresh = await openFresh({ dimension: 8 });
  const items = Array.from({ length: n }, (_, row) => ({ id: `r${row}`, vector: rowVector(row), metadata: { row }, contents: `text ${row}` }));
  await fresh.index.upsert({ items: items.slice(0, n / 2) });
  await fresh.index.upsert({ items: items.slice(n / 2) });
  return fresh;
}

describe('index.verify()', () => {
  it('a sound index: ok, every value counted, progress reaches the total', async () => {
    const { index, client, path, key } = await fillIndex();
    await index.delete({ ids: ['r0'] });
    const progress: { done: number; total: number }[] = [];
    const report = await index.verify({ onProgress: (p) => progress.push(p) });
    expect(report).toEqual({ ok: true, checked: { catalog: 1, manifest: 1, head: 1, records: 59, changeLog: 3, snapshotChunks: 0 }, problems: [] });
    expect(progress.at(-1)).toEqual({ done: progress.at(-1)!.total, total: progress.at(-1)!.total });
    await client.close();
    // After a close (snapshot) and a write after it: the snapshot's chunks and the change log are checked too.
    const again = await reopen(path, key);
    await again.index.upsert({ items: [{ id: 'late', vector: rowVector(99) }] });
    const second = await again.index.verify();
    expect(second.ok).toBe(true);
    expect(second.checked.records).toBe(60);
    expect(second.checked.changeLog).toBe(1);
    expect(second.checked.snapshotChunks).toBeGreaterThanOrEqual(2);
  });

  it('queries run while verify reads', async () => {
    const { index } = await fillIndex();
    const verifying = index.verify();
    const { results } = await index.query({ queryVectors: rowVector(3), topK: 1 });
    expect(results[0]!.id).toBe('r3');
    expect((await verifying).ok).toBe(true);
  });

  it('a tampered record is reported as record and digest problems, with no ids or plaintext in the details; the index still opens from its snapshot', async () => {
    const { client, path, key } = await fillIndex();
    await client.close();
    await flipValue(path, (await rawKeys(path, RECORD))[5]!);
    const { index } = await reopen(path, key);
    const report = await index.verify();
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.kind)).toEqual(['record', 'digest']);
    expect(report.checked.records).toBe(59);
    const text = JSON.stringify(report.problems);
    expect(text).not.toMatch(/\br\d+\b|text /);
  });

  it('a tampered change-log entry and snapshot chunk are reported as such', async () => {
    const path = tempStore();
    const key = Client.generateKey();
    execFileSync(process.execPath, ['--import', 'tsx', 'test/support/child-writer.ts', path, 'test', Buffer.from(key).toString('hex'), '3', '10']);
    await flipValue(path, (await rawKeys(path, CHANGELOG))[1]!);
    const opened = await reopen(path, key); // no snapshot: rebuilt from the records, the change log is not read
    const report = await opened.index.verify();
    expect(report.problems).toEqual([{ kind: 'changelog', detail: expect.stringContaining('1 change-log entry does not authenticate') }]);
    expect(report.checked.changeLog).toBe(2);
    await opened.client.close(); // snapshots
    await flipValue(path, (await rawKeys(path, SNAPSHOT))[0]!);
    const again = await reopen(path, key); // the snapshot fails: rebuilt from the records (VECVAULT_SNAPSHOT_REBUILD)
    const second = await again.index.verify();
    expect(second.problems.map((p) => p.kind)).toEqual(['snapshot']);
    expect(second.checked.records).toBe(30);
  });

  it('rejects a non-function onProgress', async () => {
    const { index } = await openFresh({ dimension: 3 });
    await expect(index.verify({ onProgress: 5 as never })).rejects.toMatchObject({ code: 'VECVAULT_VALIDATION' });
  });
});

describe('recoverIndex()', () => {
  it('a tampered record: everything else is copied under the same key, the loss is counted, ids only on request', async () => {
    const { client, path, key } = await fillIndex();
    await client.close();
    const records = await rawKeys(path, RECORD);
    await flipValue(path, records[10]!);
    const before = fingerprint(path);
    const to = join(tempStore(), 'recovered');
    const report = await recoverIndex({ path, to, indexName: 'test', indexKey: key });
    expect(report).toMatchObject({ recovered: 59, unreadable: 1, expected: 60, missing: 1, lostIds: 1, manifestReadable: true, digestMatched: false });
    expect(report.ids).toBeUndefined();
    expect(fingerprint(path)).toEqual(before);
    const withIds = await recoverIndex({ path, to: join(tempStore(), 'again'), indexName: 'test', indexKey: key, includeIds: true });
    expect(withIds.ids).toHaveLength(1);
    const lost = withIds.ids![0]!;
    const { index } = await reopen(to, key);
    expect((await index.listIds()).count).toBe(59);
    expect((await index.verify()).ok).toBe(true);
    const [gone, kept] = await index.get({ ids: [lost, lost === 'r1' ? 'r2' : 'r1'], include: ['vector', 'metadata', 'contents'] });
    expect(gone).toEqual({ id: lost });
    expect(kept!.metadata).toBeDefined();
    expect(kept!.contents).toMatch(/^text /);
  });

  it('a manifest that no longer authenticates: the metric must be given, the dimension comes from the records, nothing counts as expected', async () => {
    const { client, path, key } = await fillIndex(10);
    await client.close();
    const manifestKey = (await rawKeys(path, 0x4d))[0]!;
    await flipValue(path, manifestKey, 30);
    const to = join(tempStore(), 'r');
    await expect(recoverIndex({ path, to, indexName: 'test', indexKey: key })).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    const report = await recoverIndex({ path, to, indexName: 'test', indexKey: key, metric: 'euclidean' });
    expect(report).toMatchObject({ recovered: 10, unreadable: 0, expected: null, missing: null, manifestReadable: false, digestMatched: false });
    const { index } = await reopen(to, key);
    expect(index.getDimension()).toBe(8);
    expect((await index.query({ queryVectors: rowVector(4), topK: 1 })).results[0]!.id).toBe('r4');
  });

  it('refuses a wrong key, a missing index, and a target that is not empty or lies inside the store', async () => {
    const { client, path, key } = await fillIndex(4);
    await client.close();
    const to = join(tempStore(), 'x');
    await expect(recoverIndex({ path, to, indexName: 'test', indexKey: Client.generateKey() })).rejects.toMatchObject({ code: 'VECVAULT_INVALID_KEY' });
    await expect(recoverIndex({ path, to, indexName: 'nope', indexKey: key })).rejects.toMatchObject({ code: 'VECVAULT_INDEX_NOT_FOUND' });
    await expect(recoverIndex({ path, to: join(path, 'inside'), indexName: 'test', indexKey: key })).rejects.toMatchObject({ code: 'VECVAULT_VALIDATION' });
    const full = tempStore();
    writeFileSync(join(full, 'f'), 'x');
    await expect(recoverIndex({ path, to: full, indexName: 'test', indexKey: key })).rejects.toMatchObject({ code: 'VECVAULT_VALIDATION' });
  });

  it("one flipped byte in LevelDB's log: the index no longer opens, recover gets back every record that authenticates and leaves the store untouched", async () => {
    const path = tempStore();
    const key = Client.generateKey();
    const hex = Buffer.from(key).toString('hex');
    execFileSync(process.execPath, ['--import', 'tsx', 'test/support/child-writer.ts', path, 'test', hex, '24', '40']);
    const logs = readdirSync(join(path, 'store')).filter((f) => f.endsWith('.log'));
    expect(logs).toHaveLength(1);
    const log = join(path, 'store', logs[0]!);
    const bytes = readFileSync(log);
    expect(bytes.byteLength).toBeGreaterThan(4 * 32768); // several 32 KiB log blocks: commits after the damaged one survive
    bytes[Math.floor(bytes.byteLength * 0.4)]! ^= 0x10;
    writeFileSync(log, bytes);
    const before = fingerprint(path);
    const to = join(tempStore(), 'recovered');
    const report = await recoverIndex({ path, to, indexName: 'test', indexKey: key, includeIds: true });
    expect(fingerprint(path)).toEqual(before); // not a byte, mode or mtime changed: only a copy was opened

    const client = new Client({ path });
    await expect(client.loadIndex({ indexName: 'test', indexKey: key })).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    await client.close();
    // What authenticates: every record LevelDB still holds (a log checksum drops whole records, it never alters one).
    const survivors = (await rawKeys(path, RECORD)).length;
    expect(survivors).toBeGreaterThan(0);
    expect(survivors).toBeLessThan(24 * 40);
    expect(report.recovered).toBe(survivors);
    expect(report.unreadable).toBe(0);
    expect(report.recovered + (report.missing ?? 0)).toBe(report.expected);
    expect(report.expected).toBe(24 * 40); // the newest manifest survived: it counts what was lost
    // The lost commits' change-log entries went with their records (one batch), so no id can be named.
    expect(report.lostIds).toBe(0);
    expect(report.ids).toEqual([]);
    expect(report.digestMatched).toBe(false);

    const { index } = await reopen(to, key);
    const { ids } = await index.listIds();
    expect(ids).toHaveLength(survivors);
    // Commits after the damaged log block come back too, with their values intact.
    expect(ids).toContain(`r${24 * 40 - 1}`);
    const rows = ids.slice(0, 50).map((id) => Number(id.slice(1)));
    const got = await index.get({ ids: ids.slice(0, 50), include: ['vector', 'metadata', 'contents'] });
    got.forEach((r, i) => {
      expect(r.metadata).toMatchObject({ row: rows[i] });
      expect(r.contents).toBe(`text of r${rows[i]}`);
      r.vector!.forEach((v, j) => expect(v).toBeCloseTo(rowVector(rows[i]!)[j]!, 6));
    });
    expect((await index.verify()).ok).toBe(true);
  });
});
