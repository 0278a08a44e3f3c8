/**
 * `vecvault/langchain`: VecvaultStore driven through @langchain/core's own
 * classes (VectorStore's inherited methods, VectorStoreRetriever,
 * SyntheticEmbeddings / FakeEmbeddings) on a real encrypted store.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Document } from '@langchain/core/documents';
import { Embeddings } from '@langchain/core/embeddings';
import { FakeEmbeddings, SyntheticEmbeddings } from '@langchain/core/utils/testing';
import { describe, expect, it } from 'vitest';
import { Client, type Metric } from '../src/index.js';
import { fromLangChainEmbeddings, VecvaultStore } from '../src/langchain/index.js';
import { openClient } from './support/fixtures.js';
import { filesUnder, rejectsWithCode, tempStore } from './support/helpers.js';
import { wordVector } from './support/word-embedding.js';

const NOTES = [
  { pageContent: 'quarterly budget review with the finance team', metadata: { folder: 'work', year: 2025 } },
  { pageContent: 'sprint planning for the search project', metadata: { folder: 'work', year: 2026 } },
  { pageContent: 'grandma birthday dinner on sunday', metadata: { folder: 'family', year: 2026 } },
  { pageContent: 'dentist appointment next tuesday', metadata: { folder: 'health', year: 2026 } },
  { pageContent: 'ideas for the garden in spring', metadata: { folder: 'home', year: 2025 } },
];

function store(metric?: Metric, embeddings: Embeddings = new SyntheticEmbeddings({ vectorSize: 8 })) {
  const client = openClient();
  const indexKey = Client.generateKey();
  return { client, indexKey, store: new VecvaultStore(embeddings, { client, indexName: 'notes', indexKey, ...(metric ? { metric } : {}) }) };
}

describe('VecvaultStore', () => {
  it('round-trips documents: Document.id honoured, UUIDs generated when absent, pageContent and metadata intact', async () => {
    const { store: s } = store();
    const docs = [new Document({ ...NOTES[0]!, id: 'budget' }), new Document(NOTES[1]!)];
    const ids = await s.addDocuments(docs);
    expect(ids[0]).toBe('budget');
    expect(ids[1]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const [found] = await s.similaritySearch(NOTES[1]!.pageContent, 1);
    expect(found).toEqual(new Document({ ...NOTES[1]!, id: ids[1] }));
    // options.ids wins over Document.id; the same id overwrites.
    await s.addDocuments([new Document({ pageContent: 'replaced', metadata: { folder: 'x' }, id: 'ignored' })], { ids: ['budget'] });
    const index = await s.index();
    expect((await index.get({ ids: ['budget'], include: ['contents', 'metadata'] }))[0]).toEqual({
      id: 'budget',
      contents: 'replaced',
      metadata: { folder: 'x' },
    });
    expect((await index.listIds()).count).toBe(2);
    expect(s._vectorstoreType()).toBe('vecvault');
  });

  it('asRetriever().invoke() answers with the nearest documents, and a filter in our Mongo-style language restricts them', async () => {
    const { store: s } = store();
    await s.addDocuments(NOTES.map((n, i) => new Document({ ...n, id: `n${i}` })));
    const top = await s.asRetriever(2).invoke('dentist appointment next tuesday');
    expect(top).toHaveLength(2);
    expect(top[0]!.id).toBe('n3');
    const work = await s.asRetriever({ k: 5, filter: { folder: 'work' } }).invoke('dentist appointment next tuesday');
    expect(work.map((d) => d.id).sort()).toEqual(['n0', 'n1']);
    const recentWork = await s.similaritySearch('anything', 5, { $and: [{ folder: 'work' }, { year: { $gte: 2026 } }] });
    expect(recentWork.map((d) => d.id)).toEqual(['n1']);
    await rejectsWithCode(s.similaritySearch('x', 1, { year: { $bogus: 1 } } as never), 'VECVAULT_VALIDATION');
  });

  it.each([
    ['cosine', (d: number) => 1 - d],
    ['ip', (d: number) => 1 - d],
    ['euclidean', (d: number) => 1 / (1 + d)],
    ['squared_euclidean', (d: number) => 1 / (1 + d)],
  ] as const)('%s: scores are similarities, higher = closer, from the distance as documented', async (metric, expected) => {
    const { store: s } = store(metric, new FakeEmbeddings());
    const vectors = [
      [1, 0, 0, 0],
      [0.8, 0.6, 0, 0],
      [0, 1, 0, 0],
      [-1, 0, 0, 0],
    ];
    await s.addVectors(
      vectors,
      vectors.map((_, i) => new Document({ pageContent: `v${i}`, metadata: {} })),
      { ids: ['a', 'b', 'c', 'd'] },
    );
    const scored = await s.similaritySearchVectorWithScore([1, 0, 0, 0], 4);
    expect(scored.map(([doc]) => doc.id)).toEqual(['a', 'b', 'c', 'd']);
    const scores = scored.map(([, score]) => score);
    for (let i = 1; i < scores.length; i++) expect(scores[i]).toBeLessThan(scores[i - 1]!);
    const { results } = await (await s.index()).query({ queryVectors: [1, 0, 0, 0], topK: 4, include: ['distance'] });
    results.forEach((r, i) => expect(scores[i]).toBeCloseTo(expected(r.distance!), 6));
    if (metric === 'cosine' || metric.includes('euclidean')) expect(scores[0]).toBeCloseTo(1, 6); // an exact match
    if (metric === 'cosine') expect(scores[3]).toBeCloseTo(-1, 6); // the opposite direction
  });

  it('maxMarginalRelevanceSearch picks diverse results where plain similarity returns near-duplicates', async () => {
    // FakeEmbeddings embeds every query as q = [0.1, 0.2, 0.3, 0.4]. Around its direction: three near-copies of `a`
    // (cosine 0.87 to q), then `b` (0.77 to q, 0.34 to a) and `c` (0.71 to q, at most 0.61 to a or b).
    const q = [0.1, 0.2, 0.3, 0.4];
    const [qHat, u, w] = orthonormal([q, [1, 0, 0, 0], [0, 1, 0, 0]]) as [number[], number[], number[]];
    const mix = (angle: number, other: number[], sign = 1) => qHat.map((x, i) => Math.cos(angle) * x + sign * Math.sin(angle) * other[i]!);
    const a = mix(Math.PI / 6, u);
    const vectors = [
      a,
      a.map((x, i) => x + (i === 0 ? 1e-3 : 0)),
      a.map((x, i) => x + (i === 1 ? 1e-3 : 0)),
      mix((2 * Math.PI) / 9, u, -1),
      mix(Math.PI / 4, w),
    ];
    const { store: s } = store('cosine', new FakeEmbeddings());
    await s.addVectors(
      vectors,
      vectors.map((_, i) => new Document({ pageContent: `doc ${i}`, metadata: { i } })),
      { ids: ['dup0', 'dup1', 'dup2', 'other1', 'other2'] },
    );
    const similar = await s.similaritySearch('anything', 3);
    expect(similar.map((d) => d.id).sort()).toEqual(['dup0', 'dup1', 'dup2']);
    const diverse = await s.maxMarginalRelevanceSearch('anything', { k: 3, fetchK: 5, lambda: 0.5 }, undefined);
    const ids = diverse.map((d) => d.id!);
    expect(ids).toHaveLength(3);
    expect(ids.filter((id) => id.startsWith('dup'))).toHaveLength(1);
    expect(ids.sort()).toEqual([expect.stringMatching(/^dup/), 'other1', 'other2']);
    // Through the inherited retriever, and with a filter.
    const viaRetriever = await s.asRetriever({ k: 2, searchType: 'mmr', searchKwargs: { fetchK: 5, lambda: 0.5 } }).invoke('anything');
    expect(viaRetriever.map((d) => d.id).filter((id) => id!.startsWith('dup'))).toHaveLength(1);
    const filtered = await s.maxMarginalRelevanceSearch('anything', { k: 3, filter: { i: { $gte: 3 } } }, undefined);
    expect(filtered.map((d) => d.id).sort()).toEqual(['other1', 'other2']);
  });

  it('delete({ ids }) removes documents from every search', async () => {
    const { store: s } = store();
    const ids = await s.addDocuments(NOTES.map((n) => new Document(n)));
    await s.delete({ ids: [ids[3]!, 'not-there'] });
    const all = await s.similaritySearch(NOTES[3]!.pageContent, 10);
    expect(all).toHaveLength(4);
    expect(all.map((d) => d.id)).not.toContain(ids[3]);
    await rejectsWithCode(s.delete({} as never), 'VECVAULT_VALIDATION');
  });

  it('fromTexts (metadata per text or one for all) and fromDocuments create the index; an empty store answers []', async () => {
    const client = openClient();
    const indexKey = Client.generateKey();
    const embeddings = new SyntheticEmbeddings({ vectorSize: 8 });
    const empty = new VecvaultStore(embeddings, { client, indexName: 'empty', indexKey });
    expect(await empty.similaritySearch('x', 3)).toEqual([]);
    const perText = await VecvaultStore.fromTexts(['alpha text', 'beta text'], [{ n: 1 }, { n: 2 }], embeddings, { client, indexName: 'a', indexKey });
    expect((await perText.similaritySearch('beta text', 1))[0]!.metadata).toEqual({ n: 2 });
    const shared = await VecvaultStore.fromTexts(['gamma text', 'delta text'], { source: 'same' }, embeddings, { client, indexName: 'b', indexKey });
    expect((await shared.similaritySearch('gamma text', 2)).map((d) => d.metadata)).toEqual([{ source: 'same' }, { source: 'same' }]);
    const fromDocs = await VecvaultStore.fromDocuments([new Document({ pageContent: 'eps', metadata: {}, id: 'e' })], embeddings, {
      client,
      indexName: 'c',
      indexKey,
    });
    expect((await fromDocs.similaritySearch('eps', 1))[0]!.id).toBe('e');
    expect((await fromDocs.index()).getMetric()).toBe('cosine'); // the store's default
    expect((await client.listIndexes()).sort()).toEqual(['a', 'b', 'c', 'empty']);
  });

  it('fromExistingIndex opens the index in another process after a reopen, and refuses a missing index or a wrong key', async () => {
    const path = tempStore();
    const indexKey = Client.generateKey();
    const embeddings = new SyntheticEmbeddings({ vectorSize: 8 });
    const client = new Client({ path });
    await VecvaultStore.fromDocuments(
      NOTES.map((n, i) => new Document({ ...n, id: `n${i}` })),
      embeddings,
      { client, indexName: 'notes', indexKey },
    );
    await client.close();
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', 'test/support/child-langchain.ts', path, 'notes', Buffer.from(indexKey).toString('hex'), NOTES[1]!.pageContent],
      { encoding: 'utf8' },
    );
    const { retrieved, scored } = JSON.parse(out.trim().split('\n').at(-1)!) as {
      retrieved: { id: string; pageContent: string; metadata: object }[];
      scored: { id: string; score: number }[];
    };
    expect(retrieved).toEqual([{ id: 'n1', pageContent: NOTES[1]!.pageContent, metadata: NOTES[1]!.metadata }]);
    expect(scored[0]!.id).toBe('n1');
    expect(scored[0]!.score).toBeCloseTo(1, 5);

    const again = openClient(path);
    await rejectsWithCode(VecvaultStore.fromExistingIndex(embeddings, { client: again, indexName: 'nope', indexKey }), 'VECVAULT_INDEX_NOT_FOUND');
    await rejectsWithCode(
      VecvaultStore.fromExistingIndex(embeddings, { client: again, indexName: 'notes', indexKey: Client.generateKey() }),
      'VECVAULT_INVALID_KEY',
    );
    expect(await again.listIndexes()).toEqual(['notes']); // nothing created by the failed calls
    const reopened = await VecvaultStore.fromExistingIndex(embeddings, { client: again, indexName: 'notes', indexKey });
    expect((await reopened.similaritySearch(NOTES[4]!.pageContent, 1))[0]!.id).toBe('n4');
  });

  it('keeps pageContent, metadata, ids and vectors encrypted on disk (leakage scan with a negative control)', async () => {
    const path = tempStore();
    const marker = `LC${Date.now().toString(36)}Z`;
    const vector = new Array<number>(8).fill(1234.56787109375);
    const vectorBytes = Buffer.from(Float32Array.from(vector).buffer).subarray(0, 16);
    const client = new Client({ path });
    const s = new VecvaultStore(new SyntheticEmbeddings({ vectorSize: 8 }), {
      client,
      indexName: 'secret-notes',
      indexKey: Client.generateKey(),
      metric: 'euclidean',
    });
    const docs = Array.from(
      { length: 50 },
      (_, i) => new Document({ pageContent: `${marker} page ${i}`, metadata: { note: `${marker}-meta-${i}` }, id: `${marker}-id-${i}` }),
    );
    await s.addDocuments(docs);
    await s.addVectors([vector], [new Document({ pageContent: `${marker} planted vector`, metadata: {} })]);
    expect((await s.similaritySearch(`${marker} page 7`, 1))[0]!.pageContent).toContain(marker); // the plaintext is there to read with the key
    await (await s.index()).snapshot(); // the graph too
    await client.close();

    const needles = [Buffer.from(marker), Buffer.from(marker, 'utf16le'), vectorBytes];
    const leaks = () => filesUnder(path).filter((file) => needles.some((needle) => readFileSync(file).includes(needle)));
    expect(filesUnder(path).length).toBeGreaterThan(3);
    expect(leaks()).toEqual([]);
    // Negative control: the same scan finds the marker once a plaintext copy exists in the store directory.
    const plain = join(path, 'plaintext-control.json');
    writeFileSync(plain, JSON.stringify(docs.slice(0, 2)));
    expect(leaks()).toEqual([plain]);
  });

  it('keeps the key out of LangChain kwargs and holds no copy of it once the index is open', async () => {
    const { store: s, indexKey } = store();
    const hex = Buffer.from(indexKey).toString('hex');
    expect(JSON.stringify(s.lc_kwargs)).not.toContain(hex);
    expect(JSON.stringify(s.toJSON())).not.toContain(hex);
    expect(Object.values(s.lc_kwargs)).not.toContain(indexKey);
    await s.addDocuments([new Document({ pageContent: 'x y z', metadata: {} })]);
    expect(indexKey.some((b) => b !== 0)).toBe(true); // the caller's key is the caller's: not wiped
  });

  it('embeddingName records the model in the index, so the core API embeds text and another model is refused', async () => {
    const embeddings = new SyntheticEmbeddings({ vectorSize: 8 });
    const path = tempStore();
    const client = openClient(path);
    const indexKey = Client.generateKey();
    const s = await VecvaultStore.fromTexts(['alpha one', 'beta two'], {}, embeddings, { client, indexName: 'named', indexKey, embeddingName: 'synthetic-8' });
    const index = await s.index();
    expect(index.getEmbedding()).toEqual({ name: 'synthetic-8', dimension: 8, attached: true });
    expect((await index.query({ queryContents: 'beta two', topK: 1, include: ['contents'] })).results[0]!.contents).toBe('beta two');
    await index.upsert([{ id: 'core', contents: 'gamma three' }]);
    expect((await s.similaritySearch('gamma three', 1))[0]!.id).toBe('core');
    await client.close();
    const wrong = new VecvaultStore(embeddings, { client: openClient(path), indexName: 'named', indexKey, embeddingName: 'other-model' });
    await rejectsWithCode(wrong.similaritySearch('x', 1), 'VECVAULT_VALIDATION');
  });

  it('fromLangChainEmbeddings adapts an Embeddings object in one line: embedDocuments for upserts, embedQuery for queries', async () => {
    const calls: string[] = [];
    class Words extends Embeddings {
      async embedDocuments(texts: string[]) {
        calls.push(`documents:${texts.length}`);
        return texts.map((t) => wordVector(t, 16));
      }
      async embedQuery(text: string) {
        calls.push('query');
        return wordVector(text, 16);
      }
    }
    const client = openClient();
    const index = await client.createIndex({
      indexName: 'w',
      indexKey: Client.generateKey(),
      metric: 'cosine',
      embedding: fromLangChainEmbeddings('words', new Words({})),
    });
    await index.upsert(NOTES.map((n, i) => ({ id: `n${i}`, contents: n.pageContent, metadata: n.metadata })));
    const { results } = await index.query({ queryContents: 'budget review', topK: 1 });
    expect(results[0]!.id).toBe('n0');
    expect(calls).toEqual(['documents:5', 'query']);
  });
});

/** Gram-Schmidt: unit vectors spanning the same space as `rows`, in order. */
function orthonormal(rows: number[][]): number[][] {
  const out: number[][] = [];
  for (const row of rows) {
    let v = [...row];
    for (const e of out) {
      const dot = v.reduce((sum, x, i) => sum + x * e[i]!, 0);
      v = v.map((x, i) => x - dot * e[i]!);
    }
    const norm = Math.hypot(...v);
    out.push(v.map((x) => x / norm));
  }
  return out;
}
