/**
 * User administration on an open index (root handles only; the API checks
 * that): create a user's key, list users, revoke one. The crypto is in
 * keys/users.ts; this runs it against the index's store inside its write queue.
 */
import { randomBytes } from 'node:crypto';
import { NotSupportedError, PermissionError, ValidationError } from '../errors.js';
import { directoryKey, newUser, openDirectory, regrantUsers, type Permissions } from '../keys/users.js';
import { generateSigningKey, publicKeyOf } from '../crypto/sign.js';
import { nextManifest } from '../storage/manifest.js';
import type { PendingErasure } from '../storage/index-store.js';
import type { IndexState } from './index-state.js';

function adminOf(state: IndexState): Buffer {
  const { store } = state;
  if (!store.signed) {
    throw new NotSupportedError(
      `Index "${state.name}" was created before signed commits, so it cannot have per-user keys: copy its records into a new index (created by this version) to add users.`,
    );
  }
  if (!store.keys.admin) throw new PermissionError(`User administration on index "${state.name}" needs a handle opened with the root key source.`);
  return store.keys.admin;
}

/** Creates `userId` with `permissions`; returns the user key (fresh, or a copy of the one given). */
export async function createUser(state: IndexState, userId: string, permissions: Permissions, given?: Uint8Array): Promise<Uint8Array> {
  const admin = adminOf(state);
  const { store } = state;
  if ((await store.readDirectoryEntry(directoryKey(admin, store.usersId, userId))) !== undefined) {
    throw new ValidationError(`Index "${state.name}" already has a user "${userId}": revokeUser({ userId }) first to give them a new key.`, { path: 'userId' });
  }
  const userKey = given === undefined ? randomBytes(32) : Buffer.from(given);
  const writes = newUser({
    usersId: store.usersId,
    userId,
    permissions,
    userKey,
    generation: store.dekGeneration,
    keys: store.keys,
    signKey: publicKeyOf(store.keys.signSeed!),
  });
  await store.putUser(writes);
  state.revokedSlots.delete(writes.slot.toString('hex'));
  return new Uint8Array(userKey);
}

/** Every user with its permissions, from the root's directory, sorted by id. */
export async function listUsers(state: IndexState): Promise<{ userId: string; permissions: Permissions }[]> {
  const admin = adminOf(state);
  const { store } = state;
  const users = (await store.directory()).map(({ dirKey, value }) => {
    const d = openDirectory(admin, store.usersId, dirKey, value);
    d.u.fill(0);
    return { userId: d.userId, permissions: d.permissions };
  });
  return users.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
}

/**
 * Removes `userId`'s entry and directory entry and erases them from the files; open handles of
 * that user in this process are refused from now on. Revoking a writer also renews the signing
 * key in the same commit: the remaining users' bodies name the new public key, the remaining
 * writers' grants hold the new seed, and the commit that installs it is signed with it, so the
 * revoked writer's copy of the old seed signs nothing the index accepts. Returns whether there
 * was such a user.
 */
export async function revokeUser(state: IndexState, userId: string): Promise<boolean> {
  const admin = adminOf(state);
  const { store } = state;
  const dirKey = directoryKey(admin, store.usersId, userId);
  const raw = await store.readDirectoryEntry(dirKey);
  if (raw === undefined) return false;
  const d = openDirectory(admin, store.usersId, dirKey, raw);
  d.u.fill(0);
  state.revokedSlots.add(Buffer.from(d.slot).toString('hex'));
  if (!d.permissions.includes('write')) {
    await store.removeUser(dirKey, d.slot);
    return true;
  }
  const fresh = generateSigningKey();
  let pending: PendingErasure;
  try {
    const grant = regrantUsers({
      indexId: store.indexId,
      usersId: store.usersId,
      oldAdmin: admin,
      newKeys: { ...store.keys, signSeed: fresh.seed },
      newGeneration: store.dekGeneration,
      keepGenerations: 'all',
      directory: (await store.directory()).filter((e) => !Buffer.from(e.dirKey).equals(dirKey)),
      entries: await store.userEntries(), // the revoked user's entry is not in the directory: deleted
    });
    const next = nextManifest(state.manifest);
    const batch = store.newBatch();
    pending = store.removeUserOps(batch, dirKey, d.slot);
    store.addRegrant(batch, grant);
    await state.queue.committing(() =>
      store.commit(next, batch, {
        newSigningKey: fresh,
        durable: () => {
          state.manifest = next;
        },
      }),
    );
  } catch (error) {
    if (store.keys.signSeed !== fresh.seed) fresh.seed.fill(0);
    throw error;
  }
  await store.eraseUser(pending);
  return true;
}
