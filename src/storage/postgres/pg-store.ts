/**
 * A store in PostgreSQL (`new Client({ store: { kind: 'postgres', connectionString, schema? } })`):
 * the catalog and every index's values in one table (pg-kv.ts), shared by any
 * number of processes on any number of hosts. `pg` is an optional peer
 * dependency, imported only here, when such a store opens.
 *
 * What changes against the LevelDB store:
 * - No store lock: many processes open the same index. Commits compare-and-set
 *   the manifest counter (ConflictError when another process committed first),
 *   and every open index follows the commits of the others (core/follow.ts),
 *   woken by LISTEN/NOTIFY with polling as a fallback.
 * - The commit head is kept in memory per process (the newest counter this
 *   process saw of each index): a database rolled back below it is an
 *   IntegrityError while the process runs; a rollback before a process starts
 *   cannot be told (README, "PostgreSQL").
 * - Snapshots are written by one process at a time (a session advisory lock
 *   per index); readers keep working meanwhile.
 */
import type { Client as PgClient, Pool } from 'pg';
import { ConflictError, NotSupportedError, StorageError } from '../../errors.js';
import type { PostgresStoreOptions } from '../../api/types.js';
import type { CatalogEntry, IndexKeys } from '../../keys/envelope.js';
import { IndexStore, type CommitBatch, type CommitHead, type RemoteCommits } from '../index-store.js';
import type { SectionSink } from '../snapshot.js';
import type { Manifest, SnapshotRef } from '../manifest.js';
import { KvCatalog, type CatalogStore } from '../store.js';
import type { ChangeEntry } from '../sealed.js';
import { CHANNEL, PgKv, pgFailure } from './pg-kv.js';

type PgModule = typeof import('pg');

async function loadPg(): Promise<PgModule> {
  try {
    const mod = (await import('pg')) as PgModule & { default?: PgModule };
    return mod.default ?? mod;
  } catch (cause) {
    throw new NotSupportedError('A PostgreSQL store needs the package pg: run `npm install pg`.', { cause });
  }
}

/** The per-process commit head of one index: the newest counter this process committed or read. */
class MemoryHead implements CommitHead {
  constructor(
    private readonly heads: Map<string, number>,
    private readonly id: string,
  ) {}
  async create(counter: number): Promise<void> {
    this.heads.set(this.id, counter);
  }
  read(): number {
    return this.heads.get(this.id) ?? 0;
  }
  async update(counter: number): Promise<void> {
    if (counter > this.read()) this.heads.set(this.id, counter);
  }
  async markDeleting(): Promise<void> {}
  remove(): void {
    this.heads.delete(this.id);
  }
  sibling(indexId: Uint8Array): MemoryHead {
    return new MemoryHead(this.heads, Buffer.from(indexId).toString('hex'));
  }
}

/** Routes NOTIFY payloads (`schema:index id:counter`) to the indexes open in this process. */
class Listener {
  private client: PgClient | null = null;
  private connecting: Promise<void> | null = null;
  private readonly subscribers = new Map<string, Set<(counter?: number) => void>>();
  private closed = false;

  constructor(
    private readonly pg: PgModule,
    private readonly connectionString: string,
  ) {}

  subscribe(topic: string, wake: (counter?: number) => void): () => void {
    let set = this.subscribers.get(topic);
    if (!set) this.subscribers.set(topic, (set = new Set()));
    set.add(wake);
    this.ensure();
    return () => set.delete(wake);
  }

  /** Connects (again, after a failure) in the background; polling covers the gap. */
  ensure(): void {
    if (this.closed || this.client || this.connecting) return;
    const client = new this.pg.Client({ connectionString: this.connectionString });
    client.on('error', () => this.drop(client));
    client.on('end', () => this.drop(client));
    client.on('notification', (msg) => {
      if (msg.channel !== CHANNEL || !msg.payload) return;
      const cut = msg.payload.lastIndexOf(':');
      const counter = Number(msg.payload.slice(cut + 1));
      for (const wake of this.subscribers.get(msg.payload.slice(0, cut)) ?? []) wake(counter);
    });
    this.connecting = client
      .connect()
      .then(() => client.query(`LISTEN ${CHANNEL}`))
      .then(() => {
        if (this.closed) return void client.end().catch(() => undefined);
        this.client = client;
        // Anything committed while not listening: every subscriber checks once.
        for (const set of this.subscribers.values()) for (const wake of set) wake();
      })
      .catch(() => this.drop(client))
      .finally(() => {
        this.connecting = null;
      });
  }

  private drop(client: PgClient): void {
    if (this.client === client) this.client = null;
    client.end().catch(() => undefined);
    // Listen again once the server is back (polling covers the gap).
    if (!this.closed && [...this.subscribers.values()].some((set) => set.size > 0)) setTimeout(() => this.ensure(), 1000).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.connecting;
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }
}

export class PgStore extends KvCatalog<PgKv> implements CatalogStore {
  /** Per-process commit heads by index id (hex): a reload in this process still sees a rollback. */
  private readonly heads = new Map<string, number>();

  private constructor(
    kv: PgKv,
    private readonly listener: Listener,
  ) {
    super(kv);
  }

  static async open(options: PostgresStoreOptions): Promise<PgStore> {
    const pg = await loadPg();
    // Open connections keep the host process alive until client.close() (README). pg's allowExitOnIdle
    // was tried: child processes then exited mid-call with code 13 (an unsettled top-level await).
    const pool: Pool = new pg.Pool({ connectionString: options.connectionString, max: 4, idleTimeoutMillis: 10_000 });
    pool.on('error', () => undefined); // an idle connection dropped by the server: the next query reconnects
    const kv = new PgKv(pool, options.schema ?? 'vecvault');
    try {
      await kv.init();
    } catch (error) {
      await kv.close();
      throw error instanceof StorageError ? error : pgFailure('open the store', error);
    }
    return new PgStore(kv, new Listener(pg, options.connectionString));
  }

  /**
   * Nothing to survey: no head files, and the catalog and the data share one
   * transactional table, so a lost catalog entry with data left behind comes
   * only from tampering (which the per-index checks do not cover by name).
   */
  async checkAbsent(): Promise<void> {}

  forIndex(
    name: string,
    indexId: Uint8Array,
    keys: IndexKeys,
    signKey: Uint8Array | null = null,
    dekGeneration = 1,
    usersId: Uint8Array = indexId,
  ): IndexStore {
    const hex = Buffer.from(indexId).toString('hex');
    return new PgIndexStore(
      this.kv,
      name,
      indexId,
      keys,
      new MemoryHead(this.heads, hex),
      this.listener,
      `${this.kv.schema}:${hex}`,
      signKey,
      dekGeneration,
      usersId,
    );
  }

  async close(): Promise<void> {
    await this.listener.close();
    await this.kv.close();
  }
}

/**
 * One index in PostgreSQL: IndexStore over PgKv, plus what sharing needs:
 * the remote counter and wake-ups for followers, and snapshots written under
 * an advisory lock, only on top of the newest commit.
 */
class PgIndexStore extends IndexStore {
  /** The newest commit this handle read or wrote. */
  private known = -1;
  /** The connection holding the snapshot lock, from writeSnapshot until commitSnapshot ends. */
  private snapshotLock: { release: () => Promise<void> } | null = null;

  constructor(
    private readonly pgKv: PgKv,
    indexName: string,
    indexId: Uint8Array,
    keys: IndexKeys,
    head: CommitHead,
    listener: Listener,
    topic: string,
    signKey: Uint8Array | null,
    dekGeneration: number,
    usersId: Uint8Array,
  ) {
    super(pgKv, indexName, indexId, keys, head, signKey, dekGeneration, usersId);
    const remote: RemoteCommits = {
      counter: () => pgKv.counter(this.manifestKey()),
      subscribe: (wake) => listener.subscribe(topic, wake),
      takeTurn: () => pgKv.takeTurn(this.manifestKey()),
    };
    this.remote = remote;
  }

  override async readManifest(options?: { checkHead?: boolean }): Promise<Manifest> {
    const manifest = await super.readManifest(options);
    this.known = manifest.counter;
    if (options?.checkHead !== false) await this.head.update(manifest.counter);
    return manifest;
  }

  override async create(manifest: Manifest, catalogEntry: CatalogEntry): Promise<void> {
    await super.create(manifest, catalogEntry);
    this.known = manifest.counter;
  }

  override async commit(next: Manifest, batch: CommitBatch, options?: { change?: ChangeEntry; durable?: () => void }): Promise<void> {
    await super.commit(next, batch, options);
    this.known = next.counter;
  }

  override async writeSnapshot(
    generation: number,
    graph: (chunkBytes: number, sink: SectionSink) => Promise<unknown>,
    table: () => Promise<readonly Uint8Array[]>,
  ): Promise<Omit<SnapshotRef, 'counter'>> {
    await this.lockSnapshots();
    try {
      // Only on top of the newest commit: a stale writer would clear the chunks of a generation another process committed.
      if ((await this.pgKv.counter(this.manifestKey())) !== this.known) {
        throw new ConflictError(`Index "${this.indexName}" changed in another process; the snapshot is left to the next one.`);
      }
      return await super.writeSnapshot(generation, graph, table);
    } catch (error) {
      await this.unlockSnapshots();
      throw error;
    }
  }

  override async commitSnapshot(next: Manifest, previous: SnapshotRef | null, durable: () => void): Promise<void> {
    try {
      await super.commitSnapshot(next, previous, durable);
    } finally {
      await this.unlockSnapshots();
    }
  }

  private async lockSnapshots(): Promise<void> {
    let client;
    try {
      client = await this.pgKv.pool.connect();
    } catch (cause) {
      throw pgFailure('lock the snapshot', cause);
    }
    const key = `vecvault:snapshot:${this.pgKv.schema}:${Buffer.from(this.indexId).toString('hex')}`;
    let got = false;
    try {
      got = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [key])).rows[0]!.ok;
    } catch (cause) {
      client.release(true);
      throw pgFailure('lock the snapshot', cause);
    }
    if (!got) {
      client.release();
      throw new ConflictError(`Another process is writing a snapshot of index "${this.indexName}"; this one is skipped.`);
    }
    this.snapshotLock = {
      release: async () => {
        try {
          await client.query('SELECT pg_advisory_unlock(hashtext($1))', [key]);
          client.release();
        } catch {
          client.release(true); // a closed session drops its advisory locks
        }
      },
    };
  }

  private async unlockSnapshots(): Promise<void> {
    const lock = this.snapshotLock;
    this.snapshotLock = null;
    await lock?.release();
  }
}
