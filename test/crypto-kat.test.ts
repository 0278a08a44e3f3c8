/**
 * Known-answer tests: Project Wycheproof's AES-GCM vectors (../shared/data/wycheproof,
 * read in place, never copied) against both OpenSSL paths, node:crypto
 * (src/crypto/aead.ts) and the batched native calls (src/crypto/bulk.ts).
 *
 * Our sealed layout is nonce(12) || ciphertext || tag(16), the key is 32 bytes
 * and nonces are made inside the library, so:
 * - 256-bit key, 96-bit IV, 128-bit tag: `valid` vectors must open to `msg`
 *   (from iv || ct || tag with the AAD), `invalid` ones must throw IntegrityError;
 * - other IV sizes cannot be expressed: iv || ct || tag must be rejected
 *   (IntegrityError), whatever Wycheproof's verdict on the vector;
 * - 128/192-bit keys are not taken by the API: it must refuse them.
 * Every vector lands in exactly one of these buckets (the counts are checked
 * against the file's `numberOfTests`), so none is skipped silently.
 *
 * Encryption: aead.ts takes its nonce from node:crypto's randomBytes, which
 * this file mocks to return the vector's IV on request (a test-only seam, the
 * module is unchanged), so `seal` is checked against ct || tag. The native
 * paths draw nonces from OpenSSL's RAND_bytes with no seam: for them only
 * decryption is checked.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { open, seal } from '../src/crypto/aead.js';
import { openInPlaceAsync, openMany } from '../src/crypto/bulk.js';
import { IntegrityError } from '../src/errors.js';

const fixedNonce = vi.hoisted(() => ({ value: undefined as Buffer | undefined }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const randomBytes = ((size: number, ...rest: unknown[]) =>
    fixedNonce.value !== undefined && size === 12 && rest.length === 0
      ? Buffer.from(fixedNonce.value)
      : (actual.randomBytes as (...args: unknown[]) => unknown)(size, ...rest)) as typeof actual.randomBytes;
  return { ...actual, randomBytes };
});

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface WycheproofFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: { keySize: number; ivSize: number; tagSize: number; tests: WycheproofTest[] }[];
}

interface Vector {
  tcId: number;
  result: WycheproofTest['result'];
  key: Buffer;
  aad: Buffer;
  msg: Buffer;
  iv: Buffer;
  ct: Buffer;
  tag: Buffer;
  /** iv || ct || tag: what our API opens. */
  sealed: Buffer;
}

const FILE = fileURLToPath(new URL('../../shared/data/wycheproof/aes_gcm_test.json', import.meta.url));
const present = existsSync(FILE);
if (!present) console.log(`crypto-kat: skipped, ${FILE} is absent (the Wycheproof vectors live beside the project, in ../shared/data)`);

const hex = (s: string) => Buffer.from(s, 'hex');
const what = (i: number) => `vector ${i}`;

function load(): { file: WycheproofFile; ours: Vector[]; otherIvOrTag: Vector[]; otherKeySize: Vector[] } {
  const file = JSON.parse(readFileSync(FILE, 'utf8')) as WycheproofFile;
  const ours: Vector[] = [];
  const otherIvOrTag: Vector[] = [];
  const otherKeySize: Vector[] = [];
  for (const group of file.testGroups) {
    for (const t of group.tests) {
      const v: Vector = {
        tcId: t.tcId,
        result: t.result,
        key: hex(t.key),
        aad: hex(t.aad),
        msg: hex(t.msg),
        iv: hex(t.iv),
        ct: hex(t.ct),
        tag: hex(t.tag),
        sealed: hex(t.iv + t.ct + t.tag),
      };
      // Sizes from the bytes themselves, not only the group header.
      if (v.key.byteLength !== 32 || group.keySize !== 256) otherKeySize.push(v);
      else if (v.iv.byteLength !== 12 || v.tag.byteLength !== 16 || group.ivSize !== 96 || group.tagSize !== 128) otherIvOrTag.push(v);
      else ours.push(v);
    }
  }
  return { file, ours, otherIvOrTag, otherKeySize };
}

/** Runs `fn` and returns what it threw (undefined if nothing). */
async function thrown(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe.skipIf(!present)('Wycheproof AES-GCM (aes_gcm_test.json)', () => {
  const { file, ours, otherIvOrTag, otherKeySize } = present ? load() : { file: undefined, ours: [], otherIvOrTag: [], otherKeySize: [] };
  const valid = ours.filter((v) => v.result === 'valid');
  const invalid = ours.filter((v) => v.result === 'invalid');
  const acceptable = ours.filter((v) => v.result === 'acceptable');

  it('sorts every vector into exactly one bucket (none skipped silently)', () => {
    const counts = {
      total: file!.numberOfTests,
      key256iv96tag128: { valid: valid.length, invalid: invalid.length, acceptable: acceptable.length },
      key256OtherIvOrTag: otherIvOrTag.length,
      otherKeySizes: otherKeySize.length,
    };
    console.log('crypto-kat vectors:', JSON.stringify(counts));
    expect(file!.algorithm).toBe('AES-GCM');
    expect(ours.length + otherIvOrTag.length + otherKeySize.length).toBe(file!.numberOfTests);
    expect(valid.length).toBeGreaterThan(0);
    expect(invalid.length).toBeGreaterThan(0);
    expect(otherIvOrTag.length).toBeGreaterThan(0);
  });

  describe('aead.ts (node:crypto)', () => {
    it('opens every valid 256/96/128 vector to its message', () => {
      for (const v of valid)
        expect({ tcId: v.tcId, pt: open(v.key, v.sealed, v.aad, 'kat').toString('hex') }).toEqual({ tcId: v.tcId, pt: v.msg.toString('hex') });
    });

    it('seals every valid 256/96/128 vector to iv || ct || tag when handed the vector IV (randomBytes seam)', () => {
      try {
        for (const v of valid) {
          fixedNonce.value = v.iv;
          expect({ tcId: v.tcId, sealed: seal(v.key, v.msg, v.aad).toString('hex') }).toEqual({ tcId: v.tcId, sealed: v.sealed.toString('hex') });
        }
      } finally {
        fixedNonce.value = undefined;
      }
      // The seam is off again: nonces are random.
      const a = seal(valid[0]!.key, valid[0]!.msg, valid[0]!.aad);
      expect(a.subarray(0, 12)).not.toEqual(valid[0]!.iv);
    });

    /** Every vector's open throws IntegrityError (the tcId names the one that does not). */
    const expectIntegrityErrors = (vectors: Vector[]) => {
      for (const v of vectors) {
        let error: unknown;
        try {
          open(v.key, v.sealed, v.aad, 'kat');
        } catch (e) {
          error = e;
        }
        expect({ tcId: v.tcId, integrity: error instanceof IntegrityError }).toEqual({ tcId: v.tcId, integrity: true });
      }
    };

    it('throws IntegrityError for every invalid 256/96/128 vector', () => expectIntegrityErrors(invalid));

    it('rejects (IntegrityError) every 256-bit vector whose IV is not 12 bytes, valid or not: the layout cannot express it', () =>
      expectIntegrityErrors(otherIvOrTag));

    it('refuses the 128/192-bit keys (the API takes 32-byte keys only)', () => {
      for (const v of otherKeySize) {
        expect(() => open(v.key, v.sealed, v.aad, 'kat')).toThrow();
        expect(() => seal(v.key, v.msg, v.aad)).toThrow();
      }
    });
  });

  describe('bulk.ts (native OpenSSL, batched)', () => {
    it('openMany opens every valid 256/96/128 vector, one at a time and all in one batch (same key), with a prefix skipped and the AAD split into head || part || tail', () => {
      for (const v of valid) {
        expect({ tcId: v.tcId, pt: openMany(v.key, [v.sealed], 0, { parts: [v.aad] }, what)[0]!.toString('hex') }).toEqual({
          tcId: v.tcId,
          pt: v.msg.toString('hex'),
        });
        const prefix = Buffer.from('pfx');
        const cut1 = Math.floor(v.aad.byteLength / 3);
        const cut2 = Math.floor((2 * v.aad.byteLength) / 3);
        const framed = { head: v.aad.subarray(0, cut1), parts: [v.aad.subarray(cut1, cut2)], tail: v.aad.subarray(cut2) };
        expect(openMany(v.key, [Buffer.concat([prefix, v.sealed])], prefix.byteLength, framed, what)[0]!.toString('hex')).toBe(v.msg.toString('hex'));
      }
      const byKey = new Map<string, Vector[]>();
      for (const v of valid) byKey.set(v.key.toString('hex'), [...(byKey.get(v.key.toString('hex')) ?? []), v]);
      let batched = 0;
      for (const group of byKey.values()) {
        const opened = openMany(
          group[0]!.key,
          group.map((v) => v.sealed),
          0,
          { parts: group.map((v) => v.aad) },
          what,
        );
        opened.forEach((pt, i) => expect(pt.toString('hex')).toBe(group[i]!.msg.toString('hex')));
        if (group.length > 1) batched += group.length;
      }
      expect(batched).toBeGreaterThan(1);
    });

    it('openMany throws IntegrityError for every invalid 256/96/128 vector, alone and between valid items of the same key (naming its index)', () => {
      for (const v of invalid) {
        const error = (() => {
          try {
            openMany(v.key, [v.sealed], 0, { parts: [v.aad] }, what);
          } catch (e) {
            return e;
          }
        })();
        expect({ tcId: v.tcId, integrity: error instanceof IntegrityError }).toEqual({ tcId: v.tcId, integrity: true });
        // A valid item sealed under the same key (by aead.ts) on each side.
        const good = seal(v.key, Buffer.from('ok'), Buffer.from('a'));
        expect(() => openMany(v.key, [good, v.sealed, good], 0, { parts: [Buffer.from('a'), v.aad, Buffer.from('a')] }, what)).toThrow(
          expect.objectContaining({ code: 'VECVAULT_INTEGRITY', message: expect.stringContaining('vector 1') }),
        );
      }
    });

    it('openInPlaceAsync opens every valid 256/96/128 vector in place, batched per key', async () => {
      const byKey = new Map<string, Vector[]>();
      for (const v of valid) byKey.set(v.key.toString('hex'), [...(byKey.get(v.key.toString('hex')) ?? []), v]);
      for (const group of byKey.values()) {
        const copies = group.map((v) => Buffer.from(v.sealed));
        const opened = await openInPlaceAsync(
          group[0]!.key,
          copies,
          group.map((v) => v.aad),
          what,
        );
        opened.forEach((pt, i) =>
          expect({ tcId: group[i]!.tcId, pt: Buffer.from(pt).toString('hex') }).toEqual({ tcId: group[i]!.tcId, pt: group[i]!.msg.toString('hex') }),
        );
      }
    });

    it('openInPlaceAsync rejects every invalid 256/96/128 vector with IntegrityError', async () => {
      for (const v of invalid) {
        const error = await thrown(() => openInPlaceAsync(v.key, [Buffer.from(v.sealed)], [v.aad], what));
        expect({ tcId: v.tcId, integrity: error instanceof IntegrityError }).toEqual({ tcId: v.tcId, integrity: true });
      }
    });

    it('openMany and openInPlaceAsync reject (IntegrityError) every 256-bit vector whose IV is not 12 bytes', async () => {
      for (const v of otherIvOrTag) {
        const sync = await thrown(() => openMany(v.key, [v.sealed], 0, { parts: [v.aad] }, what));
        const async = await thrown(() => openInPlaceAsync(v.key, [Buffer.from(v.sealed)], [v.aad], what));
        expect({ tcId: v.tcId, sync: sync instanceof IntegrityError, async: async instanceof IntegrityError }).toEqual({
          tcId: v.tcId,
          sync: true,
          async: true,
        });
      }
    });

    it('refuse the 128/192-bit keys (RangeError: keys are 32 bytes)', async () => {
      for (const v of otherKeySize) {
        expect(() => openMany(v.key, [v.sealed], 0, { parts: [v.aad] }, what)).toThrow(RangeError);
        expect(await thrown(() => openInPlaceAsync(v.key, [Buffer.from(v.sealed)], [v.aad], what))).toBeInstanceOf(RangeError);
      }
    });
  });

  it('any `acceptable` 256/96/128 vector gets the same answer from both paths', async () => {
    for (const v of acceptable) {
      const viaNode = await thrown(() => open(v.key, v.sealed, v.aad, 'kat'));
      const viaNative = await thrown(() => openMany(v.key, [v.sealed], 0, { parts: [v.aad] }, what));
      expect({ tcId: v.tcId, nodeOpened: viaNode === undefined }).toEqual({ tcId: v.tcId, nodeOpened: viaNative === undefined });
    }
  });
});
