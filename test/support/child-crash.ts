/** Run in a separate process: loads an index, upserts and deletes, then exits without close() (a crash). */
import { Client } from '../../src/index.js';

const [path, indexName, keyHex] = process.argv.slice(2) as [string, string, string];
const client = new Client({ path });
const index = await client.loadIndex({ indexName, indexKey: Buffer.from(keyHex, 'hex') });
await index.upsert({
  ids: ['crash-1', 'crash-2'],
  vectors: [
    [9, 9, 9, 9],
    [8, 8, 8, 8],
  ],
  metadata: [{ late: true }, { late: true }],
});
await index.upsert({ ids: ['v0'], vectors: [[7, 7, 7, 7]], metadata: [{ late: true }] });
await index.delete({ ids: ['v1', 'crash-2'] });
process.exit(0);
