/**
 * Per-user keys (DESIGN §7): what each user may hold, wrapped so that the set
 * of wraps that exist is the permission set, and so that the root key source
 * can be rotated (`rotateKey`) and the data key renewed (`rotateDataKey`)
 * without any user's key.
 *
 * ```
 * root key source ─▶ DEK ─┬─ HKDF 'users-admin' ─▶ admin key (root only)
 *                         │     ├─ seals the signing seed            ('I' id 'A')
 *                         │     └─ seals each user's directory entry ('I' id 'D' …): userId, permissions, U
 *                         └─ HKDF 'record-auth' ─▶ writer tag key on every record (root and writers)
 * user key ─▶ HKDF 'user-wrap' ─▶ wraps U (32 random bytes per user)  ('I' id 'U' slot)
 *                U ─┬─ seals the user's body: userId, permissions, the trusted signing public key
 *                   └─ seals one grant per DEK generation: the subkeys the user may hold
 *                        reader: records, graph, ids, manifest, digest, head
 *                        writer: the same + record-auth key + signing seed
 * ```
 *
 * Nothing of a user depends on the root key source (KEK): `rotateKey`
 * re-wraps the DEK and leaves all of this alone. A new DEK generation needs a
 * new grant per user and the admin material re-sealed under the new admin
 * key: `grantDataKeyToUsers` does that from the old and new DEK alone (U comes
 * from the root's directory), without the users' keys.
 *
 * What a user's key touches (the wrap of U and the slot) cannot be redone
 * without that key, so user material is bound to the index's **users id**
 * (`usersIdOf` in keys/envelope.ts), not to its index id: a data-key rotation
 * moves the index to a new index id but keeps the users id, so every user's
 * wrap and slot stay valid. The signing seed's entry is the root's alone and
 * stays bound to the index id.
 *
 * Readers never receive the DEK, the admin key, the record-auth key or the
 * signing seed, so a reader cannot sign a manifest, tag a record, or read or
 * change the directory. The slot of a user's entry is an HMAC under a key
 * derived from that user's key, and directory keys are HMACs under the admin
 * key: no user id is stored in the clear.
 */
import { randomBytes } from 'node:crypto';
import { KEY_BYTES, open, seal } from '../crypto/aead.js';
import { deriveKey, frame, hmac, u64 } from '../crypto/kdf.js';
import { publicKeyOf, SIGN_PUBLIC_BYTES, SIGN_SEED_BYTES } from '../crypto/sign.js';
import { IntegrityError, InvalidKeyError } from '../errors.js';
import { pack, unpack } from '../util/msgpack.js';
import type { IndexKeys } from './envelope.js';

export type Permission = 'read' | 'write';
/** What a user may do: `['read']` or `['read', 'write']`. */
export type Permissions = Permission[];

/** The subkeys a reader receives (an IndexKeys without the writer and root fields). */
const READER_KEYS = ['records', 'graph', 'ids', 'manifest', 'digest', 'head'] as const;

/** The root's keys for user administration and record tags, derived from the DEK (so `rotateKey` keeps them). */
export function rootUserKeys(dek: Uint8Array, indexId: Uint8Array): { admin: Buffer; recordAuth: Buffer } {
  return { admin: deriveKey(dek, indexId, 'users-admin'), recordAuth: deriveKey(dek, indexId, 'record-auth') };
}

// ---- the root's signing seed ----

export function sealSigningSeed(admin: Uint8Array, indexId: Uint8Array, seed: Uint8Array): Buffer {
  return seal(admin, seed, frame('users/admin', indexId));
}

/**
 * The signing seed and the public key the root trusts (derived from it). Only the root (the DEK)
 * can seal this entry; a signed index (catalog `signed`, bound to the DEK wrap) without it was tampered with.
 */
export function openSigningSeed(admin: Uint8Array, indexId: Uint8Array, value: Uint8Array | undefined, indexName: string): { seed: Buffer; publicKey: Buffer } {
  if (value === undefined) {
    throw new IntegrityError(`The signing key of index "${indexName}" is missing from the store: it was deleted. Restore the store from a backup.`);
  }
  const seed = open(admin, value, frame('users/admin', indexId), `The signing key of index "${indexName}"`);
  if (seed.byteLength !== SIGN_SEED_BYTES) {
    seed.fill(0);
    throw new IntegrityError(`The signing key of index "${indexName}" is malformed. Restore the store from a backup.`);
  }
  return { seed, publicKey: publicKeyOf(seed) };
}

// ---- where entries live ----

/** The LevelDB key suffix of a user's entry: HMAC under a key derived from the user's key (and the users id), of the user id. */
export function userSlot(userKey: Uint8Array, usersId: Uint8Array, userId: string): Buffer {
  const key = deriveKey(userKey, usersId, 'user-slot');
  try {
    return hmac(key, frame('user-slot', userId));
  } finally {
    key.fill(0);
  }
}

/** The LevelDB key suffix of a user's directory entry: HMAC under a key derived from the admin key. */
export function directoryKey(admin: Uint8Array, usersId: Uint8Array, userId: string): Buffer {
  const key = deriveKey(admin, usersId, 'user-directory');
  try {
    return hmac(key, frame('user-directory', userId));
  } finally {
    key.fill(0);
  }
}

// ---- values ----

/** A user's entry as stored (msgpack; every field but `v` sealed). */
interface UserEntry {
  v: 1;
  /** U wrapped under the user's key. */
  wrap: Uint8Array;
  /** Under U: `{ userId, permissions, signKey }`. */
  body: Uint8Array;
  /** Under U, per DEK generation (decimal string): the subkeys the user may hold. */
  grants: Record<string, Uint8Array>;
}

/** The root's directory entry of one user (sealed under the admin key). */
export interface DirectoryEntry {
  userId: string;
  permissions: Permissions;
  /** The user's intermediate key U (secret). */
  u: Uint8Array;
  /** Where the user's entry lives. */
  slot: Uint8Array;
}

/** What the caller writes for one user: the entry under its slot, the directory entry under its key. */
export interface UserWrites {
  slot: Buffer;
  entry: Buffer;
  dirKey: Buffer;
  directory: Buffer;
}

const grantAad = (usersId: Uint8Array, slot: Uint8Array, generation: number) => frame('users/grant', usersId, slot, u64(generation));

function sealGrant(u: Uint8Array, usersId: Uint8Array, slot: Uint8Array, generation: number, keys: IndexKeys, permissions: Permissions): Buffer {
  const bundle: Record<string, Uint8Array> = {};
  for (const name of READER_KEYS) bundle[name] = keys[name];
  if (permissions.includes('write')) {
    if (!keys.recordAuth || !keys.signSeed) throw new IntegrityError('A writer grant needs the record-auth key and the signing key.');
    bundle.recordAuth = keys.recordAuth;
    bundle.signSeed = keys.signSeed;
  }
  const plain = pack(bundle);
  try {
    return seal(u, plain, grantAad(usersId, slot, generation));
  } finally {
    plain.fill(0);
  }
}

function sealBody(u: Uint8Array, usersId: Uint8Array, slot: Uint8Array, userId: string, permissions: Permissions, signKey: Uint8Array): Buffer {
  return seal(u, pack({ userId, permissions, signKey }), frame('users/body', usersId, slot));
}

function sealDirectory(admin: Uint8Array, usersId: Uint8Array, dirKey: Uint8Array, d: DirectoryEntry): Buffer {
  const plain = pack({ userId: d.userId, permissions: d.permissions, u: d.u, slot: d.slot });
  try {
    return seal(admin, plain, frame('users/directory', usersId, dirKey));
  } finally {
    plain.fill(0);
  }
}

/** Opens a directory entry (root only); anything malformed is an IntegrityError. */
export function openDirectory(admin: Uint8Array, usersId: Uint8Array, dirKey: Uint8Array, value: Uint8Array): DirectoryEntry {
  const plain = open(admin, value, frame('users/directory', usersId, dirKey), 'A user directory entry');
  try {
    return checkDirectory(unpack(plain) as DirectoryEntry); // copies: unpacked bytes are views of `plain`
  } finally {
    plain.fill(0);
  }
}

function checkDirectory(d: DirectoryEntry): DirectoryEntry {
  if (
    typeof d !== 'object' ||
    d === null ||
    typeof d.userId !== 'string' ||
    !isPermissions(d.permissions) ||
    !(d.u instanceof Uint8Array) ||
    d.u.byteLength !== KEY_BYTES ||
    !(d.slot instanceof Uint8Array) ||
    d.slot.byteLength !== 32
  ) {
    throw new IntegrityError('A user directory entry is malformed.');
  }
  return { userId: d.userId, permissions: [...d.permissions], u: new Uint8Array(d.u), slot: new Uint8Array(d.slot) };
}

export function isPermissions(value: unknown): value is Permissions {
  return (
    Array.isArray(value) &&
    ((value.length === 1 && value[0] === 'read') || (value.length === 2 && value.includes('read') && value.includes('write') && value[0] !== value[1]))
  );
}

/**
 * A new user of an index: a fresh U wrapped under `userKey`, the body naming
 * the signing public key the user will trust, a grant of the current
 * generation's keys (writers: with the record-auth key and signing seed), and
 * the root's directory entry. `keys` must be the root's (it holds `admin`).
 */
export function newUser(p: {
  usersId: Uint8Array;
  userId: string;
  permissions: Permissions;
  userKey: Uint8Array;
  generation: number;
  keys: IndexKeys;
  signKey: Uint8Array;
}): UserWrites {
  if (!p.keys.admin) throw new IntegrityError('User administration needs the root keys.');
  const u = randomBytes(KEY_BYTES);
  const wrapKey = deriveKey(p.userKey, p.usersId, 'user-wrap');
  try {
    const slot = userSlot(p.userKey, p.usersId, p.userId);
    const entry: UserEntry = {
      v: 1,
      wrap: seal(wrapKey, u, frame('users/wrap', p.usersId, slot)),
      body: sealBody(u, p.usersId, slot, p.userId, p.permissions, p.signKey),
      grants: { [String(p.generation)]: sealGrant(u, p.usersId, slot, p.generation, p.keys, p.permissions) },
    };
    const dirKey = directoryKey(p.keys.admin, p.usersId, p.userId);
    const directory = sealDirectory(p.keys.admin, p.usersId, dirKey, { userId: p.userId, permissions: p.permissions, u, slot });
    return { slot, entry: pack(entry), dirKey, directory };
  } finally {
    wrapKey.fill(0);
    u.fill(0);
  }
}

function decodeEntry(value: Uint8Array): UserEntry {
  let e: UserEntry;
  try {
    e = unpack(value) as UserEntry;
  } catch (cause) {
    throw new IntegrityError('A user entry is unreadable.', { cause });
  }
  if (
    typeof e !== 'object' ||
    e === null ||
    e.v !== 1 ||
    !(e.wrap instanceof Uint8Array) ||
    !(e.body instanceof Uint8Array) ||
    typeof e.grants !== 'object' ||
    e.grants === null ||
    !Object.values(e.grants).every((g) => g instanceof Uint8Array)
  ) {
    throw new IntegrityError('A user entry is unreadable.');
  }
  return e;
}

/** What a user's key opens: the user's permissions, the public key it trusts, and the subkeys of `generation`. */
export interface OpenedUser {
  permissions: Permissions;
  signKey: Buffer;
  keys: IndexKeys;
}

/**
 * Opens a user's entry with the user's key. A missing entry or a wrap that
 * does not open is an InvalidKeyError (the pair of key and id does not open
 * the index); once the wrap opened, anything else failing is an IntegrityError.
 */
export function openUser(p: {
  usersId: Uint8Array;
  indexName: string;
  userId: string;
  userKey: Uint8Array;
  generation: number;
  slot: Uint8Array;
  value: Uint8Array | undefined;
}): OpenedUser {
  const wrong = () =>
    new InvalidKeyError(
      `This user key and userId do not open index "${p.indexName}" (no such user, a revoked user, or another key). Ask the index's owner for a key.`,
    );
  if (p.value === undefined) throw wrong();
  const e = decodeEntry(p.value);
  const wrapKey = deriveKey(p.userKey, p.usersId, 'user-wrap');
  let u: Buffer;
  try {
    u = open(wrapKey, e.wrap, frame('users/wrap', p.usersId, p.slot), 'A user entry');
  } catch {
    throw wrong();
  } finally {
    wrapKey.fill(0);
  }
  try {
    const body = unpack(open(u, e.body, frame('users/body', p.usersId, p.slot), 'A user entry')) as { userId: unknown; permissions: unknown; signKey: unknown };
    if (
      typeof body !== 'object' ||
      body === null ||
      body.userId !== p.userId ||
      !isPermissions(body.permissions) ||
      !(body.signKey instanceof Uint8Array) ||
      body.signKey.byteLength !== SIGN_PUBLIC_BYTES
    ) {
      throw new IntegrityError(`A user entry of index "${p.indexName}" is malformed.`);
    }
    const sealed = e.grants[String(p.generation)];
    if (sealed === undefined) throw new IntegrityError(`The user entry of index "${p.indexName}" holds no keys of the index's current data key.`);
    const plain = open(u, sealed, grantAad(p.usersId, p.slot, p.generation), 'A user grant');
    try {
      return grantedKeys(unpack(plain) as Record<string, unknown>, body.permissions, body.signKey, p.indexName); // copies: unpacked bytes are views of `plain`
    } finally {
      plain.fill(0);
    }
  } finally {
    u.fill(0);
  }
}

/** The keys of a grant, copied out of the unpacked bundle (a reader's without the writer keys). */
function grantedKeys(bundle: Record<string, unknown>, permissions: Permissions, signKey: Uint8Array, indexName: string): OpenedUser {
  const key = (name: string): Buffer => {
    const v = bundle[name];
    if (!(v instanceof Uint8Array) || v.byteLength !== 32) throw new IntegrityError(`A user grant of index "${indexName}" is malformed.`);
    return Buffer.from(v);
  };
  const keys: IndexKeys = {
    records: key('records'),
    graph: key('graph'),
    ids: key('ids'),
    manifest: key('manifest'),
    digest: key('digest'),
    head: key('head'),
  };
  if (permissions.includes('write')) {
    keys.recordAuth = key('recordAuth');
    keys.signSeed = key('signSeed');
  }
  return { permissions: [...permissions], signKey: Buffer.from(signKey), keys };
}

/** What re-granting users writes: the sealed signing seed, and puts/deletes of directory ('D') and user ('U') entries (deletes first). */
export interface UsersRegrant {
  signingSeed: Buffer;
  puts: { kind: 'D' | 'U'; suffix: Buffer; value: Buffer }[];
  dels: { kind: 'D' | 'U'; suffix: Uint8Array }[];
}

/**
 * Re-grants every user the keys in `newKeys` for DEK generation `newGeneration`, without any
 * user's key (U comes from the root's directory, opened with `oldAdmin`): each directory entry is
 * re-sealed under `newKeys.admin` (under its new directory key; the old one is deleted), each
 * user's body is re-sealed naming the public key of `newKeys.signSeed`, each user gets a grant of
 * `newKeys` for `newGeneration` (writers with the record-auth key and the signing seed), and the
 * signing seed is re-sealed under the new admin key for index id `indexId`. Older grants are kept
 * when `keepGenerations` lists them (`'all'`: every one but `newGeneration`'s, which is replaced).
 * User entries the directory does not name (a revoked user's, or left by a crash) are deleted. A
 * user's wrap of U is carried over as it is (it needs the user's key). Used by
 * `grantDataKeyToUsers` (a new DEK) and by a writer's revocation (a new signing key, same DEK).
 */
export function regrantUsers(p: {
  /** The index id the signing seed is sealed for (a data-key rotation: the new one). */
  indexId: Uint8Array;
  /** The users id every user's material is bound to (unchanged by rotations). */
  usersId: Uint8Array;
  oldAdmin: Uint8Array;
  newKeys: IndexKeys;
  newGeneration: number;
  keepGenerations?: number[] | 'all';
  directory: { dirKey: Uint8Array; value: Uint8Array }[];
  entries: { slot: Uint8Array; value: Uint8Array }[];
}): UsersRegrant {
  const { admin, signSeed } = p.newKeys;
  if (!admin || !signSeed) throw new IntegrityError('Re-granting users needs the root keys with the signing key.');
  const signKey = publicKeyOf(signSeed);
  const keep = (generation: string) =>
    generation !== String(p.newGeneration) && (p.keepGenerations === 'all' || (p.keepGenerations ?? []).map(String).includes(generation));
  const bySlot = new Map(p.entries.map((e) => [Buffer.from(e.slot).toString('hex'), e.value]));
  const out: UsersRegrant = { signingSeed: sealSigningSeed(admin, p.indexId, signSeed), puts: [], dels: [] };
  const named = new Set<string>();
  for (const { dirKey, value } of p.directory) {
    const d = openDirectory(p.oldAdmin, p.usersId, dirKey, value);
    try {
      const slotHex = Buffer.from(d.slot).toString('hex');
      named.add(slotHex);
      out.dels.push({ kind: 'D', suffix: dirKey });
      const newDirKey = directoryKey(admin, p.usersId, d.userId);
      out.puts.push({ kind: 'D', suffix: newDirKey, value: sealDirectory(admin, p.usersId, newDirKey, d) });
      const raw = bySlot.get(slotHex);
      if (raw === undefined) continue; // the user's entry was lost: the root can revoke and re-create the user
      const e = decodeEntry(raw);
      const grants: Record<string, Uint8Array> = {};
      for (const [g, v] of Object.entries(e.grants)) if (keep(g)) grants[g] = v;
      grants[String(p.newGeneration)] = sealGrant(d.u, p.usersId, d.slot, p.newGeneration, p.newKeys, d.permissions);
      const body = sealBody(d.u, p.usersId, d.slot, d.userId, d.permissions, signKey);
      out.puts.push({ kind: 'U', suffix: Buffer.from(d.slot), value: pack({ ...e, body, grants }) });
    } finally {
      d.u.fill(0);
    }
  }
  for (const e of p.entries) if (!named.has(Buffer.from(e.slot).toString('hex'))) out.dels.push({ kind: 'U', suffix: e.slot });
  return out;
}

/**
 * For `rotateDataKey`: re-grants every user the keys of a new DEK generation without any user's
 * key. `oldAdmin` is the admin key of the old DEK; `newKeys` the new generation's root keys
 * (`deriveIndexKeys(newDek, newIndexId, …)` plus `rootUserKeys(newDek, newIndexId)` plus the
 * signing seed); `indexId` the new index id (the signing seed's entry is bound to it), `usersId`
 * the index's users id, which the rotation keeps. Old generations' grants are dropped. The
 * rotation writes the puts under the new index id in the batch that switches the catalog entry
 * (`IndexStore.switchTo`); the old entries go with the old index id's range.
 */
export function grantDataKeyToUsers(p: {
  indexId: Uint8Array;
  usersId: Uint8Array;
  oldAdmin: Uint8Array;
  newKeys: IndexKeys;
  newGeneration: number;
  directory: { dirKey: Uint8Array; value: Uint8Array }[];
  entries: { slot: Uint8Array; value: Uint8Array }[];
}): UsersRegrant {
  return regrantUsers({ ...p, keepGenerations: [] });
}
