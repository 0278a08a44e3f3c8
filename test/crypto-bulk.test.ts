/** Batched native AES-256-GCM / HMAC-SHA256 (native/crypto.cc) against node:crypto and @noble/ciphers. */
import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { gcm } from '@noble/ciphers/aes.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { open, seal } from '../src/crypto/aead.js';
import { checkRecordTags, hashIds, openRecords, sealRecords, sealRecordsAsync } from '../src/storage/sealed.js';
import { hmacMany, hmacManyPaired, openInPlaceAsync, openMany, sealAsync, sealIntoAsync, sealMany } from '../src/crypto/bulk.js';

const bytes = (max: number) => fc.uint8Array({ maxLength: max });
const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const what = (i: number) => `item ${i}`;

/** A sealed value's GMAC through node:crypto, as SealedChecks.macs defines it: the native tasks must write the same bytes. */
function gmac(macKey: Uint8Array, sealed: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-256-gcm', macKey, sealed.subarray(0, 12), { authTagLength: 16 });
  cipher.setAAD(sealed);
  cipher.final();
  return cipher.getAuthTag();
}

describe('hmacMany', () => {
  it('equals node:crypto HMAC-SHA256 of head || part || tail, for strings (UTF-8) and bytes', () => {
    fc.assert(
      fc.property(key32, bytes(80), bytes(40), fc.array(fc.oneof(fc.string({ unit: 'grapheme' }), bytes(200)), { maxLength: 20 }), (key, head, tail, parts) => {
        const macs = hmacMany(key, { head, parts, tail });
        expect(macs.byteLength).toBe(parts.length * 32);
        parts.forEach((part, i) => {
          const expected = createHmac('sha256', key).update(head).update(part).update(tail).digest();
          expect(macs.subarray(i * 32, (i + 1) * 32)).toEqual(expected);
        });
      }),
      { numRuns: 200 },
    );
  });

  it('rejects keys that are not 32 bytes', () => {
    expect(() => hmacMany(new Uint8Array(16), { parts: ['a'] })).toThrow(RangeError);
  });
});

describe('hmacManyPaired', () => {
  it('equals node:crypto HMAC-SHA256 of head || part || second from skip || tail (no concatenation by the caller)', () => {
    fc.assert(
      fc.property(
        key32,
        bytes(40),
        bytes(20),
        fc.integer({ min: 0, max: 8 }),
        fc.array(fc.tuple(bytes(40), bytes(120)), { maxLength: 20 }),
        (key, head, tail, skip, pairs) => {
          const parts = pairs.map(([a]) => a);
          const seconds = pairs.map(([, b]) => new Uint8Array([...new Uint8Array(skip).fill(7), ...b]));
          const macs = hmacManyPaired(key, { head, parts, tail }, seconds, skip);
          pairs.forEach(([a, b], i) => {
            const expected = createHmac('sha256', key).update(head).update(a).update(b).update(tail).digest();
            expect(macs.subarray(i * 32, (i + 1) * 32)).toEqual(expected);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('rejects mismatched lists and seconds shorter than skip', () => {
    const key = randomBytes(32);
    expect(() => hmacManyPaired(key, { parts: [new Uint8Array(1)] }, [], 0)).toThrow(RangeError);
    expect(() => hmacManyPaired(key, { parts: [new Uint8Array(1)] }, [new Uint8Array(2)], 3)).toThrow(RangeError);
  });
});

describe('sealRecordsAsync (storage/sealed.ts)', () => {
  it('seals in slices what sealRecords seals: writer tags that check, records that open alike', async () => {
    const [idsKey, recordsKey, authKey, indexId] = [randomBytes(32), randomBytes(32), randomBytes(32), randomBytes(16)];
    const ids = ['a', 'é', 'doc-3', ''];
    const hkeys = hashIds(idsKey, ids);
    const bodies = ids.map((id, i) => ({ id, key: i, vector: new Uint8Array(8).fill(i), metadata: { i } }));
    const between = () => new Promise<void>((resolve) => setImmediate(resolve)); // slices of 3: the tags of all 4 in one call
    // AES-GCM nonces are fresh, so the two seals differ; each one's writer tags must check, and the records open alike.
    for (const sealed of [
      await sealRecordsAsync(recordsKey, indexId, hkeys, 9, bodies, authKey, between, 3),
      sealRecords(recordsKey, indexId, hkeys, 9, bodies, authKey),
    ]) {
      expect(() => checkRecordTags(authKey, indexId, hkeys, sealed)).not.toThrow();
      expect(openRecords(recordsKey, indexId, hkeys, sealed).map((r) => [r.seq, r.body.id])).toEqual(ids.map((id) => [9, id]));
      const forged = sealed.map((v) => Buffer.from(v));
      forged[2]![forged[2]!.byteLength - 1]! ^= 1; // the tag covers the seal: a changed byte no longer checks
      expect(() => checkRecordTags(authKey, indexId, hkeys, forged)).toThrow(expect.objectContaining({ code: 'VECVAULT_INTEGRITY' }));
    }
    const unsigned = await sealRecordsAsync(recordsKey, indexId, hkeys, 9, bodies, undefined, between, 3);
    expect(unsigned.every((v) => v[0] === 2)).toBe(true); // format 2: no tag without the record-auth key
  });
});

describe('sealMany / openMany', () => {
  it('seals what aead.ts and noble open, opens what they seal, with the AAD framed as head || part || tail', () => {
    fc.assert(
      fc.property(
        key32,
        bytes(12),
        bytes(30),
        bytes(10),
        fc.array(fc.tuple(bytes(2000), bytes(40)), { minLength: 1, maxLength: 12 }),
        (key, prefix, head, tail, items) => {
          const plaintexts = items.map(([pt]) => pt);
          const parts = items.map(([, part]) => part);
          const aadOf = (i: number) => Buffer.concat([head, parts[i]!, tail]);
          const sealed = sealMany(key, plaintexts, { head, parts, tail }, prefix);
          sealed.forEach((value, i) => {
            expect(value.subarray(0, prefix.byteLength)).toEqual(Buffer.from(prefix));
            const body = value.subarray(prefix.byteLength);
            expect(open(key, body, aadOf(i), 'x')).toEqual(Buffer.from(plaintexts[i]!));
            expect(Buffer.from(gcm(key, body.subarray(0, 12), aadOf(i)).decrypt(body.subarray(12)))).toEqual(Buffer.from(plaintexts[i]!));
          });
          const byNode = plaintexts.map((pt, i) => Buffer.concat([Buffer.from(prefix), seal(key, pt, aadOf(i))]));
          const opened = openMany(key, byNode, prefix.byteLength, { head, parts, tail }, what);
          opened.forEach((pt, i) => expect(pt).toEqual(Buffer.from(plaintexts[i]!)));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('uses a fresh nonce per item and per call', () => {
    const key = randomBytes(32);
    const pts = Array.from({ length: 500 }, () => new Uint8Array(16));
    const parts = pts.map(() => new Uint8Array(0));
    const nonces = new Set([...sealMany(key, pts, { parts }), ...sealMany(key, pts, { parts })].map((v) => v.subarray(0, 12).toString('hex')));
    expect(nonces.size).toBe(1000);
  });

  it('names the first item that fails: flipped byte, wrong AAD part, truncated tag, too short', () => {
    const key = randomBytes(32);
    const pts = [Buffer.from('alpha'), Buffer.from('beta'), Buffer.from('gamma')];
    const parts = [Buffer.from('p0'), Buffer.from('p1'), Buffer.from('p2')];
    const good = sealMany(key, pts, { parts });
    const attempt =
      (sealed: Uint8Array[], aadParts = parts) =>
      () =>
        openMany(key, sealed, 0, { parts: aadParts }, what);
    expect(attempt(good)().map(String)).toEqual(['alpha', 'beta', 'gamma']);
    const flipped = Buffer.from(good[1]!);
    flipped[14]! ^= 1;
    expect(attempt([good[0]!, flipped, good[2]!])).toThrow(expect.objectContaining({ code: 'VECVAULT_INTEGRITY', message: expect.stringContaining('item 1') }));
    expect(attempt(good, [parts[0]!, parts[1]!, Buffer.from('p3')])).toThrow(expect.objectContaining({ message: expect.stringContaining('item 2') }));
    expect(attempt([good[0]!.subarray(0, good[0]!.byteLength - 4), good[1]!, good[2]!])).toThrow(
      expect.objectContaining({ message: expect.stringContaining('item 0') }),
    );
    expect(attempt([good[0]!, new Uint8Array(10), good[2]!])).toThrow(expect.objectContaining({ message: expect.stringContaining('item 1') }));
  });

  it('openInPlaceAsync opens large values over their own ciphertext on the pool, names a forged one and wipes what it decrypted', async () => {
    const key = randomBytes(32);
    const pts = [randomBytes(1 << 20), randomBytes(12345), Buffer.alloc(0)];
    const aads = [Buffer.from('c0'), Buffer.from('c1'), Buffer.from('c2-last')];
    const sealed = pts.map((pt, i) => seal(key, pt, aads[i]!));
    const copies = sealed.map((s) => Buffer.from(s));
    const opened = await openInPlaceAsync(key, copies, aads, what);
    opened.forEach((pt, i) => {
      expect(Buffer.compare(pt, pts[i]!)).toBe(0);
      expect(pt.buffer).toBe(copies[i]!.buffer); // a view: no copy was made
    });
    const reordered = [Buffer.from(sealed[0]!), Buffer.from(sealed[2]!), Buffer.from(sealed[1]!)];
    await expect(openInPlaceAsync(key, reordered, aads, what)).rejects.toMatchObject({
      code: 'VECVAULT_INTEGRITY',
      message: expect.stringContaining('item 1'),
    });
    // Chunk 0 authenticated and was decrypted in place before chunk 1 failed: its plaintext must not be left behind.
    expect(reordered[0]!.subarray(12, reordered[0]!.byteLength - 16).every((b) => b === 0)).toBe(true);
    // In place needs bytes it may write: a string (which the sync calls accept as UTF-8) is refused.
    await expect(openInPlaceAsync(key, ['not bytes' as unknown as Uint8Array], [aads[0]!], what)).rejects.toThrow(TypeError);
  });

  it('sealAsync seals large values on the pool in the aead.ts format, fresh nonce each', async () => {
    const key = randomBytes(32);
    const pts = [randomBytes(1 << 20), randomBytes(777), Buffer.alloc(0)];
    const aads = [Buffer.from('a0'), Buffer.from('a1'), Buffer.from('a2')];
    const sealed = await sealAsync(key, pts, aads);
    sealed.forEach((value, i) => {
      expect(open(key, value, aads[i]!, 'x')).toEqual(pts[i]);
      expect(() => open(key, value, aads[(i + 1) % 3]!, 'x')).toThrow(expect.objectContaining({ code: 'VECVAULT_INTEGRITY' }));
    });
    expect(new Set(sealed.map((v) => v.subarray(0, 12).toString('hex'))).size).toBe(3);
  });

  it('checks of sealed values (SHA-256, GMAC) are the same bytes whether sealing, sealing into a buffer or opening, and equal node:crypto and noble', async () => {
    const key = randomBytes(32);
    const macKey = randomBytes(32);
    const pts = [randomBytes(1 << 20), randomBytes(4321), Buffer.alloc(0)];
    const aads = pts.map((_, i) => Buffer.from(`chunk ${i}`));
    const fresh = () => ({ digests: Buffer.alloc(32 * 3), macs: Buffer.alloc(16 * 3), macKey });
    const sealedChecks = fresh();
    const sealed = await sealAsync(key, pts, aads, sealedChecks);
    const intoChecks = fresh();
    const out = Buffer.alloc(pts.reduce((n, p) => n + p.byteLength + 28, 0));
    const into = await sealIntoAsync(key, pts, aads, out, intoChecks);
    sealed.forEach((value, i) => {
      expect(sealedChecks.digests.subarray(32 * i, 32 * (i + 1))).toEqual(createHash('sha256').update(value).digest());
      // GMAC: AES-256-GCM under the MAC key, the value's own nonce as IV, the whole value as AAD, nothing encrypted.
      const nobleTag = gcm(macKey, value.subarray(0, 12), value).encrypt(new Uint8Array(0));
      expect(sealedChecks.macs.subarray(16 * i, 16 * (i + 1))).toEqual(Buffer.from(nobleTag));
      expect(sealedChecks.macs.subarray(16 * i, 16 * (i + 1))).toEqual(gmac(macKey, value));
      expect(intoChecks.digests.subarray(32 * i, 32 * (i + 1))).toEqual(createHash('sha256').update(into[i]!).digest());
      expect(intoChecks.macs.subarray(16 * i, 16 * (i + 1))).toEqual(gmac(macKey, into[i]!));
    });
    // Opening computes them over the bytes as sealed, before decrypting in place; one flipped bit changes both.
    const copies = sealed.map((v) => Buffer.from(v));
    const openChecks = fresh();
    await openInPlaceAsync(key, copies, aads, what, openChecks);
    expect(openChecks).toEqual(sealedChecks);
    const copiesOf = () => sealed.map((v) => Buffer.from(v));
    const otherKey = { macs: Buffer.alloc(16 * 3), macKey: randomBytes(32) };
    await openInPlaceAsync(key, copiesOf(), aads, what, otherKey);
    expect(otherKey.macs.subarray(16, 32)).toEqual(gmac(otherKey.macKey, sealed[1]!));
    expect(otherKey.macs.subarray(16, 32)).not.toEqual(sealedChecks.macs.subarray(16, 32)); // keyed: another key, another MAC
    const flipped = Buffer.from(sealed[1]!);
    flipped[100]! ^= 1;
    expect(gmac(macKey, flipped)).not.toEqual(gmac(macKey, sealed[1]!));
    // Only the checks asked for are computed; wrong sizes and a missing MAC key are refused before any work.
    const digestsOnly = { digests: Buffer.alloc(32 * 3) };
    await openInPlaceAsync(key, copiesOf(), aads, what, digestsOnly);
    expect(digestsOnly.digests).toEqual(sealedChecks.digests);
    await expect(sealAsync(key, pts, aads, { digests: Buffer.alloc(32 * 2) })).rejects.toThrow(RangeError);
    await expect(sealAsync(key, pts, aads, { macs: Buffer.alloc(32 * 3), macKey })).rejects.toThrow(RangeError);
    await expect(sealAsync(key, pts, aads, { macs: Buffer.alloc(16 * 3) })).rejects.toThrow(/checks.macKey/);
    await expect(sealAsync(key, pts, aads, { macs: Buffer.alloc(16 * 3), macKey: Buffer.alloc(16) })).rejects.toThrow(RangeError);
    // Too short to be sealed: an IntegrityError naming the item whatever the checks (a corrupt chunk, not a crash).
    for (const checks of [undefined, { digests: Buffer.alloc(64) }, { macs: Buffer.alloc(32), macKey }]) {
      await expect(openInPlaceAsync(key, [Buffer.from(sealed[0]!), Buffer.alloc(20)], aads.slice(0, 2), what, checks)).rejects.toMatchObject({
        code: 'VECVAULT_INTEGRITY',
        message: expect.stringContaining('item 1'),
      });
    }
  });
});
