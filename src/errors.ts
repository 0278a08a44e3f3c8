/**
 * Every failure vecvault reports is a `VecvaultError` with a stable string
 * `code` (never changes across versions; match on it, not on the message).
 * Messages say what went wrong and what to do; they never contain key
 * material, decrypted values or record ids.
 */

export type ErrorCode =
  | 'VECVAULT_INVALID_KEY'
  | 'VECVAULT_INDEX_NOT_FOUND'
  | 'VECVAULT_INDEX_EXISTS'
  | 'VECVAULT_VALIDATION'
  | 'VECVAULT_INTEGRITY'
  | 'VECVAULT_STORE_LOCKED'
  | 'VECVAULT_KMS'
  | 'VECVAULT_PERMISSION'
  | 'VECVAULT_CLOSED'
  | 'VECVAULT_NOT_SUPPORTED'
  | 'VECVAULT_NATIVE'
  | 'VECVAULT_IO'
  | 'VECVAULT_KEY_CACHE'
  | 'VECVAULT_EMBEDDING'
  | 'VECVAULT_CONFLICT';

export interface VecvaultErrorOptions {
  cause?: unknown;
}

export class VecvaultError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: VecvaultErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** The key does not open this index (or is not a valid key at all). */
export class InvalidKeyError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_INVALID_KEY', message, options);
  }
}

export class IndexNotFoundError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_INDEX_NOT_FOUND', message, options);
  }
}

export class IndexExistsError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_INDEX_EXISTS', message, options);
  }
}

/** Bad input from the caller: nothing was written. `path` names the offending argument when known. */
export class ValidationError extends VecvaultError {
  readonly path: string | undefined;

  constructor(message: string, options?: VecvaultErrorOptions & { path?: string }, code: ErrorCode = 'VECVAULT_VALIDATION') {
    super(code, message, options);
    this.path = options?.path;
  }
}

/** Stored data failed authentication, or committed data is missing / rolled back. */
export class IntegrityError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_INTEGRITY', message, options);
  }
}

/** Another process (or another Client in this process) has the store open. */
export class StoreLockedError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_STORE_LOCKED', message, options);
  }
}

/**
 * A key source refused or failed: a KMS slot missing from the registry, an
 * unreachable or refusing KMS, a disabled or missing key, an HSM token that is
 * absent or a PIN that is wrong, a wrap that does not belong to this index.
 * `cause` holds the provider's own error. Nothing was written.
 */
export class KmsError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_KMS', message, options);
  }
}

/** The key (a user key) does not carry the permission this call needs, e.g. a write with a read-only user key. */
export class PermissionError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_PERMISSION', message, options);
  }
}

/**
 * The client or index was closed (or the index deleted) before this call: a
 * misuse by the caller, so it is also a ValidationError, with its own code.
 */
export class ClosedError extends ValidationError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super(message, options, 'VECVAULT_CLOSED');
  }
}

/** A documented option that this version does not implement yet. */
export class NotSupportedError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_NOT_SUPPORTED', message, options);
  }
}

/** The native engine failed in a way that is not the caller's fault. */
export class NativeError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_NATIVE', message, options);
  }
}

/**
 * The file system refused a read or write (disk full, permission denied, I/O
 * error): not a sign of tampering. `cause` holds the system error (its `code`,
 * e.g. ENOSPC). Acknowledged writes are safe; the failed call is in the store
 * whole or not at all (it may show after reopening), so retry it. After a
 * failed write, reopen the store before writing more. Fix the disk first (a
 * full disk needs space freed).
 */
export class StorageError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_IO', message, options);
  }
}

/**
 * The key cache of `generateKey({ save: true })` cannot be trusted: a file or
 * directory others can read or write, owned by another user, not a regular
 * file, or not 32 bytes. Nothing was read from it or written to it.
 */
export class KeyCacheError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_KEY_CACHE', message, options);
  }
}

/**
 * The index's `embedding.embed` function failed (`cause` holds its error) or
 * returned something that is not one finite vector of the index's dimension
 * per text. Nothing was written.
 */
export class EmbeddingError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_EMBEDDING', message, options);
  }
}

/**
 * Another process committed to the same index (through a shared PostgreSQL
 * store) between this call reading the index and committing: nothing of this
 * call was written. Upserts and deletes retry on their own; this reaches the
 * caller only when they keep losing (or for a snapshot or create), and
 * retrying the call is safe.
 */
export class ConflictError extends VecvaultError {
  constructor(message: string, options?: VecvaultErrorOptions) {
    super('VECVAULT_CONFLICT', message, options);
  }
}
