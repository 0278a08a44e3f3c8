/** Index keys (KEKs): generation, optional on-disk cache, and shape checks. */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { KEY_BYTES } from '../crypto/aead.js';
import { ValidationError } from '../errors.js';

export interface GenerateKeyOptions {
  /** Cache the key on disk (mode 0600) and return the cached key on later calls. */
  save?: boolean;
  /** Cache file; defaults to `~/.vecvault/index_key`. */
  path?: string;
}

/** @internal Where `generateKey({ save: true })` caches the key by default. */
export function defaultKeyPath(): string {
  return join(homedir(), '.vecvault', 'index_key');
}

/**
 * 32 bytes from the OS CSPRNG. With `save: true` the key is cached at `path`
 * (directory 0700, file 0600) and the cached key is returned on later calls.
 */
export function generateKey(options: GenerateKeyOptions = {}): Uint8Array {
  if (!options.save) return new Uint8Array(randomBytes(KEY_BYTES));
  const path = options.path ?? defaultKeyPath();
  if (existsSync(path)) return readCachedKey(path);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const key = new Uint8Array(randomBytes(KEY_BYTES));
  // Written in full to a private temp file, then published with link(), which
  // refuses to replace a key another process cached meanwhile: no reader can
  // ever see a half-written key.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, key, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  try {
    linkSync(tmp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readCachedKey(path);
    throw error;
  } finally {
    rmSync(tmp, { force: true });
  }
  return key;
}

function readCachedKey(path: string): Uint8Array {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new ValidationError(`The cached key file ${path} is readable by other users (mode ${mode.toString(8)}). Run: chmod 600 ${path}`, { path: 'path' });
  }
  const bytes = readFileSync(path);
  if (bytes.byteLength !== KEY_BYTES) {
    throw new ValidationError(`The cached key file ${path} does not hold a ${KEY_BYTES}-byte key. Move it aside to generate a new one.`, { path: 'path' });
  }
  return new Uint8Array(bytes);
}

/** @internal Checks that `key` is a 32-byte Uint8Array and returns a private copy. */
export function checkIndexKey(key: unknown, path = 'indexKey'): Buffer {
  if (!(key instanceof Uint8Array)) {
    throw new ValidationError(`${path} must be a Uint8Array of ${KEY_BYTES} bytes (use Client.generateKey()).`, { path });
  }
  if (key.byteLength !== KEY_BYTES) {
    throw new ValidationError(`${path} must be exactly ${KEY_BYTES} bytes, got ${key.byteLength}.`, { path });
  }
  return Buffer.from(key);
}
