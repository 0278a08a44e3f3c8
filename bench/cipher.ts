/**
 * AES-256-GCM on its own: `@noble/ciphers` (pure JS, audited) against
 * `node:crypto` (OpenSSL, AES-NI), encrypt and decrypt, on record-sized
 * (1 KiB, 4 KiB) and bulk (1 MiB) buffers. Both must produce the same bytes
 * (ciphertext ‖ 16-byte tag) before anything is timed.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { gcm } from '@noble/ciphers/aes.js';
import { Bench } from 'tinybench';

export interface CipherRow {
  implementation: 'noble' | 'node:crypto';
  operation: 'encrypt' | 'decrypt';
  bytes: number;
  opsPerSecond: number;
  mbPerSecond: number;
  /** Median latency of one call, µs. */
  medianMicros: number;
  samples: number;
}

export const CIPHER_SIZES = [1024, 4096, 1024 * 1024] as const;

function nodeEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  const body = cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([body, tail, cipher.getAuthTag()]);
}

function nodeDecrypt(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array {
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  const body = decipher.update(sealed.subarray(0, sealed.length - 16));
  return Buffer.concat([body, decipher.final()]);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** Time budget per task in ms (tinybench `time`); at least `minIterations` calls. */
export async function runCipherBench(options: { timeMs: number; minIterations?: number; sizes?: readonly number[] }): Promise<CipherRow[]> {
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const rows: CipherRow[] = [];
  for (const size of options.sizes ?? CIPHER_SIZES) {
    const plaintext = randomBytes(size);
    // Correctness first: same bytes from both, and each decrypts the other's.
    const sealedNoble = gcm(key, nonce).encrypt(plaintext);
    const sealedNode = nodeEncrypt(key, nonce, plaintext);
    if (!equalBytes(sealedNoble, sealedNode)) throw new Error(`AES-GCM ${size} B: noble and node:crypto disagree`);
    if (!equalBytes(gcm(key, nonce).decrypt(sealedNode), plaintext)) throw new Error(`AES-GCM ${size} B: noble cannot open node's output`);
    if (!equalBytes(nodeDecrypt(key, nonce, sealedNoble), plaintext)) throw new Error(`AES-GCM ${size} B: node cannot open noble's output`);

    const bench = new Bench({ time: options.timeMs, iterations: options.minIterations ?? 5, warmupTime: Math.min(50, options.timeMs), throws: true });
    const tasks: [CipherRow['implementation'], CipherRow['operation'], () => void][] = [
      ['noble', 'encrypt', () => void gcm(key, nonce).encrypt(plaintext)],
      ['noble', 'decrypt', () => void gcm(key, nonce).decrypt(sealedNoble)],
      ['node:crypto', 'encrypt', () => void nodeEncrypt(key, nonce, plaintext)],
      ['node:crypto', 'decrypt', () => void nodeDecrypt(key, nonce, sealedNode)],
    ];
    for (const [impl, op, fn] of tasks) bench.add(`${impl} ${op} ${size}`, fn);
    await bench.run();
    bench.tasks.forEach((task, i) => {
      const [impl, op] = tasks[i]!;
      const result = task.result;
      if (result.state !== 'completed') throw new Error(`cipher task ${task.name}: ${result.state}`);
      const medianMs = result.latency.p50;
      const opsPerSecond = 1000 / medianMs;
      rows.push({
        implementation: impl,
        operation: op,
        bytes: size,
        opsPerSecond,
        mbPerSecond: (opsPerSecond * size) / 1e6,
        medianMicros: medianMs * 1000,
        samples: result.latency.samplesCount ?? 0,
      });
    });
  }
  return rows;
}
