/**
 * The live table keeps record ids as UTF-8 bytes (issue 13: 1M id strings
 * made every full GC trace ~40 MiB). Checked here: hashing and comparing
 * strings against bytes agree with doing it on the strings (any Unicode,
 * empty, astral, byte-confusable ids); the table matches a Map through random
 * writes and restores from its own snapshot bytes; a snapshot written from the
 * bytes is byte-identical to the one the string encoder writes; stored
 * lengths that do not match their bytes are refused; a store with such ids
 * reopens and answers by id.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashId, hashIdBytes, idEqualsBytes, idOffsets, utf16Length } from '../src/core/id-bytes.js';
import { LiveRecords } from '../src/core/live-records.js';
import { LiveTable } from '../src/core/live-table.js';
import { encodeIdList, splitIdList } from '../src/storage/sealed.js';
import { idBytesOf } from './support/helpers.js';
import { decodeTableSliced, encodeTable } from '../src/storage/snapshot.js';
import { openFresh, reopen } from './support/fixtures.js';

const utf8 = (s: string) => Buffer.from(s, 'utf8');
/** Pairs whose bytes or UTF-16 units look alike: 'Ã©' has the code units of 'é''s UTF-8 bytes. */
const CONFUSABLE = ['é', 'Ã©', '', 'e\u0301', '😀', '\uD83D\uDE00x', 'a\u0000b', '\u0080', '\u00C2\u0080', '\uFFFD', 'doc-1', 'doc-10'];
const anyId = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 6 }), // any code point, astral included (well-formed)
  fc.string({ maxLength: 6 }),
  fc.constantFrom(...CONFUSABLE),
  fc.nat(30).map((n) => `id${n}`),
);

describe('ids as UTF-8 bytes', () => {
  it('hash, compare and length of the bytes agree with the strings', () => {
    fc.assert(
      fc.property(anyId, anyId, (a, b) => {
        const bytes = Buffer.concat([Buffer.from([0xff]), utf8(a), Buffer.from([0x41])]); // at an offset, between other bytes
        const to = bytes.byteLength - 1;
        expect(hashIdBytes(bytes, 1, to)).toBe(hashId(a));
        expect(utf16Length(bytes, 1, to)).toBe(a.length);
        expect(idEqualsBytes(a, bytes, 1, to)).toBe(true);
        expect(idEqualsBytes(b, bytes, 1, to)).toBe(a === b);
      }),
      { numRuns: 2_000 },
    );
    for (const a of CONFUSABLE) for (const b of CONFUSABLE) expect(idEqualsBytes(a, utf8(b), 0, utf8(b).byteLength)).toBe(a === b);
  });

  it('agrees with a Map on random writes over any Unicode ids, and after restores from its own snapshot bytes (byte-identical to encodeIdList)', async () => {
    const op = fc.oneof(
      { weight: 6, arbitrary: fc.tuple(fc.constant('set' as const), anyId) },
      { weight: 3, arbitrary: fc.tuple(fc.constant('remove' as const), anyId) },
      { weight: 1, arbitrary: fc.tuple(fc.constant('restore' as const), anyId) },
      { weight: 1, arbitrary: fc.tuple(fc.constant('squeeze' as const), anyId) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 400 }), async (ops) => {
        let table = new LiveTable({ syncRebuildRows: 0 });
        const model = new Map<string, { key: number; seq: number }>();
        let counter = 0;
        for (const [kind, id] of ops) {
          if (kind === 'set') {
            const entry = { key: ++counter * 7, seq: counter };
            expect(table.set(id, entry.key, entry.seq)).toBe(model.get(id)?.key ?? -1);
            model.set(id, entry);
          } else if (kind === 'remove') {
            expect(table.remove(id)).toEqual(model.get(id));
            model.delete(id);
          } else if (kind === 'squeeze') {
            table = await table.squeezed(async () => undefined, 7, { syncRebuildRows: 0 });
          } else {
            const columns = await table.liveColumns(async () => undefined, 5);
            const stored = encodeIdList([...model.keys()]);
            expect(Buffer.concat([Buffer.from(columns.ids.lengths.buffer), columns.ids.utf8]).equals(stored)).toBe(true);
            table = await LiveTable.restore(splitIdList(stored, model.size), columns.keys, columns.seqs, async () => undefined, 3, { syncRebuildRows: 0 });
            if (id.length % 2 === 0) table.indexIdsSlice(2); // part-indexed: the next lookup finishes it
          }
          const row = table.rowOfId(id);
          expect(row >= 0 ? [table.idAt(row), table.keyAt(row), table.seqAt(row)] : undefined).toEqual(
            model.has(id) ? [id, model.get(id)!.key, model.get(id)!.seq] : undefined,
          );
        }
        expect(table.size).toBe(model.size);
        expect([...table.liveRows()].map((row) => table.idAt(row))).toEqual([...model.keys()]);
        for (const [id, { key }] of model) expect(table.idOf(key)).toBe(id);
      }),
      { numRuns: 150 },
    );
  });

  it('reserve grows the id bytes ahead of a batch, a slice at a time, so the batch does not grow them', async () => {
    const table = new LiveTable();
    for (let i = 0; i < 10_000; i++) table.set(`doc-${i}`, i, i);
    let yields = 0;
    await table.reserve(50_000, async () => void yields++, 1_000);
    expect(yields).toBe(6 + 9); // one per new column and the arena, then one between each of the 10 slices
    const arena = table.arenaCapacity;
    expect(arena).toBeGreaterThanOrEqual(60_000 * 8);
    for (let i = 10_000; i < 60_000; i++) table.set(`doc-${i}`, i, i);
    expect(table.arenaCapacity).toBe(arena);
    expect(table.idOf(12_345)).toBe('doc-12345');
    expect(table.rowOfId('doc-59999')).toBe(59_999);
  });

  it("a snapshot table written from the live table's bytes is byte-identical to the string encoder's, and restores", async () => {
    const live = new LiveRecords();
    const ids = Array.from({ length: 6_000 }, (_, i) =>
      i % 5 === 0 ? `😀-${i}` : i % 3 === 0 ? `naïve-文書-${i}` : i % 7 === 0 ? '' + 'x'.repeat(i % 50) + i : `d${i}`,
    );
    ids.forEach((id, i) => live.set(id, 10 * i, i + 1, i % 4 === 0 ? { n: i } : undefined));
    for (let i = 0; i < ids.length; i += 3) live.remove(ids[i]!); // removed rows: the bytes are gathered, not a view
    const columns = await live.liveColumns(1_000, async () => undefined);
    const kept = ids.filter((_, i) => i % 3 !== 0);
    const metadata = kept.map((_, j) => (live.filterIndex().get(columns.keys[j]!) ?? null) as unknown);
    const base = { counter: 3, count: kept.length, digest: new Uint8Array(32).fill(1), keys: columns.keys, seqs: columns.seqs, metadata };
    const fromBytes = await encodeTable({ ...base, ids: columns.ids });
    const fromStrings = await encodeTable({ ...base, ids: kept });
    expect(fromBytes.equals(fromStrings)).toBe(true);
    const reopened = new LiveRecords();
    await reopened.restore(await decodeTableSliced(fromBytes));
    expect([...reopened.byId.keys()]).toEqual(kept);
    for (const [j, id] of kept.entries()) expect(reopened.get(id)).toEqual({ key: columns.keys[j], seq: columns.seqs[j] });
    expect(reopened.get(ids[0]!)).toBeUndefined();
  });

  it('stored lengths that do not match their bytes are refused (ASCII and not), as an IntegrityError at restore', async () => {
    const none = async () => undefined;
    const check = (ids: string[], lengths: number[], bytes: Uint8Array = utf8(ids.join(''))) => idOffsets(Uint32Array.from(lengths), bytes, none);
    await expect(check(['ab', 'c'], [2, 1])).resolves.toEqual({ offsets: Uint32Array.from([0, 2, 3]), ascii: true });
    await expect(check(['é', '😀x'], [1, 3])).resolves.toEqual({ offsets: Uint32Array.from([0, 2, 7]), ascii: false });
    await expect(check(['ab', 'c'], [2, 2])).rejects.toThrow(/do not match/);
    await expect(check(['ab', 'c'], [1, 1])).rejects.toThrow(/do not match/);
    await expect(check(['😀'], [1])).rejects.toThrow(/split a character/); // half an astral character
    await expect(check(['é'], [1], Buffer.from([0xc3, 0x41]))).rejects.toThrow(/do not match/); // not UTF-8
    await expect(check(['é'], [2], Buffer.from([0x80, 0x41]))).rejects.toThrow(/do not match/); // a stray continuation byte
    const table = splitIdList(encodeIdList(['a', 'b']), 2);
    table.lengths[0] = 2;
    await expect(
      new LiveRecords().restore({
        counter: 1,
        count: 2,
        digest: new Uint8Array(32),
        ids: table,
        keys: Float64Array.of(1, 2),
        seqs: Float64Array.of(1, 1),
        metadataFrames: [],
      }),
    ).rejects.toMatchObject({ code: 'VECVAULT_INTEGRITY' });
    await expect(
      new LiveRecords().restore({
        counter: 1,
        count: 2,
        digest: new Uint8Array(32),
        ids: idBytesOf(['a', 'b']),
        keys: Float64Array.of(1, 2),
        seqs: Float64Array.of(1, 1),
        metadataFrames: [],
      }),
    ).resolves.toBeUndefined();
  });

  it('a store with non-ASCII, astral and confusable ids reopens from its snapshot and answers by id, query and listIds', async () => {
    const ids = ['é', 'Ã©', 'doc-😀', '文書', 'plain', 'e\u0301'];
    const vectors = ids.map((_, i) => [Math.cos(i), Math.sin(i), 1]);
    const first = await openFresh({ dimension: 3 });
    await first.index.upsert({ ids, vectors });
    await first.index.delete({ ids: ['plain'] });
    await first.client.close();
    const { client, index } = await reopen(first.path, first.key);
    const kept = ids.filter((id) => id !== 'plain');
    expect((await index.listIds()).ids).toEqual(kept);
    const got = await index.get({ ids: [...kept, 'plain'], include: ['vector'] });
    expect(got.map((r) => r.vector !== undefined)).toEqual([...kept.map(() => true), false]);
    const { results } = await index.query({ queryVectors: [vectors[1]!], topK: 1 });
    expect(results[0]!.map((h) => h.id)).toEqual(['Ã©']);
    await index.upsert({ ids: ['é'], vectors: [[0, 0, 1]] }); // an overwrite after the restore
    await client.close();
    const again = await reopen(first.path, first.key);
    expect((await again.index.listIds()).ids).toEqual(kept);
    expect((await again.index.get({ ids: ['é'] }))[0]!.vector).toEqual([0, 0, 1]);
  });
});
