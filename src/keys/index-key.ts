/** Index keys (KEKs): generation, optional on-disk cache, and shape checks. */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fstatSync, fsyncSync, linkSync, mkdirSync, openSync, readSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { KEY_BYTES } from '../crypto/aead.js';
import { KeyCacheError, StorageError, ValidationError } from '../errors.js';

export interface GenerateKeyOptions {
  /**
   * Cache the key on disk and return the cached key on later calls (see
   * {@link generateKey} for the checks made on the cache).
   */
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
 * and the cached key is returned on later calls; concurrent callers (other
 * processes, worker threads) all get the one key that was saved.
 *
 * The cache directory is created with mode 0700 when absent. An existing one
 * must be a real directory (not a symbolic link) owned by the current user
 * and not writable by group or others; group/others may read and search it
 * (the key file itself is readable by its owner only, so a listing shows only its name). The
 * cache file must be a regular file (not a symbolic link, FIFO, device or
 * directory) owned by the current user, with no group/other permission bits
 * (0600 or 0400), holding exactly 32 bytes. Nothing is repaired: anything
 * else throws `KeyCacheError` and nothing is read from or written to the cache.
 *
 * A new key is written to a randomly named temp file created exclusively
 * (O_EXCL, O_NOFOLLOW, 0600) beside the cache, fsync'd, then published with
 * link(), which never replaces a key another caller published meanwhile
 * (that key is returned instead); the directory is fsync'd before any key is
 * returned, so a returned key survives a crash.
 *
 * @throws `VECVAULT_KEY_CACHE` (KeyCacheError) when the cache or its directory is unsafe, as above.
 * @throws `VECVAULT_IO` (StorageError) when the file system refuses a read or write (`cause.code` says which).
 * @throws `VECVAULT_VALIDATION` when `path` is not a non-empty string.
 */
export function generateKey(options: GenerateKeyOptions = {}): Uint8Array {
  if (!options.save) return new Uint8Array(randomBytes(KEY_BYTES));
  if (options.path !== undefined && (typeof options.path !== 'string' || options.path === '')) {
    throw new ValidationError('path must be a non-empty string naming the key cache file.', { path: 'path' });
  }
  const path = resolve(options.path ?? defaultKeyPath());
  const dir = openCacheDir(dirname(path));
  try {
    // A cache removed between link() failing with EEXIST and our read of it
    // sends us round again; it cannot keep happening without someone deleting it.
    for (let attempt = 0; attempt < 3; attempt++) {
      const key = readCachedKey(path) ?? publishKey(path);
      if (key === undefined) continue;
      // Our link(), or a racing caller's that may not have been fsync'd yet.
      syncDir(dir, dirname(path));
      return key;
    }
    throw new KeyCacheError(`The key cache ${path} keeps disappearing while it is read: another program is removing it. Stop it, then retry.`);
  } finally {
    closeSync(dir);
  }
}

const { O_CREAT, O_EXCL, O_WRONLY, O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;

/** Creates the cache directory (0700) if absent, checks it, and returns an open descriptor of it. */
function openCacheDir(dir: string): number {
  let created: string | undefined;
  try {
    created = mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    if (errno(error) === 'EEXIST' || errno(error) === 'ENOTDIR') throw notDirectory(dir, error);
    throw ioError(dir, 'created', error);
  }
  let fd: number;
  try {
    fd = openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (error) {
    if (errno(error) === 'ELOOP' || errno(error) === 'ENOTDIR') throw notDirectory(dir, error);
    throw ioError(dir, 'opened', error);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isDirectory()) throw notDirectory(dir);
    checkOwner(stats, dir, 'directory');
    if (stats.mode & 0o022) {
      throw new KeyCacheError(
        `The key cache directory ${dir} is writable by other users (mode ${(stats.mode & 0o777).toString(8)}), who could replace the key. Run: chmod go-w ${dir}`,
      );
    }
    // The directory's own entry (made by us or a racing caller) and those of the parents mkdir made must reach the disk too.
    for (let d = dir; ; d = dirname(d)) {
      syncPath(dirname(d));
      if (created === undefined || d === created || dirname(d) === d) break;
    }
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** The cached key, or undefined when there is none; KeyCacheError when the cache is not safe to use. */
function readCachedKey(path: string): Uint8Array | undefined {
  let fd: number;
  try {
    // O_NOFOLLOW: a symbolic link is refused (ELOOP). O_NONBLOCK: a FIFO opens at once instead of waiting for a writer.
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    if (errno(error) === 'ENOENT') return undefined;
    if (errno(error) === 'ELOOP' || errno(error) === 'ENXIO') throw notRegular(path, error); // ENXIO: a socket
    throw ioError(path, 'opened', error);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw notRegular(path);
    checkOwner(stats, path, 'file');
    if (stats.mode & 0o077) {
      throw new KeyCacheError(
        `The key cache ${path} is open to other users (mode ${(stats.mode & 0o777).toString(8)}): treat the key as exposed. Run: chmod 600 ${path}`,
      );
    }
    const bytes = Buffer.alloc(KEY_BYTES + 1);
    let length = 0;
    if (stats.size === KEY_BYTES) {
      try {
        for (let n = -1; n !== 0 && length < bytes.byteLength; length += n) n = readSync(fd, bytes, length, bytes.byteLength - length, null);
      } catch (error) {
        throw ioError(path, 'read', error);
      }
    }
    if (length !== KEY_BYTES) {
      bytes.fill(0);
      throw new KeyCacheError(`The key cache ${path} does not hold a ${KEY_BYTES}-byte key. Move it aside to generate a new one.`);
    }
    const key = new Uint8Array(bytes.subarray(0, KEY_BYTES));
    bytes.fill(0);
    return key;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a fresh key to a new temp file and publishes it at `path` with
 * link(). Returns the key now cached there: ours, or the one a racing caller
 * published first (undefined if that one vanished before we could read it).
 */
function publishKey(path: string): Uint8Array | undefined {
  const key = new Uint8Array(randomBytes(KEY_BYTES));
  const tmp = `${path}.${randomBytes(12).toString('hex')}.tmp`;
  let fd: number;
  try {
    fd = openSync(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0o600);
  } catch (error) {
    throw ioError(tmp, 'created', error);
  }
  try {
    try {
      fchmodSync(fd, 0o600); // whatever the umask
      for (let at = 0; at < key.byteLength;) at += writeSync(fd, key, at, key.byteLength - at);
      fsyncSync(fd);
    } catch (error) {
      throw ioError(tmp, 'written', error);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, path);
    } catch (error) {
      if (errno(error) === 'EEXIST') return readCachedKey(path); // another caller won: theirs is the key
      throw ioError(path, 'written', error);
    }
    return key;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Already gone; a leftover temp file is only a second name of a key.
    }
  }
}

function checkOwner(stats: Stats, path: string, what: 'file' | 'directory'): void {
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw new KeyCacheError(
      `The key cache ${what} ${path} belongs to another user (uid ${stats.uid}), who could read or replace the key. Remove it, or use another path.`,
    );
  }
}

function syncDir(fd: number, dir: string): void {
  try {
    fsyncSync(fd);
  } catch (error) {
    throw ioError(dir, 'synced', error);
  }
}

/** fsync a parent directory the process may not be able to open (no read permission): then nothing better can be done. */
function syncPath(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, O_RDONLY | O_DIRECTORY);
  } catch {
    return;
  }
  try {
    syncDir(fd, dir);
  } finally {
    closeSync(fd);
  }
}

function notDirectory(dir: string, cause?: unknown): KeyCacheError {
  return new KeyCacheError(`The key cache directory ${dir} is not a directory (a symbolic link or a file). Remove it, or use another path.`, { cause });
}

function notRegular(path: string, cause?: unknown): KeyCacheError {
  return new KeyCacheError(
    `The key cache ${path} is not a regular file (a symbolic link, FIFO, socket, device or directory). Remove it, or use another path.`,
    { cause },
  );
}

function ioError(path: string, verb: string, cause: unknown): StorageError {
  return new StorageError(`The key cache ${path} could not be ${verb} (${errno(cause) ?? 'error'}). Fix the disk or the permissions, then retry.`, { cause });
}

function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
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
