/**
 * File-system failures, told apart from damage: a disk that is full, read-only
 * or failing (ENOSPC, EROFS, EIO, EACCES, …) is a StorageError (VECVAULT_IO:
 * free space or fix permissions, then retry), while missing or corrupt data is
 * an IntegrityError (restore from a backup). LevelDB reports both through
 * classic-level: `LEVEL_IO_ERROR` / "IO error: <file>: <strerror>" and
 * `LEVEL_CORRUPTION` / "Corruption: …", sometimes as the `cause` of a
 * `LEVEL_DATABASE_NOT_OPEN`, and from iterators without a code at all.
 */
import { IntegrityError, StorageError, type VecvaultError } from '../errors.js';

/** glibc's strerror texts (what LevelDB puts in its messages) → errno names. */
const STRERROR: Record<string, string> = {
  'no space left on device': 'ENOSPC',
  'input/output error': 'EIO',
  'permission denied': 'EACCES',
  'operation not permitted': 'EPERM',
  'read-only file system': 'EROFS',
  'disk quota exceeded': 'EDQUOT',
  'file too large': 'EFBIG',
  'too many open files': 'EMFILE',
  'no such file or directory': 'ENOENT',
  'is a directory': 'EISDIR',
  'not a directory': 'ENOTDIR',
  'too many levels of symbolic links': 'ELOOP',
  'stale file handle': 'ESTALE',
};

/** The errno name (ENOSPC, EIO, …) of a Node system error, or undefined. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** A StorageError for a failed file-system call on `what`; `cause` is the system error. */
export function ioError(what: string, cause: unknown): StorageError {
  const code = errnoOf(cause) ?? 'EIO';
  const advice =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'The disk is full: free space, then retry.'
      : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
        ? 'The file system refused the write: fix the permissions (or remount read-write), then retry.'
        : 'The disk reported an error: check it, then retry.';
  return new StorageError(`Could not ${what} (${code}). ${advice} Acknowledged writes are safe.`, { cause });
}

/** Walks `error` and its causes for a classic-level code or a LevelDB status text. */
function levelStatus(error: unknown): { kind: 'io' | 'corruption' | 'locked'; message: string; errno?: string } | undefined {
  for (let e = error as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    const message = typeof e.message === 'string' ? e.message : '';
    if (e.code === 'LEVEL_LOCKED') return { kind: 'locked', message };
    if (e.code === 'LEVEL_CORRUPTION' || message.startsWith('Corruption:')) return { kind: 'corruption', message };
    if (e.code === 'LEVEL_IO_ERROR' || message.startsWith('IO error:')) {
      const text = message
        .slice(message.lastIndexOf(': ') + 2)
        .trim()
        .toLowerCase();
      return { kind: 'io', message, errno: STRERROR[text] };
    }
  }
  return undefined;
}

/**
 * A LevelDB failure as vecvault reports it, or undefined when it is neither
 * an I/O error nor corruption (a bug or misuse: rethrow it as it is). A file
 * LevelDB expects but cannot find (ENOENT) is damage, not a disk fault.
 */
export function levelFailure(error: unknown, what: string): VecvaultError | 'locked' | undefined {
  const status = levelStatus(error);
  if (!status) return undefined;
  if (status.kind === 'locked') return 'locked';
  if (status.kind === 'corruption' || status.errno === 'ENOENT') {
    return new IntegrityError(`The store's database is damaged (${what}): ${status.message}. Restore the store directory from a backup.`, { cause: error });
  }
  // The system error LevelDB saw, as a Node-style error whose own cause is classic-level's.
  const system = Object.assign(new Error(status.message, { cause: error }), { code: status.errno ?? 'EIO' });
  return ioError(what, system);
}
