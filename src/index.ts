/** vecvault: the public API. Everything else under src/ is internal. */
export { Client, DEFAULT_INDEX_CONFIG } from './api/client.js';
export type { EncryptedIndex } from './api/encrypted-index.js';
export type { WarningCode } from './warnings.js';
export { generateKey, type GenerateKeyOptions } from './keys/index-key.js';
export * from './api/types.js';
export type {
  KmsSlot,
  Pkcs11Slot,
  AwsKmsSlot,
  AwsSecretsManagerSlot,
  CustomSlot,
  KmsRegistry,
  KmsProviderName,
  AwsCredentials,
  AwsCredentialIdentity,
} from './keys/kms/types.js';
export { recoverIndex } from './api/recover.js';
export type * from './api/check-types.js';
export {
  VecvaultError,
  InvalidKeyError,
  IndexNotFoundError,
  IndexExistsError,
  ValidationError,
  IntegrityError,
  StoreLockedError,
  KmsError,
  PermissionError,
  ClosedError,
  NotSupportedError,
  NativeError,
  StorageError,
  KeyCacheError,
  EmbeddingError,
  ConflictError,
  type ErrorCode,
} from './errors.js';
