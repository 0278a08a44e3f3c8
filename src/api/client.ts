/**
 * The entry point. A Client opens a store directory (lazily; several Clients
 * of one process on the same path share the open store and its open indexes,
 * see shared-store.ts), checks keys against the catalog, and tracks the index
 * handles it gave out.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { nativeEngine } from '../engine/native.js';
import type { EngineFactory } from '../engine/types.js';
import { ClosedError, IndexExistsError, IndexNotFoundError, InvalidKeyError, KmsError, NotSupportedError, ValidationError } from '../errors.js';
import {
  createEnvelope,
  deriveIndexKeys,
  KMS_FORMAT_VERSION,
  openEnvelope,
  usersIdOf,
  wipeIndexKeys,
  type CatalogEntry,
  type IndexKeys,
} from '../keys/envelope.js';
import { openSigningSeed, openUser, rootUserKeys, userSlot } from '../keys/users.js';
import { generateSigningKey } from '../crypto/sign.js';
import { checkIndexKey, generateKey, type GenerateKeyOptions } from '../keys/index-key.js';
import { kmsContext } from '../keys/kms/context.js';
import { openProvider, resolveSlot, type KeyProvider, type KmsProviderName, type KmsRegistry } from '../keys/kms/types.js';
import { validateKmsRegistry } from '../keys/kms/validate.js';
import type { IndexStore } from '../storage/index-store.js';
import { INDEX_TYPES, METRICS, PRECISIONS, type HnswConfig, type IndexType, type Manifest, type RequestedConfig } from '../storage/manifest.js';
import { Store, type CatalogStore } from '../storage/store.js';
import type { IndexState, RootKeys } from '../core/index-state.js';
import { follow } from '../core/follow.js';
import { createIndexState, loadIndexState } from '../core/recovery.js';
import type { HandleAccess } from './access.js';
import { attachEmbedding, EncryptedIndex } from './encrypted-index.js';
import { checkEmbedding, type CheckedEmbedding } from './embedding.js';
import { keySourceOf } from './key-rotation.js';
import { SharedStore, type SharedIndex } from './shared-store.js';
import type { ClientOptions, CreateIndexParams, KeySource, LoadIndexParams } from './types.js';
import { checkPostgresOptions } from './store-options.js';
import { checkIndexName, checkOneOf, checkPositiveInt, checkUserId, isPlainObject } from './validate.js';

export const DEFAULT_INDEX_CONFIG = { connectivity: 16, expansionAdd: 128, expansionSearch: 200 } as const;

const ROOT: HandleAccess = { role: 'root' };

/** Who a handle belongs to: a Client hands out one handle per index and key holder. */
function principalOf(access: HandleAccess): string {
  return access.role === 'root' ? 'root' : `user:${access.slot}`;
}

function handleKey(name: string, principal: string): string {
  return `${principal}\u0000${name}`;
}

/** What `createIndex`/`loadIndex` were given: the application's key (a copy, wiped by the caller) or a registry slot. */
type KeyChoice = { key: Buffer; kmsName?: undefined } | { key?: undefined; kmsName: string } | { key?: undefined; kmsName?: undefined };

/**
 * A store directory and the indexes in it. Opening is lazy: the first call
 * that needs the store takes its lock, so one process at a time holds a
 * directory; within that process any number of Clients on the same path
 * share it (an index loaded through two of them sees every write at once).
 * Close it with `close()` to snapshot changed indexes and release the lock
 * (the last Client of the path to close releases it).
 *
 * @example
 * ```ts
 * const client = new Client({ path: './vecvault-data' });
 * const indexKey = Client.generateKey();
 * const index = await client.createIndex({ indexName: 'notes', indexKey, dimension: 384, metric: 'cosine' });
 * await client.close();
 * ```
 */
export class Client {
  /** The store's path, or for PostgreSQL `postgres:<schema>@<connection string>` (Clients of one process on it share it). */
  readonly #root: string;
  /** Opens the store (once per process and root: SharedStore). */
  readonly #open_: () => Promise<CatalogStore>;
  readonly #engines: EngineFactory;
  /** The KMS registry (`new Client({ kms })`), each slot checked; undefined without one. */
  readonly #kms: KmsRegistry | undefined;
  /** This Client's reference to the shared open store, once a call needed it. */
  #shared: SharedStore | null = null;
  readonly #open = new Map<string, EncryptedIndex>();
  /** create/load calls of this Client in flight: close() lets them finish first. */
  readonly #catalogCalls = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | null = null;
  /** listIndexes() calls in flight: close() lets them finish before closing the store. */
  readonly #listings = new Set<Promise<string[]>>();

  /**
   * @param options `{ path, kms? }`: the store directory, created on first use, and the KMS registry
   * (slot name → slot, see docs/key-sources.md) for indexes whose key a KMS, HSM or the application's
   * own provider holds.
   * @throws `VECVAULT_VALIDATION` without a `path`, or for a malformed `kms` slot (`path` = `kms.<slot>.<field>`).
   */
  constructor(options: ClientOptions) {
    if (isPlainObject(options) && options.store !== undefined) {
      if (options.path !== undefined) throw new ValidationError('Pass either path or store, not both.', { path: 'store' });
      const pg = checkPostgresOptions(options.store);
      this.#root = `postgres:${pg.schema ?? 'vecvault'}@${pg.connectionString}`;
      this.#open_ = async () => (await import('../storage/postgres/pg-store.js')).PgStore.open(pg);
    } else {
      if (!isPlainObject(options) || typeof options.path !== 'string' || options.path.length === 0) {
        throw new ValidationError('new Client({ path }) needs the directory of the store.', { path: 'path' });
      }
      const root = resolve(options.path);
      this.#root = root;
      this.#open_ = () => Store.open(root);
    }
    this.#kms = options.kms === undefined ? undefined : validateKmsRegistry(options.kms);
    this.#engines = nativeEngine;
  }

  /**
   * 32 random bytes from the OS CSPRNG, to use as an `indexKey`. Keep it safe:
   * without it the index cannot be read. `{ save: true }` caches the key at
   * `~/.vecvault/index_key` (0600) and returns the cached key on later calls.
   * @example
   * ```ts
   * const indexKey = Client.generateKey();
   * ```
   */
  static generateKey(options?: GenerateKeyOptions): Uint8Array {
    return generateKey(options);
  }

  /**
   * The same as `Client.generateKey()`, on an instance, as CyborgDB's SDK
   * examples call it. Works on a closed Client too (it touches no store).
   * @example
   * ```ts
   * const indexKey = client.generateKey();
   * ```
   */
  generateKey(options?: GenerateKeyOptions): Uint8Array {
    return generateKey(options);
  }

  /**
   * Creates an encrypted index under `indexKey` (32 bytes). `dimension` may be
   * left for the first upsert to fix; `metric` defaults to `'euclidean'`,
   * `storagePrecision` to `'float32'`.
   * @throws `VECVAULT_INDEX_EXISTS` when the name is taken; `VECVAULT_VALIDATION` for bad options
   * (the key not 32 bytes, an unknown metric, `int8` without cosine); `VECVAULT_NOT_SUPPORTED` for
   * `kmsName` or a non-HNSW `indexConfig.type`; `VECVAULT_STORE_LOCKED` when another process holds
   * the store; `VECVAULT_INTEGRITY` when an index of that name lost its catalog entry while its data
   * or commit head remain; `VECVAULT_IO` when the disk refuses the write; `VECVAULT_CLOSED` after `close()`.
   * @example
   * ```ts
   * const index = await client.createIndex({ indexName: 'notes', indexKey, dimension: 3, metric: 'cosine' });
   * ```
   */
  async createIndex(params: CreateIndexParams): Promise<EncryptedIndex> {
    const p = this.#checkParams(params);
    const name = checkIndexName(p.indexName);
    const choice = this.#checkKeySource(p, true);
    // A KMS-backed index: a random KEK, wrapped by the slot's provider below. Every exit wipes it (or the caller's key copy).
    const kek = choice.key ?? randomBytes(32);
    try {
      return await this.#createIndex(p, name, choice.kmsName, kek);
    } finally {
      kek.fill(0);
    }
  }

  async #createIndex(p: CreateIndexParams, name: string, kmsName: string | undefined, kek: Buffer): Promise<EncryptedIndex> {
    if (p.embeddingModel !== undefined && p.embeddingModel !== null) {
      throw new NotSupportedError(
        'embeddingModel: vecvault downloads and runs no embedding models. Pass createIndex({ embedding: { name, embed(texts) } }) with your own model instead.',
      );
    }
    const embedding = p.embedding === undefined ? undefined : checkEmbedding(p.embedding);
    const metric = p.metric === undefined ? 'euclidean' : checkOneOf(p.metric, METRICS, 'metric');
    const precision = p.storagePrecision === undefined ? 'float32' : checkOneOf(p.storagePrecision, PRECISIONS, 'storagePrecision');
    let dimension = p.dimension === undefined || p.dimension === null ? null : checkPositiveInt(p.dimension, 'dimension', 65_536);
    const { hnsw: indexConfig, requested, dimension: configDimension } = this.#checkIndexConfig(p.indexConfig);
    if (configDimension !== undefined) {
      if (dimension !== null && dimension !== configDimension) {
        throw new ValidationError(`indexConfig.dimension (${configDimension}) differs from dimension (${dimension}); pass one of them.`, {
          path: 'indexConfig.dimension',
        });
      }
      dimension = configDimension;
    }
    if (embedding?.dimension !== undefined) {
      if (dimension !== null && dimension !== embedding.dimension) {
        throw new ValidationError(`embedding.dimension (${embedding.dimension}) differs from dimension (${dimension}); pass one of them.`, {
          path: 'embedding.dimension',
        });
      }
      dimension = embedding.dimension;
    }
    if (precision === 'int8' && metric !== 'cosine') {
      // usearch rescales int8 vectors to unit length: only angular distances survive it.
      throw new ValidationError("storagePrecision 'int8' works with metric 'cosine' only; use 'float16' to save memory with other metrics.", {
        path: 'storagePrecision',
      });
    }
    if (kmsName !== undefined) resolveSlot(this.#kms, kmsName); // KmsError naming a missing slot, before the store is touched
    return this.#catalogExclusive(async (store) => {
      if (await store.hasIndex(name)) {
        throw new IndexExistsError(`An index named "${name}" already exists. Load it with loadIndex(), or pick another name.`);
      }
      await store.checkAbsent(name); // IntegrityError when an index of that name lost its catalog entry
      // The KMS wrap happens before anything is written: a KmsError leaves the store as it was.
      const { entry, dek } =
        kmsName === undefined
          ? createEnvelope(kek, name, { provider: 'none', keyId: null }, undefined, true)
          : await this.#createKmsEnvelope(kek, name, kmsName);
      const manifest: Manifest = {
        counter: 0,
        nextKey: 1,
        count: 0,
        digest: new Uint8Array(32),
        dimension,
        metric,
        precision,
        indexConfig,
        snapshot: null,
      };
      if (requested !== undefined) manifest.requested = requested;
      if (embedding !== undefined) manifest.embedding = { name: embedding.name, dimension };
      // The handle keeps copies of the KEK and DEK for rotation (wiped at release).
      const root: RootKeys = { kek: Buffer.from(kek), dek: Buffer.from(dek), entry };
      const indexStore = await this.#rootIndexStore(store, name, entry, dek, true);
      const index = await this.#handle(
        name,
        (release) => createIndexState(indexStore, this.#engines, manifest, entry, release),
        keySourceOf(entry),
        ROOT,
        root,
      ).catch((error: unknown) => {
        wipeIndexKeys(indexStore.keys);
        throw error;
      });
      if (embedding !== undefined) attachEmbedding(index, embedding);
      return index;
    });
  }

  /**
   * Opens an existing index. The key is checked before anything is decrypted;
   * a handle already open in this Client is returned as is, and an index
   * another Client of this process holds open is shared (a new handle on
   * the same open index: every write is visible through both at once).
   * @throws `VECVAULT_INVALID_KEY` for any other key (or an `indexKey` for a KMS-backed index);
   * `VECVAULT_KMS` when the index's key source is missing from the registry or fails; `VECVAULT_INDEX_NOT_FOUND` when there is no
   * such index; `VECVAULT_INTEGRITY` when stored data fails authentication, committed writes are
   * missing, or the index's catalog entry vanished while its data or commit head remain;
   * `VECVAULT_IO` when the disk refuses a read; `VECVAULT_STORE_LOCKED`; `VECVAULT_CLOSED` after `close()`.
   * @example
   * ```ts
   * const index = await client.loadIndex({ indexName: 'notes', indexKey });
   * ```
   */
  async loadIndex(params: LoadIndexParams): Promise<EncryptedIndex> {
    const p = this.#checkParams(params);
    const name = checkIndexName(p.indexName);
    const userId = p.userId === undefined ? undefined : checkUserId(p.userId);
    if (userId !== undefined && (p.indexKey === undefined || p.kmsName !== undefined)) {
      throw new ValidationError('A user opens an index with { indexName, indexKey: userKey, userId }: pass the user key as indexKey, and no kmsName.', {
        path: 'indexKey',
      });
    }
    const choice = this.#checkKeySource(p, false);
    const kek = choice.key;
    let embedding: CheckedEmbedding | undefined;
    try {
      embedding = p.embedding === undefined ? undefined : checkEmbedding(p.embedding);
    } catch (error) {
      kek?.fill(0);
      throw error;
    }
    const loaded = await this.#catalogExclusive(async (store): Promise<EncryptedIndex | 'rotated'> => {
      const entry = await store.catalogEntry(name);
      if (entry === undefined) {
        await store.checkAbsent(name); // a lost catalog entry is IntegrityError, not "not found"
        throw new IndexNotFoundError(`No index named "${name}" in ${this.#root}. Create it with createIndex(), or check the name.`);
      }
      // InvalidKeyError (or KmsError) before any record is read
      let opened: { keys: IndexKeys; signKey: Uint8Array | null; access: HandleAccess; root: RootKeys | null };
      if (userId !== undefined) {
        opened = { ...(await this.#openAsUser(store, kek!, name, entry, userId)), root: null }; // users cannot rotate: no root keys
      } else {
        const { dek, kek: rootKek } =
          entry.provider === 'none'
            ? { dek: this.#openWithKey(kek, name, entry, choice.kmsName), kek: Buffer.from(kek!) }
            : await this.#openWithKms(kek, name, entry, choice.kmsName);
        // A root handle keeps copies of the KEK and DEK for rotation (wiped at release).
        const root: RootKeys = { kek: rootKek, dek: Buffer.from(dek), entry };
        let indexStore: IndexStore;
        try {
          indexStore = await this.#rootIndexStore(store, name, entry, dek);
        } catch (error) {
          root.kek.fill(0);
          root.dek.fill(0);
          // A data-key rotation switched the index to a new id (and erased this one's values) after the entry was read: read it again.
          const now = await store.catalogEntry(name);
          if (now !== undefined && !Buffer.from(now.indexId).equals(Buffer.from(entry.indexId))) return 'rotated';
          throw error;
        }
        opened = { keys: indexStore.keys, signKey: indexStore.signKey, access: ROOT, root };
      }
      const { keys, signKey, access, root } = opened;
      const wipeRoot = () => {
        root?.kek.fill(0);
        root?.dek.fill(0);
      };
      const principal = principalOf(access);
      const already = this.#open.get(handleKey(name, principal));
      if (already?.isUsable()) {
        wipeIndexKeys(keys);
        wipeRoot();
        if (embedding !== undefined) attachEmbedding(already, embedding); // the same handle, now able to embed
        return already;
      }
      // Open through another Client of this process (or by another key holder): share its state, with a handle of our own.
      const held = this.#sharedStore().indexes.get(name);
      let index: EncryptedIndex;
      if (held && held.state.isUsable() && Buffer.from(held.state.store.indexId).equals(Buffer.from(entry.indexId))) {
        try {
          await held.state.store.adoptKeys(keys, signKey); // a root or writer brings the keys a reader's state lacks
        } finally {
          wipeIndexKeys(keys);
        }
        if (root && !held.state.root)
          held.state.holdRoot(root); // a root joining a state a user opened brings rotation's keys
        else wipeRoot();
        index = this.#attach(name, held, keySourceOf(entry), access);
      } else if (held && held.state.isUsable() && held.state.root && !Buffer.from(held.state.root.entry.indexId).equals(Buffer.from(entry.indexId))) {
        // A data-key rotation of the open index switched to a new index id after this call read the entry: read it again.
        wipeIndexKeys(keys);
        wipeRoot();
        await held.state.queue.settled();
        return 'rotated';
      } else {
        if (held?.state.closing) await held.state.closing.catch(() => undefined); // its close snapshot first, then a fresh open
        const indexStore = store.forIndex(name, entry.indexId, keys, signKey, entry.dekGeneration, usersIdOf(entry));
        index = await this.#handle(name, (release) => loadIndexState(indexStore, this.#engines, release), keySourceOf(entry), access, root).catch(
          (error: unknown) => {
            wipeIndexKeys(indexStore.keys); // a failed open leaves no handle to wipe them
            throw error;
          },
        );
      }
      if (embedding !== undefined) {
        try {
          attachEmbedding(index, embedding); // the name the manifest records, known only once it is open
        } catch (error) {
          await index.close();
          throw error;
        }
      }
      return index;
    }).finally(() => kek?.fill(0));
    return loaded === 'rotated' ? this.loadIndex(params) : loaded;
  }

  /**
   * CyborgDB's readiness check: resolves `{ status: 'healthy' }` once the
   * store directory is open (opening it if no call has yet), and rejects with
   * the reason it cannot be (`VECVAULT_STORE_LOCKED` while another process
   * holds it, `VECVAULT_IO`, `VECVAULT_INTEGRITY`, `VECVAULT_CLOSED`). There
   * is no service or network behind it.
   * @example
   * ```ts
   * const { status } = await client.getHealth(); // 'healthy'
   * ```
   */
  async getHealth(): Promise<{ status: 'healthy' }> {
    await this.#openStore();
    return { status: 'healthy' };
  }

  /**
   * Names of every index in the store (names are not secret; see the README's security model).
   * @throws `VECVAULT_STORE_LOCKED`; `VECVAULT_CLOSED` after `close()`.
   * @example
   * ```ts
   * const names = await client.listIndexes(); // ['notes']
   * ```
   */
  async listIndexes(): Promise<string[]> {
    const listing = this.#openStore().then((store) => store.indexNames());
    this.#listings.add(listing);
    try {
      return await listing;
    } finally {
      this.#listings.delete(listing);
    }
  }

  /**
   * Waits for writes in flight, closes every index (snapshotting changed
   * ones) and releases the store's lock. Idempotent: every call resolves once
   * the store is closed; later calls on this Client throw `VECVAULT_CLOSED`.
   * @example
   * ```ts
   * await client.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#closeNow();
    return this.#closing;
  }

  async #closeNow(): Promise<void> {
    this.#closed = true;
    // Each handle closes once the calls on it that started before now have settled; later calls get ClosedError.
    // An index other Clients still hold stays open for them.
    const closing = [...this.#open.values()].map((index) => index.close());
    await Promise.allSettled([...this.#catalogCalls]);
    // Handles that create/load calls begun before close() opened meanwhile close too.
    await Promise.all([...closing, ...[...this.#open.values()].map((index) => index.close())]);
    await Promise.allSettled([...this.#listings]);
    const shared = this.#shared;
    this.#shared = null;
    await shared?.release(); // the last Client of the path closes the store
  }

  // ---- internals ----

  /** This Client's reference to the store of its path, shared with the other Clients of this process on it. */
  #sharedStore(): SharedStore {
    if (!this.#shared) {
      const shared = SharedStore.acquire(this.#root, this.#open_);
      this.#shared = shared;
      // A failed open (e.g. locked by another process) may be retried by a later call.
      shared.store.catch(() => {
        if (this.#shared === shared) {
          this.#shared = null;
          void shared.release();
        }
      });
    }
    return this.#shared;
  }

  #openStore(): Promise<CatalogStore> {
    if (this.#closed) return Promise.reject(new ClosedError('This Client is closed. Create a new Client to open the store again.'));
    return this.#sharedStore().store;
  }

  /** Catalog changes (create/load/delete) run one at a time, over every Client of the store. */
  #catalogExclusive<T>(fn: (store: CatalogStore) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new ClosedError('This Client is closed. Create a new Client to open the store again.'));
    const run = this.#sharedStore().exclusive(fn);
    this.#catalogCalls.add(run);
    const done = () => this.#catalogCalls.delete(run);
    run.then(done, done);
    return run;
  }

  /**
   * The store bound to one index as its root opens it: its id, subkeys (as its catalog format
   * derives them) and commit head; for a signed index also the admin and record-auth keys and the
   * signing seed (`create`: a fresh one, sealed by `IndexStore.create`), whose public key the root
   * trusts. Wipes the DEK once the keys are derived.
   */
  async #rootIndexStore(store: CatalogStore, name: string, entry: CatalogEntry, dek: Buffer, create = false): Promise<IndexStore> {
    let keys: IndexKeys | undefined;
    try {
      keys = deriveIndexKeys(dek, entry.indexId, entry.format);
      if (entry.signed !== true) return store.forIndex(name, entry.indexId, keys, null, entry.dekGeneration);
      Object.assign(keys, rootUserKeys(dek, entry.indexId));
      let signKey: Buffer;
      if (create) {
        const pair = generateSigningKey();
        keys.signSeed = pair.seed;
        signKey = pair.publicKey;
      } else {
        const opened = openSigningSeed(keys.admin!, entry.indexId, await store.readIndexValue(entry.indexId, 'admin'), name);
        keys.signSeed = opened.seed;
        signKey = opened.publicKey;
      }
      return store.forIndex(name, entry.indexId, keys, signKey, entry.dekGeneration, usersIdOf(entry));
    } catch (error) {
      if (keys) wipeIndexKeys(keys);
      throw error;
    } finally {
      dek.fill(0);
    }
  }

  /**
   * A user's open: the user's entry (found by an HMAC of the user key and id) unwraps U, which
   * opens the user's permissions, the public key the user trusts and the grant of the index's
   * current DEK generation. No KMS call: a user key is raw whatever the index's key source.
   */
  async #openAsUser(
    store: CatalogStore,
    userKey: Buffer,
    name: string,
    entry: CatalogEntry,
    userId: string,
  ): Promise<{ keys: IndexKeys; signKey: Uint8Array; access: HandleAccess }> {
    if (entry.signed !== true) {
      throw new InvalidKeyError(`Index "${name}" has no users (it was created before per-user keys): open it with its indexKey or KMS slot.`);
    }
    // User material is bound to the users id (the index id until a data-key rotation), the entry itself lives under the index id.
    const slot = userSlot(userKey, usersIdOf(entry), userId);
    const user = openUser({
      usersId: usersIdOf(entry),
      indexName: name,
      userId,
      userKey,
      generation: entry.dekGeneration,
      slot,
      value: await store.readIndexValue(entry.indexId, 'user', slot),
    });
    return { keys: user.keys, signKey: user.signKey, access: { role: 'user', userId, permissions: user.permissions, slot: slot.toString('hex') } };
  }

  /** Opens an index through `open`, shares its state with the other Clients of the store, and hands out this Client's handle. */
  async #handle(
    name: string,
    open: (release: () => void) => Promise<IndexState>,
    keySource: KeySource,
    access: HandleAccess,
    root: RootKeys | null,
  ): Promise<EncryptedIndex> {
    const shared = this.#sharedStore();
    let state: IndexState | undefined;
    try {
      state = await open(() => {
        if (state !== undefined) shared.forget(name, state); // closed, deleted or broken: the next loadIndex opens afresh
      });
    } catch (error) {
      root?.kek.fill(0);
      root?.dek.fill(0);
      throw error;
    }
    if (root) state.holdRoot(root);
    follow(state); // a shared (PostgreSQL) store: apply other processes' commits as they come
    return this.#attach(name, shared.track(name, state), keySource, access);
  }

  /** A handle of this Client on a shared index state; closing it lets go of this Client's share only. */
  #attach(name: string, held: SharedIndex, keySource: KeySource, access: HandleAccess): EncryptedIndex {
    const shared = this.#sharedStore();
    const key = handleKey(name, principalOf(access));
    held.handles++;
    const index: EncryptedIndex = new EncryptedIndex(
      held.state,
      () => {
        if (this.#open.get(key) === index) this.#open.delete(key);
        return shared.releaseHandle(held);
      },
      keySource,
      access,
      this.#kms,
    );
    this.#open.set(key, index);
    return index;
  }

  #checkParams<T extends object>(params: T): T {
    if (this.#closed) throw new ClosedError('This Client is closed. Create a new Client to open the store again.');
    if (!isPlainObject(params)) throw new ValidationError('Pass an options object, e.g. { indexName, indexKey }.', { path: 'params' });
    return params;
  }

  /**
   * `indexKey` (a checked copy, the caller wipes it) or `kmsName`, never both. `createIndex` needs one
   * of them; `loadIndex` may have neither (a KMS-backed index names its slot in its catalog entry).
   */
  #checkKeySource(p: { indexKey?: unknown; kmsName?: unknown }, required: boolean): KeyChoice {
    if (p.kmsName !== undefined && p.indexKey !== undefined) {
      throw new ValidationError('Pass exactly one of indexKey or kmsName, not both.', { path: 'indexKey' });
    }
    if (p.kmsName !== undefined) {
      if (typeof p.kmsName !== 'string' || p.kmsName.length === 0) {
        throw new ValidationError('kmsName must be the name of a slot in new Client({ kms }).', { path: 'kmsName' });
      }
      return { kmsName: p.kmsName };
    }
    if (p.indexKey === undefined) {
      if (!required) return {};
      throw new ValidationError('Pass exactly one of indexKey (a 32-byte key from Client.generateKey()) or kmsName (a slot of new Client({ kms })).', {
        path: 'indexKey',
      });
    }
    return { key: checkIndexKey(p.indexKey) };
  }

  /**
   * The envelope of a new KMS-backed index: draws the index id, wraps `kek` with the slot's provider
   * under the context (format, name, id, DEK generation 1), and records the slot, provider, key id
   * and region beside the wrapped KEK. One KMS call; the caller wipes `kek`.
   */
  async #createKmsEnvelope(kek: Buffer, name: string, kmsName: string): Promise<{ entry: CatalogEntry; dek: Buffer }> {
    const slot = resolveSlot(this.#kms, kmsName);
    const provider = await openProvider(kmsName, slot);
    try {
      const indexId = randomBytes(16);
      const context = kmsContext({ format: KMS_FORMAT_VERSION, indexName: name, indexId, dekGeneration: 1 });
      const { wrapped, keyId } = await provider.wrap(kek, context);
      return createEnvelope(
        kek,
        name,
        {
          provider: slot.provider,
          keyId: keyId ?? provider.source.keyId ?? null,
          kmsName,
          region: provider.source.region ?? null,
          wrappedKek: new Uint8Array(wrapped),
        },
        indexId,
        true,
      );
    } finally {
      await provider.close();
    }
  }

  /** An `indexKey` index: the key is required, and checked against the verifier. */
  #openWithKey(kek: Buffer | undefined, name: string, entry: CatalogEntry, kmsName: string | undefined): Buffer {
    if (kmsName !== undefined) {
      throw new ValidationError(`Index "${name}" is opened with its indexKey, not a KMS slot: pass indexKey instead of kmsName.`, { path: 'kmsName' });
    }
    if (kek === undefined) {
      throw new ValidationError(`Index "${name}" was created with an indexKey: pass it, { indexName, indexKey }.`, { path: 'indexKey' });
    }
    return openEnvelope(kek, name, entry);
  }

  /**
   * A KMS-backed index: its catalog entry names the slot; one unwrap by the slot's provider, bound to
   * the entry's context, yields the KEK, which then opens the envelope as an `indexKey` would. An
   * `indexKey` passed for it is refused (`InvalidKeyError`) without contacting the KMS.
   */
  async #openWithKms(key: Buffer | undefined, name: string, entry: CatalogEntry, kmsName: string | undefined): Promise<{ dek: Buffer; kek: Buffer }> {
    if (key !== undefined) {
      throw new InvalidKeyError(`Index "${name}" is held by KMS slot "${entry.kmsName ?? ''}": load it without indexKey, { indexName }.`);
    }
    const slotName = entry.kmsName ?? '';
    if (kmsName !== undefined && kmsName !== slotName) {
      throw new KmsError(`Index "${name}" is held by KMS slot "${slotName}", not "${kmsName}": load it with { indexName } alone.`);
    }
    const slot = resolveSlot(this.#kms, slotName);
    if (slot.provider !== entry.provider) {
      throw new KmsError(
        `KMS slot "${slotName}" is a ${slot.provider} slot, but index "${name}" was created through a ${entry.provider} slot of that name. Point the slot back at its key source.`,
      );
    }
    if (!(entry.wrappedKek instanceof Uint8Array)) throw new KmsError(`Index "${name}" has no wrapped key for KMS slot "${slotName}".`);
    let provider: KeyProvider | undefined;
    let kek: Uint8Array | undefined;
    try {
      provider = await openProvider(slotName, slot);
      const context = kmsContext({ format: entry.format, indexName: name, indexId: entry.indexId, dekGeneration: entry.dekGeneration });
      kek = await provider.unwrap(entry.wrappedKek, context);
      if (kek.byteLength !== 32) throw new KmsError(`KMS slot "${slotName}" returned a ${kek.byteLength}-byte key for index "${name}"; a key is 32 bytes.`);
      try {
        return { dek: openEnvelope(kek, name, entry), kek: Buffer.from(kek) };
      } catch (error) {
        if (error instanceof InvalidKeyError) {
          throw new KmsError(`KMS slot "${slotName}" returned a key that does not open index "${name}": the slot's key was replaced.`, { cause: error });
        }
        throw error;
      }
    } finally {
      kek?.fill(0);
      await provider?.close();
    }
  }

  /**
   * Our HNSW knobs, and CyborgDB's `IndexIVF` / `IndexIVFFlat` / `IndexIVFPQ`
   * / `IndexIVFSQ` shapes: `dimension` is taken, the type and IVF parameters
   * are recorded (the engine is HNSW for every type; docs/coming-from-cyborgdb.md).
   */
  #checkIndexConfig(config: unknown): { hnsw: HnswConfig; requested?: RequestedConfig; dimension?: number } {
    if (config === undefined) return { hnsw: { ...DEFAULT_INDEX_CONFIG } };
    if (!isPlainObject(config)) {
      throw new ValidationError(
        'indexConfig must be an object { type?, dimension?, connectivity?, expansionAdd?, expansionSearch?, nLists?, pqDim?, pqBits?, sqBits? }.',
        {
          path: 'indexConfig',
        },
      );
    }
    const known = new Set(['connectivity', 'expansionAdd', 'expansionSearch', 'type', 'dimension', 'nLists', 'pqDim', 'pqBits', 'sqBits']);
    for (const key of Object.keys(config)) {
      if (!known.has(key)) throw new ValidationError(`indexConfig.${key} is not a known option.`, { path: `indexConfig.${key}` });
    }
    if (config.type !== undefined && !INDEX_TYPES.includes(config.type as IndexType)) {
      throw new NotSupportedError(
        `indexConfig.type "${String(config.type)}" is not supported: use 'hnsw', or CyborgDB's 'ivf', 'ivfflat', 'ivfpq' or 'ivfsq'.`,
      );
    }
    const type = (config.type ?? 'hnsw') as IndexType;
    const pick = (key: 'connectivity' | 'expansionAdd' | 'expansionSearch', max: number) =>
      config[key] === undefined ? DEFAULT_INDEX_CONFIG[key] : checkPositiveInt(config[key], `indexConfig.${key}`, max);
    const hnsw = { connectivity: pick('connectivity', 256), expansionAdd: pick('expansionAdd', 65_536), expansionSearch: pick('expansionSearch', 65_536) };
    const dimension =
      config.dimension === undefined || config.dimension === null ? undefined : checkPositiveInt(config.dimension, 'indexConfig.dimension', 65_536);
    // IVF parameters: each only with the types that have it (CyborgDB's shapes), recorded as given.
    const applies: Record<'nLists' | 'pqDim' | 'pqBits' | 'sqBits', readonly IndexType[]> = {
      nLists: ['ivf', 'ivfflat', 'ivfpq', 'ivfsq'],
      pqDim: ['ivfpq'],
      pqBits: ['ivfpq'],
      sqBits: ['ivfsq'],
    };
    const requested: RequestedConfig = { type };
    for (const key of ['nLists', 'pqDim', 'pqBits', 'sqBits'] as const) {
      const value = config[key];
      if (value === undefined || value === null) continue;
      if (!applies[key].includes(type)) {
        throw new ValidationError(`indexConfig.${key} applies to type ${applies[key].map((t) => `'${t}'`).join(' or ')}, not '${type}'.`, {
          path: `indexConfig.${key}`,
        });
      }
      if (key === 'nLists' && value === 0) continue; // CyborgDB's "choose for me"
      requested[key] = checkPositiveInt(value, `indexConfig.${key}`, key === 'pqBits' || key === 'sqBits' ? 32 : 2 ** 32);
    }
    const out: { hnsw: HnswConfig; requested?: RequestedConfig; dimension?: number } = { hnsw };
    if (config.type !== undefined) out.requested = requested;
    if (dimension !== undefined) out.dimension = dimension;
    return out;
  }
}
