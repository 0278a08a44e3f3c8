/**
 * Process warnings: what vecvault reports without failing a call (the data is
 * safe, but something needs attention). Each has a stable `code`, listed in
 * the README; listen with `process.on('warning', (w) => w.code …)`.
 */

export type WarningCode =
  /** A snapshot could not be used on open; the graph was rebuilt from the encrypted records (slower open, no data lost). */
  | 'VECVAULT_SNAPSHOT_REBUILD'
  /** The commit head file could not be updated after a durable commit; rollback detection is weaker until the next commit. */
  | 'VECVAULT_HEAD_WRITE'
  /** A background snapshot, or the one at close, failed; the change log still covers every write. */
  | 'VECVAULT_SNAPSHOT_FAILED'
  /** A background compaction failed; removed vectors keep holding memory until the next one. */
  | 'VECVAULT_COMPACT_FAILED';

/** Every warning code, for docs and tests. */
export const WARNING_CODES: readonly WarningCode[] = [
  'VECVAULT_SNAPSHOT_REBUILD',
  'VECVAULT_HEAD_WRITE',
  'VECVAULT_SNAPSHOT_FAILED',
  'VECVAULT_COMPACT_FAILED',
];

/** @internal Emits a process warning; messages never hold key material, ids or decrypted data. */
export function warn(code: WarningCode, message: string): void {
  process.emitWarning(`vecvault: ${message}`, { code });
}
