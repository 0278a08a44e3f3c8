/**
 * The manifest digest is the XOR of one tag per live record (see
 * IndexStore.liveTags): adding or removing a record XORs its tag in or out.
 */

/** XORs one or more consecutive tags (each `target.length` bytes) into `target`. */
export function xorInto(target: Uint8Array, tags: Uint8Array): void {
  const width = target.length;
  for (let i = 0; i < tags.length; i++) target[i % width]! ^= tags[i]!;
}
