/**
 * Record ids kept as UTF-8 bytes (the live table's id arena) rather than one
 * JS string each: at 1M ids the strings held ~40 MiB of V8 heap and a full GC
 * with them alive took 22–38 ms (6–7 ms with the bytes). These read and
 * compare ids in place, without allocating. Ids are well-formed strings (no
 * lone surrogates: validate.ts), so their UTF-8 round-trips.
 */
import { isAscii, isUtf8 } from 'node:buffer';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** 32-bit FNV-1a over UTF-16 code units (nothing on disk depends on it). */
export function hashId(id: string): number {
  let hash = FNV_OFFSET;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), FNV_PRIME);
  return hash ^ (hash >>> 15);
}

/** `hashId` of the id whose UTF-8 is `bytes[from, to)`: the same FNV over the UTF-16 units the bytes decode to. */
export function hashIdBytes(bytes: Uint8Array, from: number, to: number): number {
  let hash = FNV_OFFSET;
  for (let i = from; i < to;) {
    const b = bytes[i]!;
    if (b < 0x80) {
      hash = Math.imul(hash ^ b, FNV_PRIME);
      i++;
      continue;
    }
    let unit: number;
    if (b < 0xe0) {
      unit = ((b & 0x1f) << 6) | (bytes[i + 1]! & 0x3f);
      i += 2;
    } else if (b < 0xf0) {
      unit = ((b & 0x0f) << 12) | ((bytes[i + 1]! & 0x3f) << 6) | (bytes[i + 2]! & 0x3f);
      i += 3;
    } else {
      // Astral: two UTF-16 units, high surrogate first.
      const point = (((b & 0x07) << 18) | ((bytes[i + 1]! & 0x3f) << 12) | ((bytes[i + 2]! & 0x3f) << 6) | (bytes[i + 3]! & 0x3f)) - 0x10000;
      hash = Math.imul(hash ^ (0xd800 + (point >> 10)), FNV_PRIME);
      unit = 0xdc00 + (point & 0x3ff);
      i += 4;
    }
    hash = Math.imul(hash ^ unit, FNV_PRIME);
  }
  return hash ^ (hash >>> 15);
}

/** Whether `bytes[from, to)` is the UTF-8 of `id`, compared as it is encoded (no copy). */
export function idEqualsBytes(id: string, bytes: Uint8Array, from: number, to: number): boolean {
  const n = id.length;
  const byteLength = to - from;
  if (byteLength === n) {
    // Only an all-ASCII id has as many UTF-8 bytes as UTF-16 units.
    for (let i = 0; i < n; i++) {
      const c = id.charCodeAt(i);
      if (c >= 0x80 || bytes[from + i] !== c) return false;
    }
    return true;
  }
  if (byteLength < n || byteLength > 3 * n) return false;
  let at = from;
  for (let i = 0; i < n; i++) {
    let c = id.charCodeAt(i);
    if (c < 0x80) {
      if (bytes[at++] !== c) return false;
    } else if (c < 0x800) {
      if (bytes[at++] !== (0xc0 | (c >> 6)) || bytes[at++] !== (0x80 | (c & 0x3f))) return false;
    } else {
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < n) {
        const low = id.charCodeAt(i + 1);
        if (low >= 0xdc00 && low < 0xe000) {
          const point = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
          if (
            bytes[at++] !== (0xf0 | (point >> 18)) ||
            bytes[at++] !== (0x80 | ((point >> 12) & 0x3f)) ||
            bytes[at++] !== (0x80 | ((point >> 6) & 0x3f)) ||
            bytes[at++] !== (0x80 | (point & 0x3f))
          )
            return false;
          i++;
          continue;
        }
      }
      if (c >= 0xd800 && c < 0xe000) c = 0xfffd; // a lone surrogate, as the encoders write it (validation keeps them out of ids)
      if (bytes[at++] !== (0xe0 | (c >> 12)) || bytes[at++] !== (0x80 | ((c >> 6) & 0x3f)) || bytes[at++] !== (0x80 | (c & 0x3f))) return false;
    }
  }
  return at === to;
}

/** UTF-16 units of the UTF-8 in `bytes[from, to)`: one per character, two per astral one. */
export function utf16Length(bytes: Uint8Array, from: number, to: number): number {
  let units = 0;
  for (let i = from; i < to; i++) {
    const b = bytes[i]!;
    if ((b & 0xc0) !== 0x80) units += b >= 0xf0 ? 2 : 1;
  }
  return units;
}

/**
 * Byte offsets of each id in a stored id list (see encodeIdList) from its
 * UTF-16 lengths, without decoding: `offsets[i]` is where id i starts,
 * `offsets[n]` the total. All-ASCII bytes (the common case) give prefix sums;
 * otherwise the UTF-8 is walked character by character, each slice's bytes
 * checked to be valid UTF-8. `slice` ids at a time, `between()` awaited in
 * between. Throws when the lengths do not match the bytes.
 */
export async function idOffsets(
  lengths: Uint32Array,
  bytes: Uint8Array,
  between: () => Promise<void>,
  slice = 65_536,
): Promise<{ offsets: Uint32Array; ascii: boolean }> {
  const n = lengths.length;
  const offsets = new Uint32Array(n + 1);
  const ascii = isAscii(bytes);
  let at = 0;
  for (let start = 0; start < n; start += slice) {
    if (start > 0) await between();
    const end = Math.min(n, start + slice);
    const from = at;
    for (let i = start; i < end; i++) {
      offsets[i] = at;
      if (ascii) {
        at += lengths[i]!;
        continue;
      }
      for (let units = lengths[i]!; units > 0;) {
        const b = bytes[at];
        if (b === undefined || (b & 0xc0) === 0x80) throw new Error('id list lengths do not match its bytes');
        if (b >= 0xf0) {
          if (units < 2) throw new Error('id list lengths split a character');
          units -= 2;
          at += 4;
        } else {
          units--;
          at += b < 0x80 ? 1 : b < 0xe0 ? 2 : 3;
        }
      }
    }
    if (at > bytes.byteLength || (!ascii && !isUtf8(bytes.subarray(from, at)))) throw new Error('id list lengths do not match its bytes');
  }
  if (at !== bytes.byteLength) throw new Error('id list lengths do not match its bytes');
  offsets[n] = at;
  return { offsets, ascii };
}
