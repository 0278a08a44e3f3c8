/** Vectors as records store them: raw little-endian float32 bytes (every supported platform is little-endian). */

/** Row `row` of a flat float32 array as a view of its bytes; packed at once, never kept. */
export function rowBytes(vectors: Float32Array, row: number, dimension: number): Uint8Array {
  return new Uint8Array(vectors.buffer, vectors.byteOffset + row * dimension * 4, dimension * 4);
}

/** A record's vector bytes as a Float32Array of its own (copied: the bytes may be unaligned or reused). */
export function vectorOf(bytes: Uint8Array): Float32Array {
  const copy = new Uint8Array(bytes);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}
