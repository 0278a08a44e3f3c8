/**
 * Store directories open in this process, shared by every `Client` on the
 * same path: apps build clients per request or per module (CyborgDB's own
 * LangChain store makes one per call), and LevelDB's lock admits one opener
 * per directory. Each Client holds one reference; the store closes when the
 * last one is released. Open indexes are shared the same way: one
 * `IndexState` per index, one handle per `loadIndex`/`createIndex` caller, so
 * every handle sees every write at once. Across processes the lock stays
 * (`StoreLockedError`).
 */
import type { IndexState } from '../core/index-state.js';
import { closeIndex } from '../core/maintenance.js';
import type { CatalogStore } from '../storage/store.js';

/** One open index and how many handles (over every Client of the store) hold it. */
export interface SharedIndex {
  readonly state: IndexState;
  handles: number;
}

export class SharedStore {
  /** By resolved path. A symlinked alias of a directory is another path: it meets the lock. */
  static readonly #open = new Map<string, SharedStore>();
  /** Stores whose last Client is closing them: a new open waits until LevelDB's lock is free. */
  static readonly #closing = new Map<string, Promise<void>>();

  readonly store: Promise<CatalogStore>;
  /** Open indexes by name; an entry leaves when its state is released (closed, deleted, broken). */
  readonly indexes = new Map<string, SharedIndex>();
  #clients = 0;
  #catalogTail: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly root: string,
    open: () => Promise<CatalogStore>,
  ) {
    const previous = SharedStore.#closing.get(root) ?? Promise.resolve();
    this.store = previous.then(open);
    // A failed open (e.g. locked by another process) is not kept: the next acquire tries again.
    this.store.catch(() => {
      if (SharedStore.#open.get(root) === this) SharedStore.#open.delete(root);
    });
  }

  /** A reference to the store at `root` (a path, or a PostgreSQL store's key), opening it with `open` (lazily, once) if no Client of this process has. */
  static acquire(root: string, open: () => Promise<CatalogStore>): SharedStore {
    let shared = SharedStore.#open.get(root);
    if (!shared) {
      shared = new SharedStore(root, open);
      SharedStore.#open.set(root, shared);
    }
    shared.#clients++;
    return shared;
  }

  /** Drops one Client's reference; the last one closes the store (resolves once LevelDB's lock is free). */
  release(): Promise<void> {
    if (--this.#clients > 0) return Promise.resolve();
    if (SharedStore.#open.get(this.root) === this) SharedStore.#open.delete(this.root);
    const closing = this.store.then(
      (store) => store.close(),
      () => undefined,
    );
    SharedStore.#closing.set(this.root, closing);
    void closing.finally(() => {
      if (SharedStore.#closing.get(this.root) === closing) SharedStore.#closing.delete(this.root);
    });
    return closing;
  }

  /** Catalog changes (create/load/delete) run one at a time over every Client of the store. */
  exclusive<T>(fn: (store: CatalogStore) => Promise<T>): Promise<T> {
    const run = this.#catalogTail.then(async () => fn(await this.store));
    this.#catalogTail = run.catch(() => undefined);
    return run;
  }

  /** Tracks a freshly opened state: released states leave the table (the next loadIndex opens afresh). */
  track(name: string, state: IndexState): SharedIndex {
    const entry: SharedIndex = { state, handles: 0 };
    this.indexes.set(name, entry);
    return entry;
  }

  /**
   * Called by a state when it stops being handed out. A state that is closing
   * stays listed until it is released, so a loadIndex meanwhile waits for its
   * snapshot instead of opening a second state beside it.
   */
  forget(name: string, state: IndexState): void {
    if (state.isOpen && state.closing !== null) return;
    if (this.indexes.get(name)?.state === state) this.indexes.delete(name);
  }

  /**
   * One handle of `entry` let go (after its own calls settled). The last one
   * closes the index: waits for every call on it, snapshots if changed, wipes
   * its keys.
   */
  async releaseHandle(entry: SharedIndex): Promise<void> {
    const state = entry.state;
    if (--entry.handles > 0) return;
    state.closing ??= state.callsSettled().then(() => closeIndex(state));
    return state.closing;
  }
}
