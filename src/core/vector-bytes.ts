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

/** A record's vector bytes as plain numbers (what `get` and `query` return), read in one pass without an intermediate copy. */
export function vectorNumbers(bytes: Uint8Array): number[] {
  const n = bytes.byteLength >> 2;
  const out: number[] = [];
  if ((bytes.byteOffset & 3) === 0) {
    const values = new Float32Array(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < n; i++) out.push(values[i]!);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out.push(view.getFloat32(4 * i, true));
  }
  return out;
}
