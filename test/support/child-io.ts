/**
 * Run in a separate process (under strace, by test/io-faults.test.ts): a
 * fixed sequence of small writes, each outcome recorded. Never throws: a
 * failed call is recorded with its code and the sequence goes on. Writes the
 * outcomes as JSON to argv[3] at the end; exits 0 unless something escaped.
 * argv: store path, index key (hex), result file.
 */
import { writeFileSync } from 'node:fs';
import { Client, type EncryptedIndex } from '../../src/index.js';

const [path, keyHex, resultFile] = process.argv.slice(2) as [string, string, string];
const indexKey = Buffer.from(keyHex, 'hex');

export interface Outcome {
  op: string;
  ok: boolean;
  code?: string;
  cause?: string;
  message?: string;
  /** What the call returned, when it says something (deletedCount). */
  value?: unknown;
}

const outcomes: Outcome[] = [];
const warnings: string[] = [];
process.on('warning', (w) => warnings.push((w as Error & { code?: string }).code ?? w.name));

async function step<T>(op: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    const value = await fn();
    const said = (value as { deletedCount?: number } | undefined)?.deletedCount;
    outcomes.push({ op, ok: true, ...(said === undefined ? {} : { value: said }) });
    return value;
  } catch (error) {
    const e = error as Error & { code?: string; cause?: { code?: string } };
    outcomes.push({ op, ok: false, code: e.code, cause: e.cause?.code, message: e.message });
    return undefined;
  }
}

const v = (x: number): number[] => [x, x + 1, x + 2, x + 3];
const client = new Client({ path });
const a: EncryptedIndex | undefined = await step('create-a', () => client.createIndex({ indexName: 'a', indexKey, dimension: 4 }));
if (a) {
  await step('upsert-a1', () =>
    a.upsert({ ids: ['a1', 'a2', 'a3', 'a4'], vectors: [v(1), v(2), v(3), v(4)], metadata: [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }] }),
  );
  await step('upsert-a2', () => a.upsert({ ids: ['a3', 'a5', 'a6'], vectors: [v(33), v(5), v(6)], contents: ['three', 'five', 'six'] }));
  await step('remove-a', () => a.delete({ ids: ['a1', 'a5'] }));
}
const b: EncryptedIndex | undefined = await step('create-b', () => client.createIndex({ indexName: 'b', indexKey, dimension: 4 }));
if (b) {
  await step('upsert-b', () => b.upsert({ ids: ['b1', 'b2'], vectors: [v(7), v(8)] }));
  await step('drop-b', () => b.deleteIndex());
}
if (a) await step('compact-a', () => a.compact());
await step('close', () => client.close());
writeFileSync(resultFile, JSON.stringify({ outcomes, warnings }));
