/**
 * Batched AES-256-GCM and HMAC-SHA256: one native call per batch into the
 * OpenSSL that Node links (native/crypto.cc), instead of one node:crypto
 * object per item (~5 µs each; sealing records cost more CPU than inserting
 * them into the graph). Byte formats are exactly those of aead.ts and kdf.ts.
 *
 * Every item's AAD (or HMAC message) is `head || parts[i] || tail`: callers
 * pass the constant framing once and only the varying middle per item.
 */
import { loadNativeAddon } from '../util/native-addon.js';
import { KEY_BYTES, NONCE_BYTES, SEAL_OVERHEAD, TAG_BYTES, tampered } from './aead.js';

type Part = Uint8Array | string;

interface NativeCrypto {
  hmacMany(key: Uint8Array, head: Uint8Array, parts: Part[], tail: Uint8Array, seconds?: Uint8Array[], skip?: number): Buffer;
  sealMany(key: Uint8Array, prefix: Uint8Array, plaintexts: Uint8Array[], aadHead: Uint8Array, aadParts: Part[], aadTail: Uint8Array): Buffer;
  openMany(key: Uint8Array, sealed: Uint8Array[], skip: number, aadHead: Uint8Array, aadParts: Part[], aadTail: Uint8Array): Buffer;
  openInPlaceAsync(key: Uint8Array, sealed: Uint8Array[], aads: Uint8Array[], checks?: SealedChecks): Promise<void>;
  sealAsync(key: Uint8Array, plaintexts: Uint8Array[], aads: Uint8Array[], checks?: SealedChecks): Promise<Buffer>;
  sealIntoAsync(key: Uint8Array, plaintexts: Uint8Array[], aads: Uint8Array[], out: Uint8Array, checks?: SealedChecks): Promise<void>;
  keyDigestAsync(key: Uint8Array, keys: Float64Array): Promise<Buffer | null>;
}

const EMPTY = new Uint8Array(0);

/** Bytes of one SHA-256 in `SealedChecks.digests` and of one GMAC in `SealedChecks.macs`. */
export const DIGEST_BYTES = 32;
export const GMAC_BYTES = TAG_BYTES;

/**
 * Checks of each sealed value (as sealed: nonce || ciphertext || tag),
 * written by the pool task that seals or opens it, so the main thread never
 * reads the bytes: `digests`, 32 bytes per value, its SHA-256; `macs`, 16
 * bytes per value, its GMAC under `macKey` (AES-256-GCM under that key with
 * the value's own nonce as IV and the whole value as AAD, no plaintext).
 * The buffers stay untouched until the call settles.
 */
export interface SealedChecks {
  digests?: Uint8Array;
  macs?: Uint8Array;
  macKey?: Uint8Array;
}

function native(): NativeCrypto {
  return (loadNativeAddon() as { crypto: NativeCrypto }).crypto;
}

interface FramedParts {
  head?: Uint8Array;
  parts: Part[];
  tail?: Uint8Array;
}

function checkKey(key: Uint8Array): void {
  if (key.byteLength !== KEY_BYTES) throw new RangeError('keys are 32 bytes');
}

/** HMAC-SHA256(key, head || part || tail) per part: `parts.length × 32` bytes, in order. */
export function hmacMany(key: Uint8Array, message: FramedParts): Buffer {
  checkKey(key);
  return native().hmacMany(key, message.head ?? EMPTY, message.parts, message.tail ?? EMPTY);
}

/**
 * HMAC-SHA256(key, head || part || seconds[i] from byte `skip` || tail) per part: `hmacMany` over a
 * pair of buffers without concatenating them first (a copy of each stored value, ~1 µs a record).
 */
export function hmacManyPaired(key: Uint8Array, message: FramedParts, seconds: Uint8Array[], skip: number): Buffer {
  checkKey(key);
  if (seconds.length !== message.parts.length) throw new RangeError('one second part per part');
  return native().hmacMany(key, message.head ?? EMPTY, message.parts, message.tail ?? EMPTY, seconds, skip);
}

/** Seals each plaintext as `prefix || nonce || ciphertext || tag` (aead.ts `seal` after `prefix`), fresh random nonces. */
export function sealMany(key: Uint8Array, plaintexts: Uint8Array[], aad: FramedParts, prefix: Uint8Array = EMPTY): Buffer[] {
  checkKey(key);
  if (aad.parts.length !== plaintexts.length) throw new RangeError('one AAD part per plaintext');
  const all = native().sealMany(key, prefix, plaintexts, aad.head ?? EMPTY, aad.parts, aad.tail ?? EMPTY);
  return slices(all, plaintexts, (p) => prefix.byteLength + SEAL_OVERHEAD + p.byteLength);
}

/**
 * Opens each sealed value (skipping `skip` prefix bytes). Throws one generic
 * IntegrityError naming `what(i)` for the first item that fails, as aead.ts does.
 */
export function openMany(key: Uint8Array, sealed: Uint8Array[], skip: number, aad: FramedParts, what: (index: number) => string): Buffer[] {
  checkKey(key);
  if (aad.parts.length !== sealed.length) throw new RangeError('one AAD part per sealed value');
  let all: Buffer;
  try {
    all = native().openMany(key, sealed, skip, aad.head ?? EMPTY, aad.parts, aad.tail ?? EMPTY);
  } catch (cause) {
    throw failure(cause, what);
  }
  return slices(all, sealed, (s) => s.byteLength - skip - SEAL_OVERHEAD);
}

/**
 * Seals large values (aead.ts `seal` format) on the libuv pool; `aads` whole per item, `checks` of each
 * sealed value by the same task. Inputs must stay unchanged until it settles.
 */
export async function sealAsync(key: Uint8Array, plaintexts: Uint8Array[], aads: Uint8Array[], checks?: SealedChecks): Promise<Buffer[]> {
  checkKey(key);
  if (aads.length !== plaintexts.length) throw new RangeError('one AAD per plaintext');
  return slices(await native().sealAsync(key, plaintexts, aads, checks), plaintexts, (p) => SEAL_OVERHEAD + p.byteLength);
}

/**
 * `sealAsync` into the caller's `out` (reused across calls by a stream, so no
 * fresh buffer per call is left for the GC): resolves to views of `out`, one
 * sealed value per plaintext. `out` must hold their sealed sizes and stay
 * untouched until this settles; the views are valid until `out` is reused.
 * `checks` of each sealed value are written by the same pool task.
 */
export async function sealIntoAsync(
  key: Uint8Array,
  plaintexts: Uint8Array[],
  aads: Uint8Array[],
  out: Uint8Array,
  checks?: SealedChecks,
): Promise<Uint8Array[]> {
  checkKey(key);
  if (aads.length !== plaintexts.length) throw new RangeError('one AAD per plaintext');
  await native().sealIntoAsync(key, plaintexts, aads, out, checks);
  let at = 0;
  return plaintexts.map((p) => out.subarray(at, (at += SEAL_OVERHEAD + p.byteLength)));
}

/**
 * `openMany` on the libuv pool for large values, decrypting each over its own
 * ciphertext (no copy): resolves to views of the plaintexts inside `sealed`.
 * `aads` whole per item. The caller gives up `sealed` (its bytes change) and
 * must not touch it until this settles; on failure the plaintext is wiped.
 * `checks` of each value as sealed (before decryption) are written by the
 * same pool task, so the main thread never reads the bytes (hashing a
 * 200k-vector graph took ~150 ms of it).
 */
export async function openInPlaceAsync(
  key: Uint8Array,
  sealed: Uint8Array[],
  aads: Uint8Array[],
  what: (index: number) => string,
  checks?: SealedChecks,
): Promise<Uint8Array[]> {
  checkKey(key);
  if (aads.length !== sealed.length) throw new RangeError('one AAD per sealed value');
  try {
    await native().openInPlaceAsync(key, sealed, aads, checks);
  } catch (cause) {
    throw failure(cause, what);
  }
  return sealed.map((s) => s.subarray(NONCE_BYTES, s.byteLength - TAG_BYTES));
}

/**
 * An order-free digest of a multiset of engine keys (24 bytes: the count, then
 * the sums mod 2^64 of the two halves of each key's AES-256 block under `key`;
 * native/key-digest.h), on the libuv pool, reading `keys` in place: leave it
 * unchanged until this settles. Under a fresh random `key`, two different
 * multisets collide with probability about 2^-64. The engine's stream load
 * computes the same digest over a graph's live keys (StreamLoadOptions.keyDigest).
 * Null when a number is not an integer in [0, 2^53).
 */
export async function keyDigestAsync(key: Uint8Array, keys: Float64Array): Promise<Uint8Array | null> {
  checkKey(key);
  return native().keyDigestAsync(key, keys);
}

/** The native calls return one buffer with item i's output after item i − 1's; cut it back into items. */
function slices(all: Buffer, items: Uint8Array[], sizeOf: (item: Uint8Array) => number): Buffer[] {
  let at = 0;
  return items.map((item) => all.subarray(at, (at += sizeOf(item))));
}

function failure(cause: unknown, what: (index: number) => string): unknown {
  const index = (cause as { index?: unknown } | null)?.index;
  if (typeof index !== 'number') return cause; // argument errors and OpenSSL failures are not tampering
  return tampered(what(index), cause);
}
