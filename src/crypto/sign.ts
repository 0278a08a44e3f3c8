/**
 * Ed25519 signatures (node:crypto) over raw 32-byte keys: the commit
 * signatures of indexes with per-user keys. The private key is kept as its
 * 32-byte seed (a Buffer the caller can wipe); a KeyObject is made per use.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify } from 'node:crypto';

export const SIGN_SEED_BYTES = 32;
export const SIGN_PUBLIC_BYTES = 32;
export const SIGNATURE_BYTES = 64;

// DER prefixes of an Ed25519 PKCS#8 private key and SPKI public key (RFC 8410): the raw key follows.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A fresh key pair: the private seed (secret, caller wipes) and the raw public key. */
export function generateSigningKey(): { seed: Buffer; publicKey: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = Buffer.from(der.subarray(PKCS8_PREFIX.byteLength));
  der.fill(0);
  return { seed, publicKey: Buffer.from(publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.byteLength)) };
}

function privateKeyOf(seed: Uint8Array) {
  const der = Buffer.concat([PKCS8_PREFIX, seed]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/** The raw public key of a seed. */
export function publicKeyOf(seed: Uint8Array): Buffer {
  return Buffer.from(createPublicKey(privateKeyOf(seed)).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.byteLength));
}

export function signBytes(seed: Uint8Array, message: Uint8Array): Buffer {
  return edSign(null, message, privateKeyOf(seed));
}

/** False for a wrong signature, a malformed one, or a malformed public key: never throws. */
export function verifyBytes(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.byteLength !== SIGN_PUBLIC_BYTES || signature.byteLength !== SIGNATURE_BYTES) return false;
  try {
    return edVerify(null, message, createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }), signature);
  } catch {
    return false;
  }
}
