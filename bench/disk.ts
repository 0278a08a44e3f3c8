/**
 * `npm run bench:disk [-- --n 100000 --dim 96]`: where vecvault's disk bytes go,
 * per vector, and what dropping the vectors from the snapshot would save and
 * cost. Builds N synthetic clustered cosine vectors (10k per upsert), closes
 * (the final snapshot), compacts LevelDB, then sums key + value bytes per
 * kind of key straight from LevelDB (everything under one index id is
 * 'I' id kind …; see src/storage/layout.ts). The "refill" column is what an
 * open would pay to put the vectors back into a snapshot saved without them:
 * reading and decrypting every record, measured with `get` of all ids in
 * calls of 1,000 with their vectors, beside the open itself.
 *
 * Writes bench/results/DISK-<n>.md.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClassicLevel } from 'classic-level';
import { Client } from '../src/index.js';
import { clusteredVectors, normalized } from '../test/support/vectors.js';
import { machineInfo, projectRoot } from './lib/machine.js';
import { duBytes, medianOf } from './lib/measure.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '100000' }, dim: { type: 'string', default: '96' }, reps: { type: 'string', default: '3' } },
});
const n = Number(values.n);
const dim = Number(values.dim);
const reps = Number(values.reps);

const KINDS: Record<string, string> = {
  M: 'manifest',
  R: 'records (id, vector, metadata, contents; sealed)',
  SG: 'snapshot graph section (usearch links + vectors; sealed chunks)',
  ST: 'snapshot table section (ids, engine keys, metadata; sealed chunks)',
  L: 'change log since the snapshot',
  A: 'users / signing (admin)',
  D: 'users (directory)',
  U: 'users (entries)',
  P: 'rotation in progress',
};

const dir = mkdtempSync(join(tmpdir(), 'vecvault-bench-disk-'));
try {
  const path = join(dir, 'vv');
  const key = crypto.getRandomValues(new Uint8Array(32));
  const data = normalized(clusteredVectors(n, dim, { seed: 42 })).data;
  const ids = Array.from({ length: n }, (_, i) => `doc-${i}`);
  {
    const client = new Client({ path });
    const index = await client.createIndex({
      indexName: 'disk',
      indexKey: key,
      dimension: dim,
      metric: 'cosine',
      indexConfig: { connectivity: 16, expansionAdd: 128 },
    });
    for (let start = 0; start < n; start += 10_000) {
      const end = Math.min(n, start + 10_000);
      await index.upsert({
        ids: ids.slice(start, end),
        vectors: Array.from({ length: end - start }, (_, j) => data.subarray((start + j) * dim, (start + j + 1) * dim)),
      });
    }
    await client.close();
  }

  // Sum key + value bytes per kind, after a full compaction (what stays on disk).
  const db = new ClassicLevel<Uint8Array, Uint8Array>(join(path, 'store'), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  await db.compactRange(new Uint8Array([0]), new Uint8Array([0xff]));
  const bytes = new Map<string, { entries: number; bytes: number }>();
  for await (const [k, v] of db.iterator()) {
    // 'I' id(16) kind …; snapshot chunks: … gen(8) section(1) chunk(4)
    let kind = k[0] === 0x49 ? String.fromCharCode(k[17]!) : 'catalog';
    if (kind === 'S') kind += String.fromCharCode(k[18 + 8]!);
    const slot = bytes.get(kind) ?? { entries: 0, bytes: 0 };
    slot.entries++;
    slot.bytes += k.byteLength + v.byteLength;
    bytes.set(kind, slot);
  }
  await db.close();
  const onDisk = duBytes(join(path, 'store'));
  const logical = [...bytes.values()].reduce((sum, s) => sum + s.bytes, 0);

  // Open + first query, and a full read of every record with its vector (what a refill would cost).
  const opens: number[] = [];
  const refills: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const t0 = performance.now();
    const client = new Client({ path });
    const index = await client.loadIndex({ indexName: 'disk', indexKey: key });
    await index.query({ queryVectors: data.subarray(0, dim), topK: 10 });
    opens.push(performance.now() - t0);
    const t1 = performance.now();
    let got = 0;
    for (let start = 0; start < n; start += 1000) {
      const items = await index.get({ ids: ids.slice(start, start + 1000), include: ['vector'] });
      got += items.length;
    }
    refills.push(performance.now() - t1);
    if (got !== n) throw new Error(`read ${got} of ${n} records`);
    await client.close();
  }

  const vectorBytes = n * dim * 4;
  const machine = machineInfo();
  const per = (b: number) => (b / n).toFixed(0);
  const lines = [
    `# Disk: where the bytes go, ${n.toLocaleString('en-US')} × ${dim} cosine (float32)`,
    '',
    `Command: \`npm run bench:disk -- --n ${n} --dim ${dim}\` · ${new Date().toISOString()} · commit ${machine.commit} · ${machine.cores} × ${machine.cpuModel} · Node ${machine.node} · load average (1 min) ${machine.loadAverage1m.toFixed(2)}`,
    '',
    `Raw vector: ${dim * 4} B. Files of the LevelDB store after close and a full compaction: ${per(onDisk)} B per vector; key + value bytes below: ${per(logical)} B per vector (LevelDB's block and index overhead is the difference; sealed values do not compress).`,
    '',
    '| part | entries | B per vector | share |',
    '|---|---|---|---|',
    ...[...bytes.entries()]
      .sort((a, b) => b[1].bytes - a[1].bytes)
      .map(([kind, s]) => `| ${KINDS[kind] ?? kind} | ${s.entries.toLocaleString('en-US')} | ${per(s.bytes)} | ${((100 * s.bytes) / logical).toFixed(1)} % |`),
    '',
    `The vectors themselves are ${dim * 4} B per vector in the records and again ${dim * 4} B inside the graph section.`,
    '',
    '## Snapshots without vectors?',
    '',
    `usearch can serialise the graph without its vectors; the open would then have to read and decrypt every record to put them back. Measured here (medians of ${reps}):`,
    '',
    '| figure | value |',
    '|---|---|',
    `| disk saved | ${per(vectorBytes)} B per vector (${((100 * vectorBytes) / onDisk).toFixed(0)} % of the store) |`,
    `| open + first query today | ${medianOf(opens).toFixed(0)} ms |`,
    `| reading every record with its vector (\`get\`, calls of 1,000) | ${medianOf(refills).toFixed(0)} ms (${((n * 1000) / medianOf(refills)).toFixed(0)} records/s) |`,
    `| open with a refill, at least | ${(medianOf(opens) + medianOf(refills)).toFixed(0)} ms (${((medianOf(opens) + medianOf(refills)) / medianOf(opens)).toFixed(1)}× today's open) |`,
    '',
  ];
  const outDir = join(projectRoot(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `DISK-${n}.md`), lines.join('\n'));
  console.log(lines.join('\n'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
