/**
 * `recoverIndex()`: copies every record of a damaged index that still
 * authenticates under its key into a fresh store, rebuilds the graph there,
 * and reports exactly what could not be recovered. The damaged store is never
 * written: its files are copied to a temporary directory, and only the copy is
 * opened (LevelDB writes its LOCK and log even to open, and may repair).
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, isAbsolute } from 'node:path';
import { expectedIds, salvageRecords } from '../core/salvage.js';
import { vectorOf } from '../core/vector-bytes.js';
import { constantTimeEqual } from '../crypto/kdf.js';
import { IndexNotFoundError, IntegrityError, ValidationError } from '../errors.js';
import { deriveIndexKeys, openEnvelope, wipeIndexKeys } from '../keys/envelope.js';
import { openSigningSeed, rootUserKeys } from '../keys/users.js';

/** A public key no signature verifies under: a signed index whose signing key is gone has no manifest to trust. */
const UNTRUSTED_SIGN_KEY = Buffer.alloc(32);
import { checkIndexKey } from '../keys/index-key.js';
import { KvStore } from '../storage/kv-store.js';
import { METRICS, type Manifest } from '../storage/manifest.js';
import { Store } from '../storage/store.js';
import type { RecoverOptions, RecoverReport } from './check-types.js';
import { Client } from './client.js';
import type { Metadata, VectorItem } from './types.js';
import { checkIndexName, checkOneOf, checkProgressOption, isPlainObject } from './validate.js';

/** Records per upsert into the new store. */
const BATCH = 1024;

/**
 * Recovers index `indexName` of the store at `path` into a new store at `to`
 * under the same key: every record that authenticates and belongs under its
 * id is copied, and the graph is built anew. The report counts what was
 * recovered, what was unreadable and what is known missing (ids only with
 * `includeIds`). The store at `path` is only read (its files are copied to a
 * temporary directory first); close any process using it first.
 * @throws `VECVAULT_VALIDATION` for bad options, or when `to` is not absent or empty, or lies inside `path`.
 * @throws `VECVAULT_INDEX_NOT_FOUND` when the store has no catalog entry of that name.
 * @throws `VECVAULT_INVALID_KEY` when the key does not open the index.
 * @throws `VECVAULT_INTEGRITY` when even a repaired copy of LevelDB cannot be opened, or the manifest is lost and no `metric` is given.
 * @throws `VECVAULT_IO` when the disk refuses a read or write.
 * @example
 * ```ts
 * const report = await recoverIndex({ path: damagedPath, to: newPath, indexName: 'notes', indexKey });
 * console.log(report.recovered, report.unreadable, report.missing);
 * ```
 */
export async function recoverIndex(options: RecoverOptions): Promise<RecoverReport> {
  if (!isPlainObject(options)) throw new ValidationError('Pass { path, to, indexName, indexKey }.', { path: 'options' });
  const o = options as unknown as RecoverOptions;
  for (const field of ['path', 'to'] as const) {
    if (typeof o[field] !== 'string' || o[field].length === 0) throw new ValidationError(`${field} must be a directory path.`, { path: field });
  }
  const name = checkIndexName(o.indexName);
  const onProgress = checkProgressOption({ onProgress: o.onProgress });
  const metricOverride = o.metric === undefined ? undefined : checkOneOf(o.metric, METRICS, 'metric');
  const from = resolve(o.path);
  const to = resolve(o.to);
  const inside = relative(from, to);
  if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside)))
    throw new ValidationError('to must be a new directory outside the damaged store.', { path: 'to' });
  if (existsSync(to) && (!statSync(to).isDirectory() || readdirSync(to).length > 0)) {
    throw new ValidationError(`${to} is not empty: recover writes into a new, empty directory.`, { path: 'to' });
  }
  if (!existsSync(join(from, 'store'))) throw new IndexNotFoundError(`${from} holds no vecvault store (no store/ directory).`);
  const kek = checkIndexKey(o.indexKey);

  const temp = mkdtempSync(join(tmpdir(), 'vecvault-recover-'));
  let store: Store | undefined;
  try {
    cpSync(join(from, 'store'), join(temp, 'store'), { recursive: true });
    if (existsSync(join(from, 'heads'))) cpSync(join(from, 'heads'), join(temp, 'heads'), { recursive: true });
    let repaired = false;
    try {
      store = await Store.open(temp);
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      await KvStore.repair(join(temp, 'store'));
      repaired = true;
      store = await Store.open(temp);
    }
    const entry = await store.catalogEntry(name);
    if (entry === undefined)
      throw new IndexNotFoundError(`No index named "${name}" in ${from} (its catalog entry, which holds the wrapped data key, is gone).`);
    const dek = openEnvelope(kek, name, entry);
    let keys;
    let signKey: Buffer | null = null;
    try {
      keys = deriveIndexKeys(dek, entry.indexId, entry.format);
      if (entry.signed === true) {
        // A signed index: records must carry writer tags, the manifest the root's signature (if its signing key is still there).
        const { admin, recordAuth } = rootUserKeys(dek, entry.indexId);
        keys.recordAuth = recordAuth;
        try {
          const opened = openSigningSeed(admin, entry.indexId, await store.readIndexValue(entry.indexId, 'admin'), name);
          opened.seed.fill(0);
          signKey = opened.publicKey;
        } catch {
          // the signing key is lost: the manifest cannot be trusted below, the tagged records still can
        } finally {
          admin.fill(0);
        }
      }
    } finally {
      dek.fill(0);
    }
    const indexStore = store.forIndex(name, entry.indexId, keys, signKey ?? (entry.signed === true ? UNTRUSTED_SIGN_KEY : null), entry.dekGeneration);
    try {
      let manifest: Manifest | null = null;
      try {
        manifest = await indexStore.readManifest({ checkHead: false });
      } catch {
        // lost or altered: the records are authenticated on their own
      }
      const metric = manifest?.metric ?? metricOverride;
      if (metric === undefined) {
        throw new IntegrityError(`The manifest of index "${name}" does not authenticate, so its metric is unknown: pass the metric (--metric) to recover it.`);
      }
      const expected = manifest?.count ?? null;
      const known = await expectedIds(indexStore, manifest);
      const digest = new Uint8Array(32);
      const status = { failed: false, dimension: manifest?.dimension ?? null };
      const recoveredIds = new Set<string>();
      let unreadable = 0;
      const client = new Client({ path: to });
      try {
        const index = await client.createIndex({
          indexName: name,
          indexKey: kek,
          dimension: status.dimension ?? undefined,
          metric,
          storagePrecision: manifest?.precision,
          indexConfig: manifest?.indexConfig,
        });
        let pending: VectorItem[] = [];
        const flush = async () => {
          if (pending.length === 0) return;
          await index.upsert({ items: pending });
          pending = [];
          onProgress?.({ done: recoveredIds.size, total: Math.max(expected ?? 0, recoveredIds.size) });
        };
        for await (const batch of salvageRecords(indexStore, status.dimension, digest, status)) {
          unreadable += batch.unreadable;
          for (const body of batch.records) {
            recoveredIds.add(body.id);
            const item: (typeof pending)[number] = { id: body.id, vector: vectorOf(body.vector) };
            if (body.metadata !== undefined && body.metadata !== null) item.metadata = body.metadata as Metadata;
            if (body.contents !== undefined) item.contents = body.contents;
            pending.push(item);
            if (pending.length >= BATCH) await flush();
          }
        }
        await flush();
      } finally {
        await client.close();
      }
      const lost = [...known].filter((id) => !recoveredIds.has(id));
      const report: RecoverReport = {
        indexName: name,
        recovered: recoveredIds.size,
        unreadable,
        expected,
        missing: expected === null ? null : Math.max(0, expected - recoveredIds.size),
        lostIds: lost.length,
        manifestReadable: manifest !== null,
        digestMatched: manifest !== null && !status.failed && recoveredIds.size === manifest.count && constantTimeEqual(digest, manifest.digest),
        repaired,
      };
      if (o.includeIds === true) report.ids = lost.sort();
      return report;
    } finally {
      wipeIndexKeys(keys);
    }
  } finally {
    kek.fill(0);
    await store?.close().catch(() => undefined);
    rmSync(temp, { recursive: true, force: true });
  }
}
