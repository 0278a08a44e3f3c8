/**
 * A store directory: the LevelDB database (`store/`, exclusively locked while
 * open), the commit heads beside it (`heads/`), and the catalog of index names
 * and their key envelopes. Hands out one IndexStore per index; nothing above
 * this file knows the key layout or where heads live.
 */
import { lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { IntegrityError, StorageError } from '../errors.js';
import type { CatalogEntry, IndexKeys } from '../keys/envelope.js';
import { finishErasures } from './erasure.js';
import { HeadFile, peekHeads, removeHead, removeStaleTemps, type HeadPeek } from './heads.js';
import { IndexStore } from './index-store.js';
import { ioError } from './io-errors.js';
import { KvStore, type BatchOp, type KvBackend, type RangeOptions } from './kv-store.js';
import { catalogKey, catalogRange, indexKey, indexNameOfCatalogKey, indexRange, USER, USERS_ADMIN } from './layout.js';
import { unpack } from '../util/msgpack.js';

/** What the Client needs of an open store: the catalog, and one IndexStore per index (Store; PgStore in storage/postgres/). */
export interface CatalogStore {
  checkAbsent(name: string): Promise<void>;
  catalogEntry(name: string): Promise<CatalogEntry | undefined>;
  hasIndex(name: string): Promise<boolean>;
  indexNames(): Promise<string[]>;
  /** A per-user-keys value of an index, read before the index is open: the root's sealed signing seed, or a user's entry. */
  readIndexValue(indexId: Uint8Array, kind: 'admin' | 'user', slot?: Uint8Array): Promise<Uint8Array | undefined>;
  forIndex(name: string, indexId: Uint8Array, keys: IndexKeys, signKey?: Uint8Array | null, dekGeneration?: number, usersId?: Uint8Array): IndexStore;
  close(): Promise<void>;
}

/** The catalog reads every store makes the same way over its key-value backend (LevelDB here, PostgreSQL in storage/postgres/). */
export abstract class KvCatalog<K extends KvBackend> {
  protected constructor(protected readonly kv: K) {}

  async catalogEntry(name: string): Promise<CatalogEntry | undefined> {
    const raw = await this.kv.get(catalogKey(name));
    return raw === undefined ? undefined : decodeCatalogEntry(raw, name);
  }

  /**
   * A per-user-keys value of an index, read before the index is open (its key check): the root's
   * sealed signing seed (`admin`) or a user's entry by slot (`user`). Undefined when absent.
   */
  readIndexValue(indexId: Uint8Array, kind: 'admin' | 'user', slot?: Uint8Array): Promise<Uint8Array | undefined> {
    return this.kv.get(kind === 'admin' ? indexKey(indexId, USERS_ADMIN) : indexKey(indexId, USER, slot!));
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
}

export class Store extends KvCatalog<KvStore> implements CatalogStore {
  private constructor(
    kv: KvStore,
    private readonly headsDir: string,
  ) {
    super(kv);
  }

  /**
   * Opens (creating) the store under `root`; a held lock is StoreLockedError,
   * a file-system failure StorageError. `heads/` and `store/` must be real
   * directories (a symlink planted in their place is refused), created 0700.
   * Then finishes what a crash interrupted (see `recover`).
   */
  static async open(root: string): Promise<Store> {
    const headsDir = join(root, 'heads');
    const storeDir = join(root, 'store');
    try {
      mkdirSync(headsDir, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw ioError(`create the directory ${headsDir}`, cause);
    }
    for (const dir of [headsDir, storeDir]) {
      let isDir = true;
      try {
        isDir = lstatSync(dir).isDirectory();
      } catch (cause) {
        if ((cause as { code?: string }).code !== 'ENOENT') throw ioError(`inspect ${dir}`, cause);
      }
      if (!isDir) throw new IntegrityError(`${dir} is not a directory (a symlink or file was put in its place). Restore the store directory from a backup.`);
    }
    const store = new Store(await KvStore.open(storeDir), headsDir);
    try {
      await store.recover();
    } catch (error) {
      // A disk fault here leaves the interrupted work for the next open; the store stays readable
      // (and, after a failed LevelDB write, refuses writes until reopened: KvStore.batch).
      if (error instanceof StorageError) return store;
      await store.close().catch(() => undefined);
      throw error;
    }
    return store;
  }

  /**
   * What the store holds, without any key: the ids (hex) that have a catalog
   * entry, the names in the catalog, the ids that have keys in LevelDB, and
   * what each head file says.
   */
  private async survey(): Promise<{ catalogIds: Set<string>; names: Set<string>; keyIds: Set<string>; heads: HeadPeek[] }> {
    const catalogIds = new Set<string>();
    const names = new Set<string>();
    for await (const [key, value] of this.kv.entries(catalogRange())) {
      const name = indexNameOfCatalogKey(key);
      names.add(name);
      try {
        catalogIds.add(Buffer.from(decodeCatalogEntry(value, name).indexId).toString('hex'));
      } catch {
        // An unreadable entry: its index's keys look orphaned below, which is what it is.
      }
    }
    const keyIds = new Set<string>();
    const all: RangeOptions = { gte: Buffer.of(0x49), lt: Buffer.of(0x4a) }; // every 'I' key (layout.ts)
    for (let key = await this.kv.firstKey(all); key !== undefined;) {
      const id = key.subarray(1, 17);
      keyIds.add(Buffer.from(id).toString('hex'));
      key = await this.kv.firstKey({ gte: indexRange(id).lt, lt: all.lt });
    }
    return { catalogIds, names, keyIds, heads: peekHeads(this.headsDir) };
  }

  /**
   * Finishes what a crash interrupted (the lock is held, nothing else runs):
   * pending erasures (erasure.ts: a rotateKey's replaced catalog entry, a
   * revoked user's entries), removes head temp files, and heads left by an interrupted create
   * (`creating`) or delete (`deleting`) whose index has neither a catalog
   * entry nor keys; for a delete, first erases the deleted values from
   * LevelDB's files, as `deleteIndex` would have. Heads still backed by a
   * catalog entry or keys are left alone (`checkAbsent` reports orphans).
   */
  private async recover(): Promise<void> {
    removeStaleTemps(this.headsDir);
    await finishErasures(this.kv); // a rotateKey or a revocation interrupted between its batch and its erasure
    if (!peekHeads(this.headsDir).some((h) => h.version === 2 && h.state !== 'live')) return;
    const { catalogIds, names, keyIds, heads } = await this.survey();
    for (const head of heads) {
      if (head.version !== 2 || head.state === 'live' || catalogIds.has(head.indexId) || keyIds.has(head.indexId)) continue;
      if (head.state === 'deleting') {
        const range = indexRange(Buffer.from(head.indexId, 'hex'));
        const ranges = [range];
        const brackets = [range.gte, range.lt];
        const rewrites: BatchOp[] = [];
        const key = catalogKey(head.name);
        if (!names.has(head.name)) {
          ranges.push({ gte: key, lt: key });
          brackets.push(key);
        } else {
          // The name lives on under another index id (a data-key rotation switched over): erase the entry's older values.
          const value = await this.kv.get(key);
          if (value !== undefined) {
            ranges.push({ gte: key, lt: key });
            rewrites.push({ type: 'put', key, value });
          }
        }
        await this.kv.shred(ranges, brackets, range.gte, rewrites);
      }
      removeHead(this.headsDir, head.indexId);
    }
  }

  /**
   * Called before `name` is treated as absent (createIndex, or loadIndex
   * finding no catalog entry): IntegrityError when the store shows that an
   * index of that name lost its catalog entry, so the name is never silently
   * reused over its remains. Evidence: a `live` head naming it, or keys of an
   * index with no catalog entry whose head names it or names nothing (a
   * format-1 head, or none: the name cannot be told, so every absent name is
   * refused). Keys and heads are not authenticated here (no key is at hand):
   * this catches a lost or removed catalog entry, not a deliberate attacker
   * who also removes the heads and keys (README, security model).
   */
  async checkAbsent(name: string): Promise<void> {
    const { catalogIds, keyIds, heads } = await this.survey();
    const headOf = new Map(heads.map((h) => [h.indexId, h]));
    for (const id of keyIds) {
      if (catalogIds.has(id)) continue;
      const head = headOf.get(id);
      if (head?.version === 2 && head.name !== name) continue; // reported when that name is asked for
      throw new IntegrityError(
        head?.version === 2
          ? `Index "${name}" lost its catalog entry (its key envelope) while its data and commit head remain: the store's database lost data or was tampered with. Restore the store directory from a backup.`
          : `The store holds the data of an index whose catalog entry is gone, and its name cannot be told, so no absent index name can be trusted: the store's database lost data or was tampered with. Restore the store directory from a backup.`,
      );
    }
    for (const head of heads) {
      if (head.version === 2 && head.name === name && head.state === 'live' && !catalogIds.has(head.indexId)) {
        throw new IntegrityError(
          `Index "${name}" has a commit head but is gone from the store's database (its catalog entry, or all of it): the database lost data, was rolled back in part, or was tampered with. Restore the store directory from a backup.`,
        );
      }
    }
  }

  /**
   * The store bound to one index: its id, subkeys and commit head; for a signed index, the public
   * key this opener trusts and the DEK generation of the keys.
   */
  forIndex(
    name: string,
    indexId: Uint8Array,
    keys: IndexKeys,
    signKey: Uint8Array | null = null,
    dekGeneration = 1,
    usersId: Uint8Array = indexId,
  ): IndexStore {
    return new IndexStore(this.kv, name, indexId, keys, new HeadFile(this.headsDir, indexId, keys.head, name), signKey, dekGeneration, usersId);
  }

  close(): Promise<void> {
    return this.kv.close();
  }
}

/** Decodes and shape-checks a catalog entry: anything malformed is tampering, never a TypeError later. */
export function decodeCatalogEntry(raw: Uint8Array, name: string): CatalogEntry {
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
    (entry.keyId === null || typeof entry.keyId === 'string') &&
    (entry.signed === undefined || entry.signed === true) &&
    (entry.usersId === undefined || (entry.signed === true && bytes(entry.usersId, 16)));
  if (!ok) throw unreadable();
  if (entry.format >= 3) {
    // Format 3 records the key source: a KMS slot (name, wrapped KEK) or none, never half of one.
    const kms = entry.provider !== 'none';
    const source =
      (entry.region === null || typeof entry.region === 'string') &&
      (kms
        ? typeof entry.kmsName === 'string' && bytes(entry.wrappedKek) && (entry.wrappedKek as Uint8Array).byteLength > 0
        : entry.kmsName === null && entry.wrappedKek === null);
    if (!source) throw unreadable();
    if (entry.wrappedKek instanceof Uint8Array) entry.wrappedKek = new Uint8Array(entry.wrappedKek);
  } else if (entry.provider !== 'none') {
    throw unreadable(); // formats 1 and 2 know no key source but the application's key
  }
  for (const field of ['indexId', 'salt', 'verifier', 'wrappedDek'] as const) entry[field] = new Uint8Array(entry[field]);
  if (entry.usersId !== undefined) entry.usersId = new Uint8Array(entry.usersId);
  return entry;
}
