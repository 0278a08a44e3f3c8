/**
 * Helpers of the rotation tests: a custom KMS slot (AES-256-GCM under an
 * application secret, the context as AAD), byte scans of every file of a
 * store, raw reads of its catalog entry and of every value of one index.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CatalogEntry } from '../../src/keys/envelope.js';
import type { CustomSlot, EncryptedIndex } from '../../src/index.js';
import { catalogKey, indexRange } from '../../src/storage/layout.js';
import { unpack } from '../../src/util/msgpack.js';
import { filesUnder, rawStore } from './helpers.js';

export { filesUnder };

/** A custom slot; `fail` makes wrapKey throw (a refusing key source); `seen` records every key it was asked to wrap. */
export function customSlot(secret: Buffer = randomBytes(32), opts: { keyId?: string; fail?: () => boolean; seen?: Buffer[] } = {}): CustomSlot {
  return {
    provider: 'custom',
    keyId: opts.keyId ?? 'app-keychain/1',
    async wrapKey(key, context) {
      if (opts.fail?.()) throw new Error('keychain locked');
      opts.seen?.push(Buffer.from(key));
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', secret, iv).setAAD(context);
      const body = Buffer.concat([cipher.update(key), cipher.final()]);
      return Buffer.concat([iv, body, cipher.getAuthTag()]);
    },
    async unwrapKey(wrapped, context) {
      const w = Buffer.from(wrapped);
      const decipher = createDecipheriv('aes-256-gcm', secret, w.subarray(0, 12)).setAAD(context);
      decipher.setAuthTag(w.subarray(w.length - 16));
      return Buffer.concat([decipher.update(w.subarray(12, w.length - 16)), decipher.final()]);
    },
  };
}

/** How many of `needles` occur in some file under `dir`. */
export function countFound(dir: string, needles: Buffer[]): number {
  const contents = filesUnder(dir).map((file) => readFileSync(file));
  return needles.filter((needle) => contents.some((bytes) => bytes.includes(needle))).length;
}

/** The catalog entry of `name` as stored (open the store raw: its Client must be closed). */
export async function rawCatalogEntry(path: string, name: string): Promise<CatalogEntry> {
  const db = await rawStore(path);
  try {
    return unpack((await db.get(catalogKey(name)))!) as CatalogEntry;
  } finally {
    await db.close();
  }
}

/**
 * What must vanish with a generation of index `name` (its Client closed):
 * the wrapped DEK, the wrapped KEK (KMS) and 24 ciphertext bytes of every
 * value under its index id (random, so unique).
 */
export async function sampleGeneration(path: string, name: string): Promise<{ entry: CatalogEntry; needles: Buffer[] }> {
  const db = await rawStore(path);
  try {
    const entry = unpack((await db.get(catalogKey(name)))!) as CatalogEntry;
    const needles: Buffer[] = [Buffer.from(entry.wrappedDek)];
    if (entry.wrappedKek) needles.push(Buffer.from(entry.wrappedKek));
    for await (const [, value] of db.iterator(indexRange(entry.indexId))) {
      if (value.byteLength >= 40) needles.push(Buffer.from(value.subarray(value.byteLength - 40, value.byteLength - 16)));
    }
    return { entry, needles };
  } finally {
    await db.close();
  }
}

/** Every id's vector and contents as `get` returns them, for comparing an index before and after. */
export async function contentsOf(index: EncryptedIndex, ids: string[]): Promise<string[]> {
  const got = await index.get({ ids, include: ['vector', 'contents', 'metadata'] });
  return got.map((r) => JSON.stringify([r.id, r.vector, r.contents, r.metadata]));
}
