/** HKDF-SHA256 subkeys, HMAC-SHA256, constant-time comparison (node:crypto). */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/** Domain-separated 32-byte subkey: HKDF-SHA256(ikm, salt, "vecvault/v1/" + label). */
export function deriveKey(ikm: Uint8Array, salt: Uint8Array, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, `vecvault/v1/${label}`, 32));
}

export function hmac(key: Uint8Array, ...parts: (Uint8Array | string)[]): Buffer {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

/** Big-endian u64 bytes, for binding counters into AAD and keys. */
export function u64(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}

/** The 4-byte big-endian length that precedes each field in `frame`. */
export function lengthPrefix(byteLength: number): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(byteLength);
  return len;
}

/**
 * Length-prefixed concatenation, so AAD fields can never run into each other.
 * frame(a, b, c) equals frame(a) || frame(b, c): batched callers rely on it.
 */
export function frame(...parts: (Uint8Array | string)[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : Buffer.from(part.buffer, part.byteOffset, part.byteLength);
    chunks.push(lengthPrefix(bytes.byteLength), bytes);
  }
  return Buffer.concat(chunks);
}
