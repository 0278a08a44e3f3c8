/**
 * Run in a separate process against a shared PostgreSQL store:
 *   writer <url> <schema> <keyHex> <prefix> <n>   upserts <prefix>0…<prefix>(n-1) one call each, and
 *                                                 overwrites 'shared'; prints `{"ack":id,"t":ms}` per acknowledged write, then closes
 *   reader <url> <schema> <keyHex>                polls with eventual queries until stdin ends; prints when it first saw each id,
 *                                                 then the ids of a strong listIds
 *   late   <url> <schema> <keyHex>                opens the index and prints how it opened and its ids
 */
import { Client } from '../../src/index.js';

const [role, url, schema, keyHex, prefix, n] = process.argv.slice(2) as [string, string, string, string, string, string];
const client = new Client({ store: { kind: 'postgres', connectionString: url, schema } });
const index = await client.loadIndex({ indexName: 'shared', indexKey: Buffer.from(keyHex, 'hex') });
const out = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

if (role === 'writer') {
  for (let i = 0; i < Number(n); i++) {
    const id = `${prefix}${i}`;
    await index.upsert({ items: [{ id, vector: [i, 1, 0, 0], metadata: { by: prefix, i } }] });
    out({ ack: id, t: Date.now() });
    if (i % 5 === 0) await index.upsert({ items: [{ id: 'shared', vector: [0, 0, 1, i], metadata: { by: prefix, i } }] });
  }
  await client.close();
} else if (role === 'reader') {
  const firstSeen: Record<string, number> = {};
  let done = false;
  process.stdin.on('end', () => (done = true));
  process.stdin.resume();
  while (!done) {
    const { results } = await index.query({ queryVectors: [0, 1, 0, 0], topK: 10_000, exact: true, consistency: 'eventual' });
    const now = Date.now();
    for (const { id } of results) firstSeen[id] ??= now;
    await new Promise((r) => setTimeout(r, 20));
  }
  out({ firstSeen, ids: (await index.listIds()).ids });
  await client.close();
} else {
  out({ openedFrom: index.stats().openedFrom, ids: (await index.listIds()).ids });
  await client.close();
}
