/**
 * Commit heads, kept outside LevelDB: one small file per index holding the
 * newest commit counter the process acknowledged. LevelDB silently drops
 * committed batches after a corrupted log byte (docs/architecture.md), which
 * leaves an older but self-consistent store; comparing its manifest counter
 * with the head exposes that, and a rollback of the LevelDB files alone.
 *
 * Format 2 (written now): `0x02 ‖ state ‖ name length (u16) ‖ index name ‖
 * seal(counter)`. The counter is sealed (AES-256-GCM under a subkey of the
 * index's head key; the AAD binds index id, version, state and name), so the
 * number of commits is not readable. The index name and the state
 * (creating / live / deleting) are in the clear, like the catalog's names:
 * without any key they tell a head whose catalog entry vanished
 * (`peekHeads`) from one left by an interrupted create or delete.
 * Format 1 (the first release: `0x01 ‖ counter ‖ HMAC`, 41 bytes) is still
 * read; the next write replaces it with format 2.
 *
 * Files are written with O_CREAT|O_EXCL|O_NOFOLLOW under a random temp name,
 * fsync'd, then renamed over the head: a symlink planted in the directory is
 * never followed (rename replaces the link itself).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openSealed, seal } from '../crypto/aead.js';
import { constantTimeEqual, deriveKey, frame, hmac, u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';
import { errnoOf, ioError } from './io-errors.js';

const V1 = 1;
const V1_BYTES = 1 + 8 + 32;
const V2 = 2;
const SEALED_COUNTER = 12 + 8 + 16;

export type HeadState = 'creating' | 'live' | 'deleting';
const STATE_BYTE: Record<HeadState, number> = { creating: 1, live: 2, deleting: 3 };
const STATE_OF = new Map(Object.entries(STATE_BYTE).map(([state, byte]) => [byte, state as HeadState]));

const HEAD_NAME = /^[0-9a-f]{32}$/;
const TEMP_NAME = /^[0-9a-f]{32}(\.[0-9a-f]{16})?\.tmp$/;

/** What a head file says without any key: its format, and for format 2 its state and index name. */
export type HeadPeek = { indexId: string } & ({ version: 1 } | { version: 2; state: HeadState; name: string } | { version: 'unreadable' });

/** Reads a file without following a symlink; ENOENT/ELOOP come back as the system error's code. */
function readNoFollow(path: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'ELOOP' });
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The clear part of a format-2 head: state, name, and where the sealed counter starts. */
function parseV2(bytes: Buffer): { state: HeadState; name: string; sealed: Buffer } | undefined {
  if (bytes.byteLength < 4 || bytes[0] !== V2) return undefined;
  const state = STATE_OF.get(bytes[1]!);
  const nameBytes = bytes.readUInt16BE(2);
  if (state === undefined || bytes.byteLength !== 4 + nameBytes + SEALED_COUNTER) return undefined;
  const name = bytes.subarray(4, 4 + nameBytes).toString('utf8');
  return { state, name, sealed: bytes.subarray(4 + nameBytes) };
}

/**
 * Every head file in `dir` and what it says without a key (the store lock
 * must be held). Unreadable ones are listed as such; I/O failures throw StorageError.
 */
export function peekHeads(dir: string): HeadPeek[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (cause) {
    throw ioError('list the commit heads', cause);
  }
  const out: HeadPeek[] = [];
  for (const file of names) {
    if (!HEAD_NAME.test(file)) continue;
    let bytes: Buffer;
    try {
      bytes = readNoFollow(join(dir, file));
    } catch (cause) {
      const code = errnoOf(cause);
      if (code === 'ENOENT') continue;
      if (code === 'ELOOP') {
        out.push({ indexId: file, version: 'unreadable' });
        continue;
      }
      throw ioError('read a commit head', cause);
    }
    const v2 = parseV2(bytes);
    if (v2) out.push({ indexId: file, version: V2, state: v2.state, name: v2.name });
    else if (bytes.byteLength === V1_BYTES && bytes[0] === V1) out.push({ indexId: file, version: V1 });
    else out.push({ indexId: file, version: 'unreadable' });
  }
  return out;
}

/** Removes temp files an interrupted head write left in `dir` (the store lock must be held). */
export function removeStaleTemps(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (cause) {
    throw ioError('list the commit heads', cause);
  }
  for (const file of names) {
    if (!TEMP_NAME.test(file)) continue;
    try {
      rmSync(join(dir, file), { force: true });
    } catch (cause) {
      throw ioError('remove a stale commit-head temp file', cause);
    }
  }
}

/** Removes the head of index `indexId` (hex) in `dir`, if any. */
export function removeHead(dir: string, indexId: string): void {
  try {
    rmSync(join(dir, indexId), { force: true });
  } catch (cause) {
    throw ioError('remove a commit head', cause);
  }
}

export class HeadFile {
  private readonly path: string;
  private readonly hex: string;
  /** The newest counter read or written: what a `deleting` mark carries. */
  private counter = 0;

  constructor(
    private readonly dir: string,
    private readonly indexId: Uint8Array,
    /** The index's head key: HMAC key of format-1 heads, root of the format-2 seal key. */
    private readonly headKey: Uint8Array,
    private readonly indexName: string,
  ) {
    this.hex = Buffer.from(indexId).toString('hex');
    this.path = join(dir, this.hex);
  }

  private aad(state: HeadState, name: Uint8Array): Buffer {
    return frame('head', this.indexId, Buffer.of(V2, STATE_BYTE[state]), name);
  }

  /** Derived per use and wiped after it: the index's keys are wiped when it closes, this one must not outlive them. */
  private withSealKey<T>(fn: (key: Buffer) => T): T {
    const key = deriveKey(this.headKey, this.indexId, 'head-seal');
    try {
      return fn(key);
    } finally {
      key.fill(0);
    }
  }

  private encode(state: HeadState, counter: number): Buffer {
    const name = Buffer.from(this.indexName, 'utf8');
    const sealed = this.withSealKey((key) => seal(key, u64(counter), this.aad(state, name)));
    const header = Buffer.alloc(4);
    header[0] = V2;
    header[1] = STATE_BYTE[state];
    header.writeUInt16BE(name.byteLength, 2);
    return Buffer.concat([header, name, sealed]);
  }

  /** First head of a new index (`creating` until its first commit): durable before the index is committed. */
  create(counter: number): Promise<void> {
    return this.write('creating', counter);
  }

  /** The head after a durable commit. */
  update(counter: number): Promise<void> {
    return this.write('live', counter);
  }

  /** Before an index's keys are deleted: a crash from here on leaves a head that says so. */
  markDeleting(): Promise<void> {
    return this.write('deleting', this.counter);
  }

  /**
   * Durable atomic replace (exclusive no-follow temp, write, fsync, rename,
   * fsync the directory), so a power loss leaves the old head or the new one,
   * never a torn file. Asynchronous: each fsync takes milliseconds that the
   * event loop must not wait for. A failure is a StorageError, and leaves the
   * old head in place.
   */
  private async write(state: HeadState, counter: number): Promise<void> {
    const bytes = this.encode(state, counter);
    const tmp = join(this.dir, `${this.hex}.${randomBytes(8).toString('hex')}.tmp`);
    try {
      const file = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        let done = 0;
        while (done < bytes.byteLength) done += (await file.write(bytes, done, bytes.byteLength - done, done)).bytesWritten;
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmp, this.path);
    } catch (cause) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw ioError(`write the commit head of index "${this.indexName}"`, cause);
    }
    try {
      const dir = await open(this.dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (cause) {
      throw ioError(`write the commit head of index "${this.indexName}"`, cause);
    }
    this.counter = counter;
  }

  /**
   * The acknowledged counter. IntegrityError when the head is missing,
   * malformed, forged, or names another index; StorageError when it cannot be read.
   */
  read(indexName: string = this.indexName): number {
    let bytes: Buffer;
    try {
      bytes = readNoFollow(this.path);
    } catch (cause) {
      const code = errnoOf(cause);
      if (code === 'ENOENT') {
        throw new IntegrityError(
          `The commit head of index "${indexName}" is missing: the store directory was copied in part or tampered with. Restore the whole directory from a backup.`,
          { cause },
        );
      }
      if (code === 'ELOOP')
        throw new IntegrityError(`The commit head of index "${indexName}" is not a regular file. Restore the whole store directory from a backup.`);
      throw ioError(`read the commit head of index "${indexName}"`, cause);
    }
    const forged = () => new IntegrityError(`The commit head of index "${indexName}" failed authentication. Restore the whole store directory from a backup.`);
    let counter: number;
    const v2 = parseV2(bytes);
    if (v2) {
      if (v2.name !== this.indexName) throw forged();
      const plain = this.withSealKey((key) => {
        try {
          return openSealed(key, v2.sealed, this.aad(v2.state, Buffer.from(v2.name, 'utf8')), 'commit head');
        } catch {
          throw forged();
        }
      });
      if (plain.byteLength !== 8) throw forged();
      counter = Number(plain.readBigUInt64BE(0));
    } else if (bytes.byteLength === V1_BYTES && bytes[0] === V1) {
      counter = Number(bytes.readBigUInt64BE(1));
      if (!constantTimeEqual(bytes.subarray(9), hmac(this.headKey, frame('head', this.indexId, u64(counter))))) throw forged();
    } else {
      throw new IntegrityError(`The commit head of index "${indexName}" is malformed. Restore the whole store directory from a backup.`);
    }
    this.counter = counter;
    return counter;
  }

  /** The head of another index of the same name in the same directory (the target of a data-key rotation). */
  sibling(indexId: Uint8Array, headKey: Uint8Array): HeadFile {
    return new HeadFile(this.dir, indexId, headKey, this.indexName);
  }

  /** Removes the head once its index is gone. */
  remove(): void {
    removeHead(this.dir, this.hex);
  }
}
