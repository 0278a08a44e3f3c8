/**
 * A store directory: the LevelDB database (`store/`, exclusively locked while
 * open), the commit heads beside it (`heads/`), and the catalog of index names
 * and their key envelopes. Hands out one IndexStore per index; nothing above
 * this file knows the key layout or where heads live.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { IntegrityError } from '../errors.js';
import type { CatalogEntry, IndexKeys } from '../keys/envelope.js';
import { HeadFile } from './heads.js';
import { IndexStore } from './index-store.js';
import { KvStore } from './kv-store.js';
import { catalogKey, catalogRange, indexNameOfCatalogKey } from './layout.js';
import { unpack } from './sealed.js';

export class Store {
  private constructor(
    private readonly kv: KvStore,
    private readonly headsDir: string,
  ) {}

  /** Opens (creating) the store under `root`; a held lock is StoreLockedError. */
  static async open(root: string): Promise<Store> {
    const headsDir = join(root, 'heads');
    mkdirSync(headsDir, { recursive: true, mode: 0o700 });
    return new Store(await KvStore.open(join(root, 'store')), headsDir);
  }

  /** The catalog entry of `name`, shape-checked; undefined when there is no such index. */
  async catalogEntry(name: string): Promise<CatalogEntry | undefined> {
    const raw = await this.kv.get(catalogKey(name));
    return raw === undefined ? undefined : decodeCatalogEntry(raw, name);
  }

  async hasIndex(name: string): Promise<boolean> {
    return (await this.kv.get(catalogKey(name))) !== undefined;
  }

  /** Names of every index, in byte order. */
  async indexNames(): Promise<string[]> {
    const names: string[] = [];
    for await (const key of this.kv.keys(catalogRange())) names.push(indexNameOfCatalogKey(key));
    return names;
  }

  /** The store bound to one index: its id, subkeys and commit head. */
  forIndex(name: string, indexId: Uint8Array, keys: IndexKeys): IndexStore {
    return new IndexStore(this.kv, name, indexId, keys, new HeadFile(this.headsDir, indexId, keys.head));
  }

  close(): Promise<void> {
    return this.kv.close();
  }
}

/** Decodes and shape-checks a catalog entry: anything malformed is tampering, never a TypeError later. */
function decodeCatalogEntry(raw: Uint8Array, name: string): CatalogEntry {
  const unreadable = (cause?: unknown) => new IntegrityError(`The catalog entry of index "${name}" is unreadable. Restore the store from a backup.`, { cause });
  let entry: CatalogEntry;
  try {
    entry = unpack(raw) as CatalogEntry;
  } catch (cause) {
    throw unreadable(cause);
  }
  const bytes = (value: unknown, length?: number) => value instanceof Uint8Array && (length === undefined || value.byteLength === length);
  const ok =
    typeof entry === 'object' &&
    entry !== null &&
    !Array.isArray(entry) &&
    bytes(entry.indexId, 16) &&
    bytes(entry.salt, 32) &&
    bytes(entry.verifier, 32) &&
    bytes(entry.wrappedDek) &&
    Number.isSafeInteger(entry.format) &&
    Number.isSafeInteger(entry.dekGeneration) &&
    entry.dekGeneration >= 0 &&
    typeof entry.provider === 'string' &&
    (entry.keyId === null || typeof entry.keyId === 'string');
  if (!ok) throw unreadable();
  for (const field of ['indexId', 'salt', 'verifier', 'wrappedDek'] as const) entry[field] = new Uint8Array(entry[field]);
  return entry;
}
