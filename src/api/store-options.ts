/** Checks `new Client({ store })`: the only kind besides the default directory is PostgreSQL. */
import { ValidationError } from '../errors.js';
import type { PostgresStoreOptions } from './types.js';
import { isPlainObject } from './validate.js';

/** A PostgreSQL identifier vecvault creates unquoted-safe: letters, digits, underscores, up to 63 bytes. */
const SCHEMA = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function checkPostgresOptions(store: unknown): PostgresStoreOptions {
  if (!isPlainObject(store) || store.kind !== 'postgres') {
    throw new ValidationError("store must be { kind: 'postgres', connectionString, schema? } (or pass path for a local store).", { path: 'store.kind' });
  }
  if (typeof store.connectionString !== 'string' || store.connectionString.length === 0) {
    throw new ValidationError('store.connectionString must be a PostgreSQL connection URL, e.g. postgres://user@host:5432/db.', {
      path: 'store.connectionString',
    });
  }
  if (store.schema !== undefined && (typeof store.schema !== 'string' || !SCHEMA.test(store.schema))) {
    throw new ValidationError('store.schema must be a schema name of letters, digits and underscores (up to 63), starting with a letter or underscore.', {
      path: 'store.schema',
    });
  }
  const out: PostgresStoreOptions = { kind: 'postgres', connectionString: store.connectionString };
  if (store.schema !== undefined) out.schema = store.schema as string;
  return out;
}
