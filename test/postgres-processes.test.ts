/**
 * Separate processes on one index through PostgreSQL: two writers and a
 * reader at once, a writer killed with SIGKILL mid-stream, and a reader that
 * joins late. Every check is against the writers' own log of acknowledgements.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';
import { postgresBackend } from './support/backends.js';
import { PgCluster, skipPostgres } from './support/postgres.js';

const skip = skipPostgres();
let cluster: PgCluster;
beforeAll(async () => {
  if (!skip) cluster = await PgCluster.start();
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

/** How long after a writer's acknowledgement a reader using eventual queries must see the write. */
const VISIBILITY_BOUND_MS = 1500;

function child(args: string[]): { proc: ChildProcess; lines: unknown[]; exited: Promise<number | null>; onLine: (fn: (line: unknown) => void) => void } {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/support/child-pg.ts', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: unknown[] = [];
  const listeners: ((line: unknown) => void)[] = [];
  let buffer = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = JSON.parse(buffer.slice(0, nl)) as unknown;
      buffer = buffer.slice(nl + 1);
      lines.push(line);
      for (const fn of listeners) fn(line);
    }
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, lines, exited, onLine: (fn) => listeners.push(fn) };
}

describe.skipIf(skip)('PostgreSQL: several processes on one index', () => {
  it('two writers and a reader: every acknowledged write reaches the reader within the bound, none is lost; a killed writer leaves nothing partial; a late reader opens from the snapshot', async () => {
    const backend = postgresBackend(cluster);
    const key = Client.generateKey();
    const keyHex = Buffer.from(key).toString('hex');
    const setup = backend.client('setup');
    await setup.createIndex({ indexName: 'shared', indexKey: key, dimension: 4 });
    await setup.close();
    const url = (tag: string) => `${cluster.connectionString}?application_name=${tag}`;
    const args = (role: string, tag: string, ...rest: string[]) => [role, url(tag), backend.schema!, keyHex, ...rest];

    const reader = child(args('reader', 'reader'));
    await new Promise((r) => setTimeout(r, 500)); // let it open first (it also catches up if not)
    const writers = [child(args('writer', 'w1', 'a', '40')), child(args('writer', 'w2', 'b', '40'))];
    expect(await Promise.all(writers.map((w) => w.exited))).toEqual([0, 0]);
    await new Promise((r) => setTimeout(r, VISIBILITY_BOUND_MS));
    reader.proc.stdin!.end();
    expect(await reader.exited).toBe(0);

    const acks = writers.flatMap((w) => w.lines as { ack: string; t: number }[]);
    expect(acks).toHaveLength(80);
    const { firstSeen, ids } = reader.lines[0] as { firstSeen: Record<string, number>; ids: string[] };
    const delays = acks.map(({ ack, t }) => (firstSeen[ack] ?? Infinity) - t);
    console.log(
      `ack → seen by the reader (eventual queries every 20 ms): max ${Math.max(...delays)} ms, median ${delays.sort((x, y) => x - y)[delays.length >> 1]} ms`,
    );
    expect(Math.max(...delays)).toBeLessThan(VISIBILITY_BOUND_MS);
    const expected = [...acks.map((a) => a.ack), 'shared'].sort();
    expect([...ids].sort()).toEqual(expected);

    // kill -9 mid-stream: every acknowledged write is there, and the index opens (its count and digest add up).
    const doomed = child(args('writer', 'w3', 'k', '2000'));
    await new Promise<void>((resolve) => doomed.onLine(() => doomed.lines.length >= 15 && resolve()));
    doomed.proc.kill('SIGKILL');
    await doomed.exited;
    const killedAcks = (doomed.lines as { ack: string }[]).map((l) => l.ack);
    const check = backend.client('check');
    const index = await check.loadIndex({ indexName: 'shared', indexKey: key });
    const after = new Set((await index.listIds()).ids);
    for (const id of [...expected, ...killedAcks]) expect(after.has(id)).toBe(true);
    // At most the one write in flight when it died may have committed unacknowledged.
    expect(after.size - expected.length - killedAcks.length).toBeLessThanOrEqual(1);
    await index.snapshot();
    await check.close();

    const late = child(args('late', 'late'));
    expect(await late.exited).toBe(0);
    const opened = late.lines[0] as { openedFrom: string; ids: string[] };
    expect(opened.openedFrom).toBe('snapshot');
    expect(new Set(opened.ids)).toEqual(after);
  }, 90_000);
});
