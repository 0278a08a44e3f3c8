/**
 * The key-value backend over PostgreSQL: the same key → value pairs the
 * LevelDB store holds (storage/layout.ts), one row each, in one table
 *
 *   <schema>.vecvault_kv (key bytea PRIMARY KEY, value bytea NOT NULL, counter bigint)
 *
 * Keys are the LevelDB keys as they are (index names in catalog keys; random
 * index ids, HMAC'd record ids, commit and chunk numbers), values the same
 * sealed bytes; `counter` is set on manifest rows only (the commit counter,
 * which LevelDB's change-log keys show too) so a commit can compare-and-set
 * it. PostgreSQL orders bytea bytewise, as LevelDB does, so ranges are key
 * ranges. Each batch is one transaction; a guarded batch (a commit) first
 * moves its manifest row from counter − 1 to counter, or fails with
 * ConflictError, and announces the commit with NOTIFY.
 *
 * The compare-and-set alone lets a process starve: one that is always up to
 * date recommits before one that just lost has caught up, every time. So a
 * process that keeps losing takes a turn (`takeTurn`): an exclusive advisory
 * lock per index, held across its catch-up and commit, while every other
 * commit first takes the same lock shared, and so waits its turn.
 */
import type { Pool, PoolClient } from 'pg';
import { ClosedError, ConflictError, StorageError } from '../../errors.js';
import type { BatchOp, Bytes, CommitGuard, KvBackend, RangeOptions } from '../kv-store.js';

/** The channel every vecvault commit is announced on; the payload names schema, index id (hex) and counter. */
export const CHANNEL = 'vecvault_commit';
const PAGE = 512;

/** A pg failure as vecvault reports it: the database refused or is unreachable (never a sign of tampering). */
export function pgFailure(what: string, cause: unknown): StorageError {
  const code = (cause as { code?: unknown } | null)?.code;
  return new StorageError(
    `Could not ${what} in PostgreSQL (${typeof code === 'string' ? code : 'connection failed'}): check that the database is reachable and retry. Acknowledged writes are safe.`,
    { cause },
  );
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export class PgKv implements KvBackend {
  private readonly fences: RangeOptions[] = [];
  /** The manifest keys (hex) whose turn this backend holds: its own commits to them skip the shared lock. */
  private readonly turns = new Set<string>();
  readonly table: string;
  private closed = false;

  constructor(
    readonly pool: Pool,
    readonly schema: string,
  ) {
    this.table = `${quoteIdent(schema)}.vecvault_kv`;
  }

  /** Creates the schema and table if absent (under an advisory lock: several processes may start at once). */
  async init(): Promise<void> {
    await this.transaction('create the vecvault tables', async (c) => {
      await c.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`vecvault:schema:${this.schema}`]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.schema)}`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${this.table} (key bytea PRIMARY KEY, value bytea NOT NULL, counter bigint)`);
    });
  }

  private async query<R extends Record<string, unknown>>(what: string, sql: string, params: unknown[]): Promise<R[]> {
    if (this.closed) throw new ClosedError('This Client is closed. Create a new Client to open the store again.');
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (cause) {
      throw pgFailure(what, cause);
    }
  }

  /** Runs `fn` in one transaction on one connection; any failure rolls it back. */
  async transaction<T>(what: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new ClosedError('This Client is closed. Create a new Client to open the store again.');
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (cause) {
      throw pgFailure(what, cause);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true; // the connection is gone: do not hand it out again
      }
      if (error instanceof ConflictError || error instanceof ClosedError) throw error;
      throw pgFailure(what, error);
    } finally {
      client.release(broken);
    }
  }

  async get(key: Bytes): Promise<Bytes | undefined> {
    const rows = await this.query<{ value: Buffer }>('read from the store', `SELECT value FROM ${this.table} WHERE key = $1`, [Buffer.from(key)]);
    return rows[0]?.value;
  }

  async getMany(keys: Bytes[]): Promise<(Bytes | undefined)[]> {
    if (keys.length === 0) return [];
    const rows = await this.query<{ key: Buffer; value: Buffer }>('read from the store', `SELECT key, value FROM ${this.table} WHERE key = ANY($1::bytea[])`, [
      keys.map((k) => Buffer.from(k)),
    ]);
    const byKey = new Map(rows.map((r) => [r.key.toString('hex'), r.value]));
    return keys.map((k) => byKey.get(Buffer.from(k).toString('hex')));
  }

  /**
   * One transaction. With a guard (a commit), the manifest row moves from
   * counter − 1 to counter first, which takes its row lock: a concurrent
   * commit waits, then finds the counter moved and fails with ConflictError,
   * writing nothing. A guard at counter 0 (a new index) inserts only: a name
   * or id taken meanwhile is a conflict too.
   */
  async batch(ops: BatchOp[], { guard }: { sync?: boolean; guard?: CommitGuard } = {}): Promise<void> {
    if (ops.length === 0) return;
    for (const op of ops) {
      if (op.type === 'put' && this.fences.some((r) => Buffer.compare(op.key, r.gte) >= 0 && Buffer.compare(op.key, r.lt) < 0)) {
        throw new ClosedError('This index was deleted. Create it again, or load another index.');
      }
    }
    await this.transaction('write to the store', async (c) => {
      let rest = ops;
      if (guard) {
        const manifest = ops.find((op) => op.type === 'put' && Buffer.compare(op.key, guard.key) === 0) as { value: Bytes } | undefined;
        if (!manifest) throw new Error('a guarded batch must write its manifest');
        rest = ops.filter((op) => !(op.type === 'put' && Buffer.compare(op.key, guard.key) === 0));
        if (guard.counter === 0) {
          const puts = rest.filter((op): op is Extract<BatchOp, { type: 'put' }> => op.type === 'put');
          const res = await c.query(
            `INSERT INTO ${this.table} (key, value, counter) SELECT k, v, CASE WHEN k = $3 THEN 0 END FROM unnest($1::bytea[], $2::bytea[]) AS t(k, v) ON CONFLICT (key) DO NOTHING`,
            [
              [guard.key, ...puts.map((p) => p.key)].map((k) => Buffer.from(k)),
              [manifest.value, ...puts.map((p) => p.value)].map((v) => Buffer.from(v)),
              Buffer.from(guard.key),
            ],
          );
          if (res.rowCount !== puts.length + 1)
            throw new ConflictError('Another process created an index of this name (or id) meanwhile. Load it with loadIndex().');
          return;
        }
        // Before the manifest row's lock, never after: a turn holder's commit may be waiting for that row.
        const turn = Buffer.from(guard.key).toString('hex');
        if (!this.turns.has(turn)) await c.query('SELECT pg_advisory_xact_lock_shared(hashtext($1))', [this.turnLock(turn)]);
        const res = await c.query(`UPDATE ${this.table} SET value = $2, counter = $3 WHERE key = $1 AND counter = $4`, [
          Buffer.from(guard.key),
          Buffer.from(manifest.value),
          guard.counter,
          guard.counter - 1,
        ]);
        if (res.rowCount !== 1) {
          throw new ConflictError(
            `Another process committed to this index first (this commit was to be number ${guard.counter}); nothing was written. Retry the call.`,
          );
        }
      }
      await applyOps(c, this.table, rest);
      if (guard)
        await c.query('SELECT pg_notify($1, $2)', [CHANNEL, `${this.schema}:${Buffer.from(guard.key).subarray(1, 17).toString('hex')}:${guard.counter}`]);
    });
  }

  private turnLock(manifestHex: string): string {
    return `vecvault:turn:${this.schema}:${manifestHex}`;
  }

  /**
   * Holds off other processes' commits to the index of `manifestKey` until
   * the returned release is called: waits for the commits under way, then
   * keeps a connection holding the lock (a closed session drops it). Only
   * for a writer that lost the compare-and-set several times in a row.
   */
  async takeTurn(manifestKey: Bytes): Promise<() => Promise<void>> {
    if (this.closed) throw new ClosedError('This Client is closed. Create a new Client to open the store again.');
    const turn = Buffer.from(manifestKey).toString('hex');
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (cause) {
      throw pgFailure('take a turn to commit', cause);
    }
    try {
      await client.query('SELECT pg_advisory_lock(hashtext($1))', [this.turnLock(turn)]);
    } catch (cause) {
      client.release(true);
      throw pgFailure('take a turn to commit', cause);
    }
    this.turns.add(turn);
    return async () => {
      this.turns.delete(turn);
      try {
        await client.query('SELECT pg_advisory_unlock(hashtext($1))', [this.turnLock(turn)]);
        client.release();
      } catch {
        client.release(true); // a closed session drops its advisory locks
      }
    };
  }

  async *entries(range: RangeOptions): AsyncGenerator<[Bytes, Bytes]> {
    let from: Buffer = Buffer.from(range.gte);
    let op = '>=';
    for (;;) {
      const rows = await this.query<{ key: Buffer; value: Buffer }>(
        'read from the store',
        `SELECT key, value FROM ${this.table} WHERE key ${op} $1 AND key < $2 ORDER BY key LIMIT ${PAGE}`,
        [from, Buffer.from(range.lt)],
      );
      for (const row of rows) yield [row.key, row.value];
      if (rows.length < PAGE) return;
      from = rows[rows.length - 1]!.key;
      op = '>';
    }
  }

  async *keys(range: RangeOptions): AsyncGenerator<Bytes> {
    let from: Buffer = Buffer.from(range.gte);
    let op = '>=';
    for (;;) {
      const rows = await this.query<{ key: Buffer }>(
        'read from the store',
        `SELECT key FROM ${this.table} WHERE key ${op} $1 AND key < $2 ORDER BY key LIMIT ${PAGE * 8}`,
        [from, Buffer.from(range.lt)],
      );
      for (const row of rows) yield row.key;
      if (rows.length < PAGE * 8) return;
      from = rows[rows.length - 1]!.key;
      op = '>';
    }
  }

  async firstKey(range: RangeOptions): Promise<Bytes | undefined> {
    const rows = await this.query<{ key: Buffer }>('read from the store', `SELECT key FROM ${this.table} WHERE key >= $1 AND key < $2 ORDER BY key LIMIT 1`, [
      Buffer.from(range.gte),
      Buffer.from(range.lt),
    ]);
    return rows[0]?.key;
  }

  /** The manifest row's counter (the newest commit), without reading or opening its value; -1 when absent. */
  async counter(manifestKey: Bytes): Promise<number> {
    const rows = await this.query<{ counter: string | null }>('read from the store', `SELECT counter FROM ${this.table} WHERE key = $1`, [
      Buffer.from(manifestKey),
    ]);
    return rows[0]?.counter == null ? -1 : Number(rows[0].counter);
  }

  /** PostgreSQL reclaims dead rows with VACUUM (autovacuum); nothing to ask for here. */
  async compactRange(): Promise<void> {}

  fence(range: RangeOptions): void {
    this.fences.push(range);
  }

  /**
   * Deleted rows stay in the table's files until VACUUM reuses their space
   * (and in WAL, backups and replicas): they are ciphertext, but unlike
   * LevelDB's shred nothing here erases them. README, "PostgreSQL".
   */
  async shred(): Promise<void> {}

  /** Nothing mapped here: PostgreSQL's pages live in its own processes. */
  async releaseMemory(): Promise<void> {}

  releaseMappedPages(): void {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }
}

/** Applies puts and deletes in order, grouping runs of one kind (a key put twice in one run keeps the last value). */
async function applyOps(c: PoolClient, table: string, ops: BatchOp[]): Promise<void> {
  let i = 0;
  while (i < ops.length) {
    const type = ops[i]!.type;
    let j = i;
    while (j < ops.length && ops[j]!.type === type && j - i < 2000) j++;
    const run = ops.slice(i, j);
    if (type === 'put') {
      const last = new Map<string, { key: Buffer; value: Buffer }>();
      for (const op of run as Extract<BatchOp, { type: 'put' }>[])
        last.set(Buffer.from(op.key).toString('hex'), { key: Buffer.from(op.key), value: Buffer.from(op.value) });
      const rows = [...last.values()];
      await c.query(
        `INSERT INTO ${table} (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, counter = NULL`,
        [rows.map((r) => r.key), rows.map((r) => r.value)],
      );
    } else {
      await c.query(`DELETE FROM ${table} WHERE key = ANY($1::bytea[])`, [run.map((op) => Buffer.from(op.key))]);
    }
    i = j;
  }
}
