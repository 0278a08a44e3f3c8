/**
 * Run in a separate process by test/store-backends.test.ts: opens index `docs`
 * through `new Client(<options JSON>)` and upserts `<prefix>0…` one call each,
 * printing `{"ack":id}` after each acknowledged write, until killed.
 */
import { Client, type ClientOptions } from '../../src/index.js';

const [options, keyHex, prefix] = process.argv.slice(2) as [string, string, string];
const client = new Client(JSON.parse(options) as ClientOptions);
const index = await client.loadIndex({ indexName: 'docs', indexKey: Buffer.from(keyHex, 'hex') });
for (let i = 0; ; i++) {
  const id = `${prefix}${i}`;
  await index.upsert({ items: [{ id, vector: [i % 7, 1, 2, 3, 4, 5], metadata: { i }, contents: `text ${i}` }] });
  process.stdout.write(`${JSON.stringify({ ack: id })}\n`);
}
