/**
 * The `vecvault` CLI, each command in a child process (`node --import tsx
 * src/cli/main.ts`, as from a fresh clone; the built `dist/cli/main.js` is
 * the package's `bin`). Exit codes and error codes are the contract of
 * docs/cli.md; stdout under --json is exactly one JSON document.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { vecvaultAsync, type CliRun } from './support/cli.js';
import { rawStore, rejectsWithCode, tempStore } from './support/helpers.js';
import { Client } from '../src/index.js';
import { AwsLoopback, LOOPBACK_CREDENTIALS } from './support/aws-loopback.js';
import { rowVector } from './support/child-writer.js';

type Run = CliRun;

function vecvault(args: string[], env: Record<string, string> = {}): Run {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, VECVAULT_INDEX_KEY: '', ...env },
    timeout: 60_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** A run that must succeed; returns its parsed --json document. */
function ok(args: string[], env?: Record<string, string>): any {
  const run = vecvault([...args, '--json'], env);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout);
}

function fails(args: string[], exit: number, code: string, env?: Record<string, string>): Run {
  const run = vecvault(args, env);
  expect(run.status).toBe(exit);
  expect(run.stderr).toMatch(new RegExp(`^${code}: `, 'm'));
  return run;
}

function fvecs(file: string, rows: number[][]): void {
  const parts = rows.map((row) => {
    const b = Buffer.alloc(4 + 4 * row.length);
    b.writeInt32LE(row.length, 0);
    row.forEach((v, i) => b.writeFloatLE(v, 4 + 4 * i));
    return b;
  });
  writeFileSync(file, Buffer.concat(parts));
}

/** A store with index "docs" (dimension 8) and a key file. */
function setup() {
  const dir = tempStore();
  const keyFile = join(dir, 'key');
  const path = join(dir, 'store');
  ok(['keygen', '--out', keyFile]);
  const common = ['--path', path, '--index', 'docs', '--key-file', keyFile];
  ok(['create', ...common, '--dimension', '8', '--metric', 'euclidean']);
  return { dir, keyFile, path, common, key: readFileSync(keyFile, 'utf8').trim() };
}

describe('vecvault CLI', () => {
  it('is the package bin: dist/cli/main.js, built from src/cli/main.ts (shebang kept) by tsconfig.build.json', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    expect(pkg.bin).toEqual({ vecvault: './dist/cli/main.js' });
    expect(pkg.files).toContain('dist/');
    expect(readFileSync('src/cli/main.ts', 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const build = JSON.parse(readFileSync('tsconfig.build.json', 'utf8'));
    expect(build.compilerOptions.rootDir).toBe('src');
    expect(build.include).toContain('src');
  });

  it('create → import .fvecs and JSONL → query with a filter → verify → export → stats --json', () => {
    const { dir, common, keyFile, key } = setup();
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    const vecs = join(dir, 'rows.fvecs');
    fvecs(
      vecs,
      Array.from({ length: 30 }, (_, i) => rowVector(i)),
    );
    expect(ok(['import', vecs, ...common])).toEqual({ imported: 30, format: 'fvecs' });
    const jsonl = join(dir, 'docs.jsonl');
    writeFileSync(
      jsonl,
      Array.from({ length: 10 }, (_, i) =>
        JSON.stringify({ id: `doc-${i}`, vector: rowVector(100 + i), metadata: { year: 2020 + i }, contents: `body ${i}` }),
      ).join('\n') + '\n',
    );
    expect(ok(['import', jsonl, ...common])).toEqual({ imported: 10, format: 'jsonl' });

    const query = ok([
      'query',
      ...common,
      '--vector',
      JSON.stringify(rowVector(105)),
      '--top-k',
      '3',
      '--filter',
      '{"year":{"$gte":2024}}',
      '--include',
      'distance,metadata',
    ]);
    expect(query.results[0]).toMatchObject({ id: 'doc-5', metadata: { year: 2025 } });
    expect(query.results.every((r: { metadata: { year: number } }) => r.metadata.year >= 2024)).toBe(true);
    expect(query.results[0].distance).toBeCloseTo(0, 5);

    expect(ok(['verify', ...common])).toMatchObject({ ok: true, problems: [] });
    const out = join(dir, 'export.jsonl');
    expect(ok(['export', ...common, '--plaintext', '--out', out])).toEqual({ exported: 40, out });
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(40);
    expect(lines.find((l) => l.id === 'doc-3')).toMatchObject({ metadata: { year: 2023 }, contents: 'body 3' });
    expect(lines.find((l) => l.id === '7').vector[0]).toBeCloseTo(rowVector(7)[0]!, 6);

    const stats = ok(['stats', ...common]);
    expect(stats).toMatchObject({ indexName: 'docs', count: 40, dimension: 8, metric: 'euclidean' });
    // The key from the environment works the same, and no output anywhere holds it.
    const env = { VECVAULT_INDEX_KEY: key };
    const plain = ['--path', common[1]!, '--index', 'docs'];
    expect(ok(['get', ...plain, '--ids', 'doc-1,nope', '--include', 'metadata'], env)).toEqual({
      records: [{ id: 'doc-1', metadata: { year: 2021 } }, { id: 'nope' }],
    });
    expect(ok(['delete', ...plain, '--ids', 'doc-1,0'], env)).toEqual({ deletedCount: 2 });
    expect(ok(['list', ...plain, '--filter', '{"year":{"$lt":2023}}'], env)).toEqual({ ids: ['doc-0', 'doc-2'], count: 2 });
    expect(ok(['list', '--path', common[1]!])).toEqual({ indexes: ['docs'] });
    expect(keyFile).toBeDefined();
  });

  it('imports CSV and .npy, and .bvecs rows get ids "0", "1", …', () => {
    const { dir, common } = setup();
    const csv = join(dir, 'rows.csv');
    writeFileSync(
      csv,
      `id,vector,title,year\na,"${JSON.stringify(rowVector(1)).replaceAll('"', '""')}","Hello, world",2021\nb,"${JSON.stringify(rowVector(2))}",plain,2022\n`,
    );
    expect(ok(['import', csv, ...common])).toEqual({ imported: 2, format: 'csv' });
    expect(ok(['get', ...common, '--ids', 'a', '--include', 'metadata']).records[0].metadata).toEqual({ title: 'Hello, world', year: 2021 });
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 8), }";
    const padded = header.padEnd(118, ' ') + '\n';
    const npyHead = Buffer.concat([Buffer.from('\x93NUMPY\x01\x00', 'latin1'), Buffer.from([padded.length, 0]), Buffer.from(padded, 'latin1')]);
    const data = Buffer.from(new Float32Array([...rowVector(200), ...rowVector(201), ...rowVector(202)]).buffer);
    const npy = join(dir, 'rows.npy');
    writeFileSync(npy, Buffer.concat([npyHead, data]));
    expect(ok(['import', npy, ...common])).toEqual({ imported: 3, format: 'npy' });
    const got = ok(['get', ...common, '--ids', '2', '--include', 'vector']).records[0];
    got.vector.forEach((v: number, i: number) => expect(v).toBeCloseTo(rowVector(202)[i]!, 6));
    const bvecs = join(dir, 'rows.bvecs');
    writeFileSync(bvecs, Buffer.concat([0, 1].map((r) => Buffer.concat([Buffer.from(Int32Array.of(8).buffer), Buffer.from([r, 2, 3, 4, 5, 6, 7, 8])]))));
    expect(ok(['import', bvecs, ...common])).toEqual({ imported: 2, format: 'bvecs' });
    expect(ok(['stats', ...common]).count).toBe(5); // rows "0" and "1" of the .bvecs replaced those of the .npy
  });

  it('bad input that reaches the store: wrong key, missing index, corrupt file, bad filter; never the key', () => {
    const { dir, common, path, keyFile, key } = setup();
    const wrongKey = join(dir, 'wrong');
    writeFileSync(wrongKey, Buffer.alloc(32, 7));
    const runs: Run[] = [];
    runs.push(fails(['stats', '--path', path, '--index', 'docs', '--key-file', wrongKey], 3, 'VECVAULT_INVALID_KEY'));
    runs.push(fails(['stats', '--path', path, '--index', 'nope', '--key-file', keyFile], 4, 'VECVAULT_INDEX_NOT_FOUND'));
    const truncated = join(dir, 'bad.fvecs');
    fvecs(truncated, [rowVector(1), rowVector(2)]);
    writeFileSync(truncated, readFileSync(truncated).subarray(0, 50));
    runs.push(fails(['import', truncated, ...common], 2, 'VECVAULT_VALIDATION'));
    const badJson = join(dir, 'bad.jsonl');
    writeFileSync(badJson, '{"id":"x","vector":[1,2,3,4,5,6,7,8]}\n{oops\n');
    runs.push(fails(['import', badJson, ...common], 2, 'VECVAULT_VALIDATION'));
    expect(runs.at(-1)!.stderr).toContain('line 2');
    runs.push(fails(['query', ...common, '--vector', JSON.stringify(rowVector(1)), '--filter', '{"year":{"$regex":"x"}}'], 2, 'VECVAULT_VALIDATION'));
    runs.push(fails(['create', ...common, '--dimension', '8'], 5, 'VECVAULT_INDEX_EXISTS'));
    for (const run of runs) {
      expect(run.stdout + run.stderr).not.toContain(key);
      expect(run.stdout + run.stderr).not.toContain(Buffer.alloc(32, 7).toString('hex'));
    }
  });

  it('bad flags and unreadable input fail before the store is opened', async () => {
    const dir = tempStore();
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, Buffer.alloc(32, 9));
    const path = join(dir, 'store');
    const common = ['--path', path, '--index', 'docs', '--key-file', keyFile];
    const cases: [string[], number, string, Record<string, string>?][] = [
      [['stats', '--path', join(dir, 'nowhere'), '--index', 'docs', '--key-file', keyFile], 4, 'VECVAULT_INDEX_NOT_FOUND'],
      [['list', '--path', join(dir, 'nowhere')], 4, 'VECVAULT_INDEX_NOT_FOUND'],
      [['import', join(dir, 'missing.jsonl'), ...common], 8, 'VECVAULT_IO'],
      [['import', join(dir, 'dir.fvecs'), ...common], 8, 'VECVAULT_IO'],
      [['query', ...common, '--vector', '[1]', '--filter', '{not json'], 2, 'VECVAULT_VALIDATION'],
      [['query', ...common, '--top-k', 'many', '--vector', '[1]'], 2, 'VECVAULT_VALIDATION'],
      [['export', ...common], 2, 'VECVAULT_VALIDATION'],
      [['stats', '--path', path, '--index', 'docs'], 2, 'VECVAULT_VALIDATION'],
      [['stats', '--path', path, '--index', 'docs'], 2, 'VECVAULT_VALIDATION', { VECVAULT_INDEX_KEY: 'abc' }],
      [['rotate-key', ...common], 2, 'VECVAULT_VALIDATION'], // no new key source
      [['rotate-key', ...common, '--new-key-file', keyFile, '--new-kms-name', 'hsm'], 2, 'VECVAULT_VALIDATION'],
      [['rotate-key', ...common, '--new-kms-name', 'hsm'], 2, 'VECVAULT_VALIDATION'], // without --kms-config
      [['rotate-key', ...common, '--new-key-file', join(dir, 'missing.key')], 8, 'VECVAULT_IO'],
      [['rotate-data-key', '--path', path, '--index', 'docs', '--kms-name', 'hsm'], 2, 'VECVAULT_VALIDATION'],
      [['frobnicate'], 2, 'VECVAULT_VALIDATION'],
    ];
    mkdirSync(join(dir, 'dir.fvecs'));
    const runs = await Promise.all(cases.map(([args, , , env]) => vecvaultAsync(args, env)));
    expect(existsSync(join(dir, 'nowhere'))).toBe(false); // a mistyped --path is not created
    runs.forEach((run, i) => {
      const [args, exit, code] = cases[i]!;
      expect({ args, status: run.status, stderr: run.stderr }).toEqual({ args, status: exit, stderr: expect.stringMatching(new RegExp(`^${code}: `, 'm')) });
      expect(run.stdout + run.stderr).not.toContain(Buffer.alloc(32, 9).toString('hex'));
    });
  });

  it('rotate-key (new key file, then a KMS slot of --kms-config and back) and rotate-data-key: the old key stops opening, every record stays', async () => {
    const { dir, common, path, keyFile } = setup();
    const jsonl = join(dir, 'docs.jsonl');
    writeFileSync(jsonl, Array.from({ length: 30 }, (_, i) => JSON.stringify({ id: `d${i}`, vector: rowVector(i), contents: `doc ${i}` })).join('\n'));
    ok(['import', jsonl, ...common]);
    const newKeyFile = join(dir, 'new.key');
    writeFileSync(newKeyFile, Buffer.alloc(32, 7).toString('hex'));
    expect(ok(['rotate-key', ...common, '--new-key-file', newKeyFile])).toEqual({ status: 'success', keySource: { provider: 'none' } });
    // Checked in process (each CLI run costs a second or two): the old key no longer opens the index, the new one does.
    {
      const client = new Client({ path });
      await rejectsWithCode(
        client.loadIndex({ indexName: 'docs', indexKey: Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex') }),
        'VECVAULT_INVALID_KEY',
      );
      expect((await (await client.loadIndex({ indexName: 'docs', indexKey: Buffer.alloc(32, 7) })).listIds()).count).toBe(30);
      await client.close();
    }
    const rotated = ['--path', path, '--index', 'docs', '--key-file', newKeyFile];

    // To an aws-kms slot (loopback server in this process: the CLI runs asynchronously so it can answer) and back.
    const aws = await new AwsLoopback('eu-west-1').start();
    try {
      const config = join(dir, 'kms.json');
      const slot = { provider: 'aws-kms', keyId: aws.createKey(), region: aws.region, endpoint: aws.endpoint, credentials: LOOPBACK_CREDENTIALS };
      writeFileSync(config, JSON.stringify({ aws: slot }));
      const toKms = await vecvaultAsync(['rotate-key', ...rotated, '--kms-config', config, '--new-kms-name', 'aws', '--json']);
      expect(toKms.status, toKms.stderr).toBe(0);
      expect(JSON.parse(toKms.stdout)).toMatchObject({ status: 'success', keySource: { provider: 'aws-kms', kmsName: 'aws' } });
      const viaKms = ['--path', path, '--index', 'docs', '--kms-config', config];
      const again = await vecvaultAsync(['rotate-data-key', ...viaKms, '--json']);
      expect(again.status, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toEqual({ status: 'success', records: 30 });
      const back = await vecvaultAsync(['rotate-key', ...viaKms, '--new-key-file', keyFile, '--json']);
      expect(back.status, back.stderr).toBe(0);
    } finally {
      await aws.close();
    }
    const client = new Client({ path });
    const index = await client.loadIndex({ indexName: 'docs', indexKey: Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex') });
    const records = await index.get({ ids: Array.from({ length: 30 }, (_, i) => `d${i}`), include: ['contents'] });
    expect(records.map((r) => r.contents)).toEqual(Array.from({ length: 30 }, (_, i) => `doc ${i}`));
    expect((await index.verify()).ok).toBe(true);
    await client.close();
  }, 120_000);

  it('a tampered store: verify exits 6 and reports the problem; recover copies what authenticates and exits 11', async () => {
    const { dir, common, path, keyFile } = setup();
    const jsonl = join(dir, 'docs.jsonl');
    writeFileSync(jsonl, Array.from({ length: 20 }, (_, i) => JSON.stringify({ id: `d${i}`, vector: rowVector(i) })).join('\n'));
    ok(['import', jsonl, ...common, '--batch-size', '5']);
    const db = await rawStore(path);
    for await (const [k, v] of db.iterator()) {
      if (k[0] === 0x49 && k[17] === 0x52) {
        const value = Buffer.from(v);
        value[30]! ^= 1;
        await db.put(k, value);
        break;
      }
    }
    await db.close();
    const run = vecvault(['verify', ...common, '--json']);
    expect(run.status).toBe(6);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, problems: [{ kind: 'record' }, { kind: 'digest' }] });
    expect(run.stderr).toMatch(/^VECVAULT_INTEGRITY: verify found 2 problem/m);
    const recovered = join(dir, 'recovered');
    const rec = vecvault(['recover', ...common, '--to', recovered, '--json']);
    expect(rec.status).toBe(11);
    expect(JSON.parse(rec.stdout)).toMatchObject({ recovered: 19, unreadable: 1, expected: 20, missing: 1, lostIds: 1 });
    expect(rec.stdout).not.toMatch(/"ids"/);
    expect(ok(['verify', '--path', recovered, '--index', 'docs', '--key-file', keyFile])).toMatchObject({ ok: true });
  });

  it("recover after a flipped byte in LevelDB's log (a writer that never closed): the index no longer opens, recover gets the rest back", () => {
    const dir = tempStore();
    const keyFile = join(dir, 'key');
    const key = Buffer.alloc(32, 5).toString('hex');
    writeFileSync(keyFile, key);
    const store = join(dir, 'crashed');
    spawnSync(process.execPath, ['--import', 'tsx', 'test/support/child-writer.ts', store, 'docs', key, '24', '40']);
    const log = join(
      store,
      'store',
      readdirSync(join(store, 'store')).find((f) => f.endsWith('.log'))!,
    );
    const bytes = readFileSync(log);
    bytes[Math.floor(bytes.byteLength / 2)]! ^= 0x10;
    writeFileSync(log, bytes);
    const crashed = ['--path', store, '--index', 'docs', '--key-file', keyFile];
    fails(['stats', ...crashed], 6, 'VECVAULT_INTEGRITY');
    const back = vecvault(['recover', ...crashed, '--to', join(dir, 'back'), '--ids']);
    expect(back.status).toBe(11);
    expect(back.stdout).toMatch(/^Recovered \d+ record\(s\)/);
    expect(back.stdout).toMatch(/Missing against the manifest: \d+ \(manifest counts 960\)/);
    const count = ok(['stats', '--path', join(dir, 'back'), '--index', 'docs', '--key-file', keyFile]).count;
    expect(count).toBe(Number(/^Recovered (\d+)/.exec(back.stdout)![1]));
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(960);
  });

  it('--user-id: a reader queries, gets and lists with its own key, and a write is VECVAULT_PERMISSION (exit 12); a writer imports; revoke-user ends access; users survive rotate-data-key', () => {
    const { dir, common, path } = setup();
    const rows = join(dir, 'rows.jsonl');
    writeFileSync(rows, ['a', 'b', 'c'].map((id, i) => JSON.stringify({ id, vector: rowVector(i), metadata: { i } })).join('\n'));
    ok(['import', rows, ...common]);
    const readerFile = join(dir, 'reader.key');
    const writerFile = join(dir, 'writer.key');
    expect(ok(['create-user-key', 'ann', ...common, '--out', readerFile])).toEqual({ userId: 'ann', permissions: ['read'], out: readerFile });
    expect(ok(['create-user-key', 'wes', ...common, '--permissions', 'read,write', '--out', writerFile]).permissions).toEqual(['read', 'write']);
    expect(ok(['list-users', ...common]).users).toEqual([
      { userId: 'ann', permissions: ['read'] },
      { userId: 'wes', permissions: ['read', 'write'] },
    ]);
    const asReader = ['--path', path, '--index', 'docs', '--key-file', readerFile, '--user-id', 'ann'];
    const asWriter = ['--path', path, '--index', 'docs', '--key-file', writerFile, '--user-id', 'wes'];
    expect(ok(['query', ...asReader, '--vector', JSON.stringify(rowVector(1)), '--top-k', '1']).results[0].id).toBe('b');
    expect(ok(['get', ...asReader, '--ids', 'c', '--include', 'metadata']).records).toEqual([{ id: 'c', metadata: { i: 2 } }]);
    const denied = fails(['delete', ...asReader, '--ids', 'a'], 12, 'VECVAULT_PERMISSION');
    expect(denied.stderr).toMatch(/may only read/);
    fails(['list-users', ...asWriter], 12, 'VECVAULT_PERMISSION'); // user administration is the root's
    writeFileSync(rows, JSON.stringify({ id: 'd', vector: rowVector(3) }));
    expect(ok(['import', rows, ...asWriter])).toEqual({ imported: 1, format: 'jsonl' });
    // The same user keys after a data-key rotation (by the root), then the reader revoked.
    ok(['rotate-data-key', ...common]);
    expect(ok(['list', ...asReader]).count).toBe(4);
    ok(['revoke-user', 'ann', ...common]);
    fails(['stats', ...asReader], 3, 'VECVAULT_INVALID_KEY');
  }, 120_000);
});
