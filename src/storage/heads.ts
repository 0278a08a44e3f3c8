/**
 * Commit heads, kept outside LevelDB: one small authenticated file per index
 * holding the newest commit counter the process acknowledged. LevelDB silently
 * drops committed batches after a corrupted log byte (docs/architecture.md), which leaves
 * an older but self-consistent store; comparing its manifest counter with the
 * head exposes that, and a rollback of the LevelDB files alone.
 */
import { readFileSync, rmSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
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
  create(counter: number): Promise<void> {
    return this.update(counter);
  }

  /**
   * Durable atomic replace (write temp, fsync, rename, fsync the directory),
   * so a power loss leaves the old head or the new one, never a torn file.
   * Asynchronous: each fsync takes milliseconds that the event loop must not wait for.
   */
  async update(counter: number): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.write(this.encode(counter));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
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
