/**
 * Run in a separate process: loads an index with the given key and prints
 * query and get answers as JSON, proving persistence across processes.
 * argv: storePath indexName keyHex queriesJson idsJson
 */
import { Client } from '../../src/index.js';

const [path, indexName, keyHex, queriesJson, idsJson] = process.argv.slice(2) as [string, string, string, string, string];
const client = new Client({ path });
const index = await client.loadIndex({ indexName, indexKey: Buffer.from(keyHex, 'hex') });
const queries = JSON.parse(queriesJson) as number[][];
const query = await index.query({ queryVectors: queries, topK: 10, include: ['distance', 'metadata', 'contents'] });
const got = await index.get({ ids: JSON.parse(idsJson) as string[] });
const encode = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? { bytes: Buffer.from(v).toString('hex') } : v)));
process.stdout.write(JSON.stringify({ query: encode(query), get: encode(got), ids: (await index.listIds()).ids.sort() }));
await client.close();
