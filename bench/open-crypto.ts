/**
 * `npx tsx bench/open-crypto.ts [MiB] [reps]`: the CPU of authenticating snapshot chunks on open, alone:
 * `openInPlaceAsync` over MiB sealed 1 MiB chunks, two per pool task, one task at a time (the cost per
 * byte, without the pool's parallelism), with each check an open can run beside the decryption: none
 * (an unsigned index), a SHA-256 per sealed chunk (a signed index opened by a reader) and a GMAC per
 * sealed chunk (opened by a writer or the root: SnapshotRef.chunkMacs). Each rep decrypts fresh copies
 * (in place); the copying is outside the timing. The three run alternated, rep by rep.
 */
import { randomBytes } from 'node:crypto';
import { GMAC_BYTES, openInPlaceAsync, sealAsync, type SealedChecks } from '../src/crypto/bulk.js';

const mib = Number(process.argv[2] ?? 100);
const reps = Number(process.argv[3] ?? 5);
const key = randomBytes(32);
const macKey = randomBytes(32);
const aad = (i: number) => Buffer.from(`chunk ${i}`);
const plain = Array.from({ length: mib }, () => randomBytes(1 << 20));
const sealed = await sealAsync(
  key,
  plain,
  plain.map((_, i) => aad(i)),
);
const kinds = {
  'AES-256-GCM open alone': () => undefined,
  '+ SHA-256 per chunk': (n: number): SealedChecks => ({ digests: Buffer.alloc(32 * n) }),
  '+ GMAC per chunk': (n: number): SealedChecks => ({ macs: Buffer.alloc(GMAC_BYTES * n), macKey }),
};
const times = new Map<string, { wall: number; cpu: number }[]>(Object.keys(kinds).map((k) => [k, []]));
for (let rep = 0; rep < reps; rep++) {
  for (const [kind, checks] of Object.entries(kinds)) {
    const work = sealed.map((s) => new Uint8Array(s)); // fresh, faulted-in copies
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < mib; i += 2) {
      const n = Math.min(2, mib - i);
      await openInPlaceAsync(
        key,
        work.slice(i, i + n),
        Array.from({ length: n }, (_, j) => aad(i + j)),
        (j) => `chunk ${i + j}`,
        checks(n),
      );
    }
    const cpu = process.cpuUsage(c0);
    times.get(kind)!.push({ wall: performance.now() - t0, cpu: (cpu.user + cpu.system) / 1000 });
    if (!Buffer.from(work[mib - 1]!.subarray(12, 12 + 64)).equals(plain[mib - 1]!.subarray(0, 64))) throw new Error('wrong plaintext');
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
for (const [kind, ts] of times) {
  const cpu = median(ts.map((t) => t.cpu));
  console.log(
    `${mib} MiB, ${kind}: wall median ${median(ts.map((t) => t.wall)).toFixed(1)} ms, CPU median ${cpu.toFixed(1)} ms (${((mib / 1024 / cpu) * 1000).toFixed(2)} GiB/s)`,
  );
}
