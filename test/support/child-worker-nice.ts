/**
 * Child of test/worker-nice.test.ts: upserts 20,000 random 64-d vectors through the public API, then reports which
 * of this process's threads run at a lowered priority and how much CPU they used, read from /proc (not from the
 * addon's own account): `{ nices: { [nice]: threads }, nicedCpu, totalCpu }` (clock ticks) as JSON.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '../../src/index.js';
import { randomFlat } from './vectors.js';

const dir = mkdtempSync(join(tmpdir(), 'vecvault-nice-'));
const client = new Client({ path: dir });
const index = await client.createIndex({ indexName: 'n', indexKey: Client.generateKey(), dimension: 64 });
const flat = randomFlat(20_000, 64, 7);
for (let start = 0; start < 20_000; start += 5_000) {
  await index.upsert(Array.from({ length: 5_000 }, (_, i) => ({ id: `v${start + i}`, vector: flat.subarray((start + i) * 64, (start + i + 1) * 64) })));
}

const nices: Record<string, number> = {};
let nicedCpu = 0;
let totalCpu = 0;
for (const task of readdirSync('/proc/self/task')) {
  // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15, nice 19.
  const fields = readFileSync(`/proc/self/task/${task}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const cpu = Number(fields[11]) + Number(fields[12]);
  const nice = fields[16]!;
  nices[nice] = (nices[nice] ?? 0) + 1;
  totalCpu += cpu;
  if (nice !== '0') nicedCpu += cpu;
}
await client.close();
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ nices, nicedCpu, totalCpu }));
