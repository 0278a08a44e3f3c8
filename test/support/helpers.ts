/**
 * Shared test helpers: temp stores, raw LevelDB access, error assertions. Real
 * components only. Generated data, distances and exact search live in
 * ./vectors.ts (re-exported here for existing imports).
 */
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { afterEach, expect } from 'vitest';
import { KmsError } from '../../src/errors.js';
import type { CatalogEntry } from '../../src/keys/envelope.js';
import { catalogKey } from '../../src/storage/layout.js';
import { encodeIdList, splitIdList, type IdBytes } from '../../src/storage/sealed.js';
import { unpack } from '../../src/util/msgpack.js';

export { bruteForce, cosineDistance, l2, randomVectors } from './vectors.js';

const dirs: string[] = [];
const cleanups: (() => unknown)[] = [];

/** A fresh directory removed after the test. */
export function tempStore(prefix = 'vecvault-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** Runs `fn` after the test (latest first), before its temp directories are removed. */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

afterEach(async () => {
  try {
    while (cleanups.length) await cleanups.pop()!();
  } finally {
    cleanups.length = 0;
    while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
  }
});

/** Raw LevelDB of a closed store, for tampering tests. */
export async function rawStore(path: string): Promise<ClassicLevel<Uint8Array, Uint8Array>> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(join(path, 'store'), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  return db;
}

/** All record entries ('I' id 'R' ...) in the raw store, grouped by index id (hex). */
export async function rawRecords(db: ClassicLevel<Uint8Array, Uint8Array>): Promise<{ key: Uint8Array; value: Uint8Array; indexId: string }[]> {
  const out: { key: Uint8Array; value: Uint8Array; indexId: string }[] = [];
  for await (const [key, value] of db.iterator()) {
    if (key[0] === 0x49 && key[17] === 0x52) out.push({ key, value, indexId: Buffer.from(key.subarray(1, 17)).toString('hex') });
  }
  return out;
}

/** Asserts a promise rejects with a VecvaultError of `code` (never matches message text). */
export async function rejectsWithCode(promise: Promise<unknown> | (() => unknown), code: string): Promise<Error> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    if ((error as { code?: string }).code !== code) throw new Error(`expected ${code}, got ${(error as { code?: string }).code}: ${(error as Error).message}`);
    return error as Error;
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}

/**
 * A `.mjs` entry for `new Worker()` that runs the TypeScript module `file`:
 * workers do not inherit tsx's loader, so it registers tsx first. Written into `dir`.
 */
export function tsWorkerBoot(dir: string, file: string): string {
  const tsxApi = createRequire(import.meta.url)
    .resolve('tsx/esm/api')
    .replace(/\.cjs$/, '.mjs');
  const boot = join(dir, 'boot.mjs');
  writeFileSync(
    boot,
    `import { register } from ${JSON.stringify(pathToFileURL(tsxApi).href)};\nregister();\nawait import(${JSON.stringify(pathToFileURL(file).href)});\n`,
  );
  return boot;
}

/** Asserts a `KmsError` (`VECVAULT_KMS`); `cause`: true = it keeps a cause, a string = the cause's `name`. */
export async function rejectsKmsError(promise: Promise<unknown>, cause: boolean | string = false): Promise<KmsError> {
  const error = await rejectsWithCode(promise, 'VECVAULT_KMS');
  expect(error).toBeInstanceOf(KmsError);
  if (cause !== false) expect(error.cause).toBeDefined();
  if (typeof cause === 'string') expect(error.cause).toMatchObject({ name: cause });
  return error as KmsError;
}

/** Index `name`'s catalog entry as stored, decoded without checks (byte fields as plain Uint8Arrays), from a closed store. */
export async function rawCatalogEntry(path: string, name: string): Promise<CatalogEntry> {
  const db = await rawStore(path);
  try {
    const e = unpack((await db.get(catalogKey(name)))!) as CatalogEntry;
    return {
      ...e,
      indexId: new Uint8Array(e.indexId),
      salt: new Uint8Array(e.salt),
      verifier: new Uint8Array(e.verifier),
      wrappedDek: new Uint8Array(e.wrappedDek),
    };
  } finally {
    await db.close();
  }
}

/** Every regular file under `dir`, recursively (symlinks not followed). */
export function filesUnder(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const st = lstatSync(full);
    if (st.isDirectory()) filesUnder(full, out);
    else if (st.isFile()) out.push(full);
  }
  return out;
}

/** Every regular file under `dir`, concatenated: for byte scans of a store. */
export function allBytes(dir: string): Buffer {
  return Buffer.concat(filesUnder(dir).map((file) => readFileSync(file)));
}

/** `ids` in a snapshot table's stored form (see encodeIdList), as LiveTable.restore takes them. */
export function idBytesOf(ids: string[]): IdBytes {
  return splitIdList(encodeIdList(ids), ids.length);
}
