/**
 * Commit heads, kept outside LevelDB: one small authenticated file per index
 * holding the newest commit counter the process acknowledged. LevelDB silently
 * drops committed batches after a corrupted log byte (DESIGN §4), which leaves
 * an older but self-consistent store; comparing its manifest counter with the
 * head exposes that, and a rollback of the LevelDB files alone.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { constantTimeEqual, frame, hmac, u64 } from '../crypto/kdf.js';
import { IntegrityError } from '../errors.js';

const HEAD_VERSION = 1;
const HEAD_BYTES = 1 + 8 + 32;

export class HeadFile {
  private readonly path: string;

  constructor(
    private readonly dir: string,
    private readonly indexId: Uint8Array,
    private readonly macKey: Uint8Array,
  ) {
    this.path = join(dir, Buffer.from(indexId).toString('hex'));
  }

  private encode(counter: number): Buffer {
    const mac = hmac(this.macKey, frame('head', this.indexId, u64(counter)));
    return Buffer.concat([Buffer.of(HEAD_VERSION), u64(counter), mac]);
  }

  /** First head of a new index: durable before the index is committed. */
  create(counter: number): void {
    this.update(counter);
  }

  /**
   * Durable atomic replace (write temp, fsync, rename, fsync the directory),
   * so a power loss leaves the old head or the new one, never a torn file.
   */
  update(counter: number): void {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, this.encode(counter));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dir = openSync(this.dir, 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  /** The acknowledged counter; IntegrityError when the head is missing or forged. */
  read(indexName: string): number {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.path);
    } catch (cause) {
      throw new IntegrityError(
        `The commit head of index "${indexName}" is missing: the store directory was copied in part or tampered with. Restore the whole directory from a backup.`,
        { cause },
      );
    }
    if (bytes.byteLength !== HEAD_BYTES || bytes[0] !== HEAD_VERSION) {
      throw new IntegrityError(`The commit head of index "${indexName}" is malformed. Restore the whole store directory from a backup.`);
    }
    const counter = Number(bytes.readBigUInt64BE(1));
    if (!constantTimeEqual(bytes.subarray(9), hmac(this.macKey, frame('head', this.indexId, u64(counter))))) {
      throw new IntegrityError(`The commit head of index "${indexName}" failed authentication. Restore the whole store directory from a backup.`);
    }
    return counter;
  }

  remove(): void {
    rmSync(this.path, { force: true });
    rmSync(`${this.path}.tmp`, { force: true });
  }
}
