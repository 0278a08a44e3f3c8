/**
 * The two stores behind one interface, for suites that run the same
 * behaviours against both: a fresh store per test, Clients on it, and raw
 * access to its key → value pairs (the same pairs in both: LevelDB rows, or
 * rows of the PostgreSQL table) for tampering.
 */
import pg from 'pg';
import { Client, type ClientOptions } from '../../src/index.js';
import { onCleanup, rawStore, tempStore } from './helpers.js';
import type { PgCluster } from './postgres.js';

export interface RawKv {
  entries(): Promise<{ key: Buffer; value: Buffer }[]>;
  put(key: Uint8Array, value: Uint8Array): Promise<void>;
  del(key: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface Backend {
  kind: 'leveldb' | 'postgres';
  /** PostgreSQL: the schema of this test's table. */
  schema?: string;
  /**
   * A new Client on this test's store, closed after the test. With PostgreSQL
   * each distinct `tag` is a separate connection string (application_name),
   * so it opens its own copy of each index, as another process would.
   */
  client(tag?: string): Client;
  /** The options a Client in another process passes to open this store. */
  options(tag?: string): ClientOptions;
  /** Raw key → value access (LevelDB: only while no Client holds the store). */
  raw(): Promise<RawKv>;
}

export function levelBackend(): Backend {
  const path = tempStore();
  return {
    kind: 'leveldb',
    options: () => ({ path }),
    client() {
      const client = new Client({ path });
      onCleanup(() => client.close());
      return client;
    },
    async raw() {
      const db = await rawStore(path);
      return {
        async entries() {
          const out: { key: Buffer; value: Buffer }[] = [];
          for await (const [key, value] of db.iterator()) out.push({ key: Buffer.from(key), value: Buffer.from(value) });
          return out;
        },
        put: (key, value) => db.put(key, value),
        del: (key) => db.del(key),
        close: () => db.close(),
      };
    },
  };
}

let schemas = 0;

/** A fresh schema in `cluster` per call: tests never see each other's tables. */
export function postgresBackend(cluster: PgCluster): Backend {
  const schema = `t${process.pid}_${++schemas}`;
  const url = (tag: string) => `${cluster.connectionString}?application_name=${encodeURIComponent(tag)}`;
  return {
    kind: 'postgres',
    schema,
    options: (tag = 'main') => ({ store: { kind: 'postgres', connectionString: url(tag), schema } }),
    client(tag = 'main') {
      const client = new Client({ store: { kind: 'postgres', connectionString: url(tag), schema } });
      onCleanup(() => client.close());
      return client;
    },
    async raw() {
      const db = new pg.Client({ connectionString: url('raw') });
      await db.connect();
      const table = `"${schema}".vecvault_kv`;
      return {
        async entries() {
          const { rows } = await db.query<{ key: Buffer; value: Buffer }>(`SELECT key, value FROM ${table} ORDER BY key`);
          return rows;
        },
        async put(key, value) {
          await db.query(`UPDATE ${table} SET value = $2 WHERE key = $1`, [Buffer.from(key), Buffer.from(value)]);
        },
        async del(key) {
          await db.query(`DELETE FROM ${table} WHERE key = $1`, [Buffer.from(key)]);
        },
        close: () => db.end(),
      };
    },
  };
}

/** Record rows ('I' id 'R' …) among raw entries. */
export function recordRows(entries: { key: Buffer; value: Buffer }[]): { key: Buffer; value: Buffer }[] {
  return entries.filter((e) => e.key[0] === 0x49 && e.key[17] === 0x52);
}
