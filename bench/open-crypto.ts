/**
 * `npx tsx bench/open-crypto.ts [MiB] [reps]`: the CPU of authenticating snapshot chunks on open, alone:
 * `openInPlaceAsync` with a SHA-256 per sealed chunk (as a signed index's open does), over MiB sealed 1 MiB
 * chunks, two per pool task, one task at a time (the cost per byte, without the pool's parallelism).
 * Each rep decrypts fresh copies (in place); the copying is outside the timing.
 */
import { randomBytes } from 'node:crypto';
import { openInPlaceAsync, sealAsync } from '../src/crypto/bulk.js';

const mib = Number(process.argv[2] ?? 100);
const reps = Number(process.argv[3] ?? 5);
const key = randomBytes(32);
const aad = (i: number) => Buffer.from(`chunk ${i}`);
const plain = Array.from({ length: mib }, () => randomBytes(1 << 20));
const sealed = await sealAsync(
  key,
  plain,
  plain.map((_, i) => aad(i)),
);
const times: { wall: number; cpu: number }[] = [];
for (let rep = 0; rep < reps; rep++) {
  const work = sealed.map((s) => new Uint8Array(s)); // fresh, faulted-in copies
  const digests = Buffer.alloc(32 * mib);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < mib; i += 2) {
    const n = Math.min(2, mib - i);
    await openInPlaceAsync(
      key,
      work.slice(i, i + n),
      Array.from({ length: n }, (_, j) => aad(i + j)),
      (j) => `chunk ${i + j}`,
      digests.subarray(32 * i, 32 * (i + n)),
    );
  }
  const cpu = process.cpuUsage(c0);
  times.push({ wall: performance.now() - t0, cpu: (cpu.user + cpu.system) / 1000 });
  if (!Buffer.from(work[mib - 1]!.subarray(12, 12 + 64)).equals(plain[mib - 1]!.subarray(0, 64))) throw new Error('wrong plaintext');
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
console.log(
  `${mib} MiB, SHA-256 + AES-256-GCM open in place: wall ${times.map((t) => t.wall.toFixed(1)).join(' ')} ms (median ${median(times.map((t) => t.wall)).toFixed(1)}), ` +
    `CPU median ${median(times.map((t) => t.cpu)).toFixed(1)} ms`,
);
