/**
 * Who opened a handle: the root key source (the index key or KMS slot) or a
 * user key. `slot` (hex) identifies the user's entry, so a revocation reaches
 * its open handles. Internal: the public surface shows none of it.
 */
import type { Permissions } from '../keys/users.js';

export type HandleAccess = { role: 'root' } | { role: 'user'; userId: string; permissions: Permissions; slot: string };
