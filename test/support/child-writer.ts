/**
 * Run in a separate process: creates an index and commits `batches` upserts of
 * `perBatch` records (dimension 8, values from `rowVector`), then exits without
 * close(), so every commit is still in LevelDB's log, not yet in a table.
 */
import { Client } from '../../src/index.js';

export function rowVector(row: number): number[] {
  return Array.from({ length: 8 }, (_, i) => ((row * 31 + i * 7) % 97) / 97 - 0.5);
}

if (process.argv[1]?.endsWith('child-writer.ts')) {
  const [path, indexName, keyHex, batches, perBatch] = process.argv.slice(2) as [string, string, string, string, string];
  const client = new Client({ path });
  const index = await client.createIndex({ indexName, indexKey: Buffer.from(keyHex, 'hex'), dimension: 8, metric: 'euclidean' });
  let row = 0;
  for (let b = 0; b < Number(batches); b++) {
    const items = Array.from({ length: Number(perBatch) }, () => {
      const id = `r${row}`;
      const item = { id, vector: rowVector(row), metadata: { row, batch: b }, contents: `text of ${id}` };
      row++;
      return item;
    });
    await index.upsert({ items });
  }
  process.exit(0);
}
