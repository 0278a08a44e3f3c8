/**
 * Indexes as a release before signed commits (per-user keys) wrote them: the
 * tests of older formats (format-1 catalogs, snapshots without write ids)
 * start from an index this version created, which is signed, and turn it
 * into what such a release would have left: no `signed` in the catalog entry
 * (the DEK re-wrapped under the AAD without it), a version-1 manifest without
 * snapshot hashes, version-2 records (no writer tag), no per-user entries.
 * Only for `indexKey` indexes of catalog format 2, on a closed store.
 */
import { deriveKey, frame, u64 } from '../../src/crypto/kdf.js';
import { seal } from '../../src/crypto/aead.js';
import { deriveIndexKeys, openEnvelope, type CatalogEntry } from '../../src/keys/envelope.js';
import { openManifest, sealManifest, type Manifest } from '../../src/storage/manifest.js';
import { pack, unpack } from '../../src/util/msgpack.js';
import { catalogKey, indexKey, MANIFEST } from '../../src/storage/layout.js';
import { rawCatalogEntry, rawStore } from './helpers.js';

/** A signed manifest value (`0x02 ‖ signature ‖ seal`) as the unsigned version 1 (`0x01 ‖ seal`), for tests that read manifests raw. */
export function asUnsignedManifest(raw: Uint8Array): Buffer {
  return raw[0] === 2 ? Buffer.concat([Buffer.of(1), raw.subarray(65)]) : Buffer.from(raw);
}

/**
 * Index `name`'s committed manifest in a closed store (its signature, if any, not checked), the raw value, and
 * ways to put a replacement and to seal one (unsigned, version 1).
 */
export async function manifestOf(path: string, key: Uint8Array, name: string) {
  const entry = await rawCatalogEntry(path, name);
  const keys = deriveIndexKeys(openEnvelope(key, name, entry), entry.indexId);
  const at = indexKey(entry.indexId, MANIFEST);
  const db = await rawStore(path);
  try {
    const raw = (await db.get(at))!;
    const manifest = openManifest(keys.manifest, entry.indexId, asUnsignedManifest(raw), name);
    const put = async (value: Uint8Array) => {
      const again = await rawStore(path);
      await again.put(at, value);
      await again.close();
    };
    return { manifest, raw, put, seal: (m: Manifest) => sealManifest(keys.manifest, entry.indexId, m) };
  } finally {
    await db.close();
  }
}

export async function makeUnsigned(path: string, name: string, key: Uint8Array): Promise<void> {
  const db = await rawStore(path);
  try {
    const entry = unpack((await db.get(catalogKey(name)))!) as CatalogEntry & { signed?: true };
    if (entry.signed !== true) return;
    const fixed: CatalogEntry = {
      ...entry,
      indexId: new Uint8Array(entry.indexId),
      salt: new Uint8Array(entry.salt),
      verifier: new Uint8Array(entry.verifier),
      wrappedDek: new Uint8Array(entry.wrappedDek),
    };
    const dek = openEnvelope(key, name, fixed);
    const id = fixed.indexId;
    const { signed: _signed, ...rest } = fixed;
    const aad = frame('dek', u64(rest.format), name, id, u64(rest.dekGeneration), rest.provider, rest.keyId ?? '');
    const unsignedEntry = { ...rest, wrappedDek: seal(deriveKey(key, fixed.salt, 'wrap'), dek, aad) };
    const manifestKey = deriveKey(dek, id, 'manifest');
    const prefix = Buffer.concat([Buffer.of(0x49), id]);
    const ops: { type: 'put' | 'del'; key: Uint8Array; value?: Uint8Array }[] = [{ type: 'put', key: catalogKey(name), value: pack(unsignedEntry) }];
    for await (const [k, value] of db.iterator({ gte: prefix, lt: Buffer.concat([prefix, Buffer.of(0xff)]) })) {
      const kind = k[17];
      if (kind === 0x4d) {
        const manifest = openManifest(manifestKey, id, asUnsignedManifest(value), name);
        if (manifest.snapshot) {
          delete manifest.snapshot.graphHash;
          delete manifest.snapshot.tableHash;
          delete manifest.snapshot.chunkMacs;
        }
        ops.push({ type: 'put', key: k, value: sealManifest(manifestKey, id, manifest) });
      } else if (kind === 0x52 && value[0] === 3) {
        ops.push({ type: 'put', key: k, value: Buffer.concat([Buffer.of(2), value.subarray(33)]) });
      } else if (kind === 0x41 || kind === 0x44 || kind === 0x55) {
        ops.push({ type: 'del', key: k });
      }
    }
    await db.batch(ops as never);
  } finally {
    await db.close();
  }
}
