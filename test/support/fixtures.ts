/**
 * Store fixtures: a fresh store with one index, and reopening it the way an
 * application does after a restart. Every client opened here is closed after
 * the test (before its directory is removed); closing earlier is fine, close()
 * is idempotent. Tests about constructing clients themselves (locks, close
 * races, failed loads) still call `new Client` directly.
 */
import { Client, type CreateIndexParams, type EncryptedIndex } from '../../src/index.js';
import { onCleanup, tempStore } from './helpers.js';

export interface OpenIndex {
  path: string;
  key: Uint8Array;
  client: Client;
  index: EncryptedIndex;
}

export interface FreshOptions extends Partial<CreateIndexParams> {
  /** Store directory; a new temp directory by default. */
  path?: string;
}

/** A Client on `path` (a new temp directory by default), closed after the test. */
export function openClient(path: string = tempStore()): Client {
  const client = new Client({ path });
  onCleanup(() => client.close());
  return client;
}

/**
 * A new index (default name `test`, a fresh random key) in a new store, or in
 * `options.path`; other options go to createIndex as given.
 */
export async function openFresh(options: FreshOptions = {}): Promise<OpenIndex> {
  const { path = tempStore(), indexName = 'test', indexKey = Client.generateKey(), ...create } = options;
  const client = openClient(path);
  const index = await client.createIndex({ ...create, indexName, indexKey });
  return { path, key: indexKey, client, index };
}

/** A closed store holding one 2-d index with records `a` = [1, 0] and `b` = [0, 1], one commit: for tests that then read or tamper with the files. */
export async function storedTwoRecords(options: FreshOptions = {}): Promise<{ path: string; key: Uint8Array }> {
  const { path, key, client, index } = await openFresh({ dimension: 2, ...options });
  await index.upsert({
    ids: ['a', 'b'],
    vectors: [
      [1, 0],
      [0, 1],
    ],
  });
  await client.close();
  return { path, key };
}

/** A new Client on `path` with `indexName` loaded under `key` (close the previous client first). */
export async function reopen(path: string, key: Uint8Array, indexName = 'test'): Promise<OpenIndex> {
  const client = openClient(path);
  const index = await client.loadIndex({ indexName, indexKey: key });
  return { path, key, client, index };
}
