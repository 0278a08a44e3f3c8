/**
 * Child process for test/langchain.test.ts: opens an existing index through
 * `VecvaultStore.fromExistingIndex` in a fresh process and prints, as one JSON
 * line, what a filtered retriever and a scored search return.
 * Usage: child-langchain.ts <store dir> <index name> <key hex> <query>
 */
import { SyntheticEmbeddings } from '@langchain/core/utils/testing';
import { Client } from '../../src/index.js';
import { VecvaultStore } from '../../src/langchain/index.js';

const [path, indexName, keyHex, query] = process.argv.slice(2) as [string, string, string, string];
const client = new Client({ path });
try {
  const store = await VecvaultStore.fromExistingIndex(new SyntheticEmbeddings({ vectorSize: 8 }), { client, indexName, indexKey: Buffer.from(keyHex, 'hex') });
  const retrieved = await store.asRetriever({ k: 1, filter: { folder: 'work' } }).invoke(query);
  const scored = await store.similaritySearchWithScore(query, 1);
  console.log(JSON.stringify({ retrieved, scored: scored.map(([doc, score]) => ({ id: doc.id, score })) }));
} finally {
  await client.close();
}
