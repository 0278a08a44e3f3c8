/**
 * The `generateKey({ save: true })` key cache (src/keys/index-key.ts): racing
 * writers in worker threads of one process, symlinks, FIFOs, permissions,
 * ownership and size of the cache file and its directory.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';
import { KeyCacheError, ValidationError } from '../src/errors.js';
import { generateKey } from '../src/keys/index-key.js';
import { tempStore, tsWorkerBoot } from './support/helpers.js';

// Lets a test predict the library's random temp-file name (randomBytes(12)) to plant a symlink there.
const tempName = vi.hoisted(() => ({ bytes: undefined as Buffer | undefined }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const randomBytes = ((size: number) => (size === 12 && tempName.bytes ? Buffer.from(tempName.bytes) : actual.randomBytes(size))) as typeof actual.randomBytes;
  return { ...actual, randomBytes };
});

interface RaceOutcome {
  calls: number;
  /** Calls that returned a key other than the one in the cache file afterwards. */
  mismatches: number;
  /** Rounds whose final cache file is not 32 bytes (or missing). */
  badFiles: number;
  /** Calls that threw, by error code. */
  errors: Record<string, number>;
  /** Files other than the cache left in a round's directory (temp files). */
  leftovers: number;
}

const indexKeyTs = fileURLToPath(new URL('../src/keys/index-key.ts', import.meta.url));

// The pre-fix writer, verbatim in behaviour: a per-process temp name opened
// with flag 'w' (shared by worker threads, follows symlinks), chmod, link, no fsync.
const NAIVE = `
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
function readCachedKey(path) {
  if (statSync(path).mode & 0o077) throw Object.assign(new Error('mode'), { code: 'VECVAULT_VALIDATION' });
  const bytes = readFileSync(path);
  if (bytes.byteLength !== 32) throw Object.assign(new Error('size'), { code: 'VECVAULT_VALIDATION' });
  return new Uint8Array(bytes);
}
function generateKey({ path }) {
  if (existsSync(path)) return readCachedKey(path);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const key = new Uint8Array(randomBytes(32));
  const tmp = path + '.' + process.pid + '.tmp';
  writeFileSync(tmp, key, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  try {
    linkSync(tmp, path);
  } catch (error) {
    if (error.code === 'EEXIST') return readCachedKey(path);
    throw error;
  } finally {
    rmSync(tmp, { force: true });
  }
  return key;
}
`;

/**
 * `workers` worker threads each call generateKey({ save: true }) on the same
 * fresh path per round (directory absent), released together by a barrier,
 * for `rounds` rounds; every returned key is compared with the file left behind.
 */
async function race(impl: 'library' | 'naive', workers: number, rounds: number): Promise<RaceOutcome> {
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-keyrace-'));
  try {
    const base = join(dir, 'caches');
    const header = impl === 'library' ? `import { generateKey } from ${JSON.stringify(pathToFileURL(indexKeyTs).href)};` : NAIVE;
    const file = join(dir, 'worker.mts');
    writeFileSync(
      file,
      `${header}
import { parentPort, workerData } from 'node:worker_threads';
const { base, rounds, workers, shared } = workerData;
const sync = new Int32Array(shared);
const out = [];
for (let r = 0; r < rounds; r++) {
  // Barrier: the last worker to arrive releases round r for everyone.
  if (Atomics.add(sync, 0, 1) + 1 === workers * (r + 1)) {
    Atomics.store(sync, 1, r + 1);
    Atomics.notify(sync, 1);
  } else {
    while (Atomics.load(sync, 1) <= r) Atomics.wait(sync, 1, r, 20);
  }
  try {
    out.push({ key: Buffer.from(generateKey({ save: true, path: base + '/' + r + '/index_key' })).toString('hex') });
  } catch (error) {
    out.push({ error: String(error?.code ?? error) + (error?.syscall ? ':' + error.syscall : '') });
  }
}
parentPort.postMessage(out);
`,
    );
    const boot = tsWorkerBoot(dir, file);
    const shared = new SharedArrayBuffer(8);
    const results = await Promise.all(
      Array.from(
        { length: workers },
        () =>
          new Promise<{ key?: string; error?: string }[]>((resolve, reject) => {
            const worker = new Worker(boot, { workerData: { base, rounds, workers, shared } });
            worker.once('message', resolve);
            worker.once('error', reject);
          }),
      ),
    );
    const outcome: RaceOutcome = { calls: 0, mismatches: 0, badFiles: 0, errors: {}, leftovers: 0 };
    for (let r = 0; r < rounds; r++) {
      const cache = join(base, String(r), 'index_key');
      const saved = existsSync(cache) ? readFileSync(cache) : undefined;
      if (saved?.byteLength !== 32) outcome.badFiles++;
      if (existsSync(join(base, String(r)))) outcome.leftovers += readdirSync(join(base, String(r))).filter((name) => name !== 'index_key').length;
      for (const calls of results) {
        const result = calls[r]!;
        outcome.calls++;
        if (result.error !== undefined) outcome.errors[result.error] = (outcome.errors[result.error] ?? 0) + 1;
        else if (saved === undefined || result.key !== saved.toString('hex')) outcome.mismatches++;
      }
    }
    return outcome;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('generateKey({ save: true }) under concurrency', () => {
  it('8 worker threads racing on fresh paths all get the key that was saved, with no errors', async () => {
    const outcome = await race('library', 8, 300);
    console.log('library race:', JSON.stringify(outcome));
    expect(outcome).toEqual({ calls: 2400, mismatches: 0, badFiles: 0, errors: {}, leftovers: 0 });
  });
});

describe('the race harness against the pre-fix writer (negative control)', () => {
  it('the same 8-thread race makes the old per-pid temp-file writer return keys that are not the saved one, or fail', async () => {
    const outcome = await race('naive', 8, 300);
    console.log('naive race:', JSON.stringify(outcome));
    const failures = outcome.mismatches + Object.values(outcome.errors).reduce((a, b) => a + b, 0);
    expect(failures).toBeGreaterThan(0);
  });
});

const KEY_CACHE = { code: 'VECVAULT_KEY_CACHE' };
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** A fresh cache path in a fresh private directory (`dir` exists, 0700, `path` absent). */
function freshCache(): { dir: string; path: string } {
  const dir = join(tempStore('vecvault-keycache-'), 'keys');
  mkdirSync(dir, { mode: 0o700 });
  return { dir, path: join(dir, 'index_key') };
}

function expectCacheError(path: string): KeyCacheError {
  let caught: unknown;
  try {
    generateKey({ save: true, path });
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(KeyCacheError);
  expect(caught).toMatchObject(KEY_CACHE);
  return caught as KeyCacheError;
}

describe('generateKey({ save: true }): creating the cache', () => {
  it('creates the directory 0700 and the file 0600 (32 bytes), leaves no temp file, and returns the same key later', () => {
    const root = tempStore('vecvault-keycache-');
    const path = join(root, 'a', 'b', 'index_key');
    const key = generateKey({ save: true, path });
    expect(key.byteLength).toBe(32);
    expect(statSync(join(root, 'a')).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'a', 'b')).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path)).toEqual(Buffer.from(key));
    expect(readdirSync(join(root, 'a', 'b'))).toEqual(['index_key']);
    expect(generateKey({ save: true, path })).toEqual(key);
  });

  it('accepts a directory others may read and search (0755) and a read-only key file (0400)', () => {
    const { dir, path } = freshCache();
    const key = generateKey({ save: true, path });
    chmodSync(dir, 0o755);
    chmodSync(path, 0o400);
    expect(generateKey({ save: true, path })).toEqual(key);
  });

  it('a path that is not a non-empty string is a ValidationError', () => {
    expect(() => generateKey({ save: true, path: '' })).toThrow(ValidationError);
    expect(() => generateKey({ save: true, path: 42 as unknown as string })).toThrow(expect.objectContaining({ code: 'VECVAULT_VALIDATION', path: 'path' }));
  });
});

describe('generateKey({ save: true }): symbolic links are never followed', () => {
  it('a symlink planted at the cache path is refused; the file it points to is neither read nor changed', () => {
    const { dir, path } = freshCache();
    const victim = join(dir, '..', 'victim');
    const original = Buffer.alloc(32, 7); // a valid-looking key: following the link would return it
    writeFileSync(victim, original, { mode: 0o600 });
    symlinkSync(victim, path);
    expectCacheError(path);
    expect(readFileSync(victim)).toEqual(original);
    expect(statSync(victim).mode & 0o777).toBe(0o600);
  });

  it('a dangling symlink at the cache path is refused and its target is not created', () => {
    const { dir, path } = freshCache();
    const victim = join(dir, '..', 'created-through-link');
    symlinkSync(victim, path);
    expectCacheError(path);
    expect(existsSync(victim)).toBe(false);
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
  });

  it('a symlink at the old predictable temp name (index_key.<pid>.tmp) is ignored: the victim is unchanged', () => {
    const { dir, path } = freshCache();
    const victim = join(dir, '..', 'victim');
    writeFileSync(victim, 'precious', { mode: 0o644 });
    symlinkSync(victim, `${path}.${process.pid}.tmp`);
    const key = generateKey({ save: true, path });
    expect(readFileSync(path)).toEqual(Buffer.from(key));
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(statSync(victim).mode & 0o777).toBe(0o644);
  });

  it('a symlink planted at the (predicted) random temp name is not followed: the call fails, the victim is unchanged, no key is cached', () => {
    const { dir, path } = freshCache();
    const victim = join(dir, '..', 'victim');
    writeFileSync(victim, 'precious', { mode: 0o644 });
    tempName.bytes = Buffer.alloc(12, 0xab);
    try {
      symlinkSync(victim, `${path}.${tempName.bytes.toString('hex')}.tmp`);
      expect(() => generateKey({ save: true, path })).toThrow(
        expect.objectContaining({ code: 'VECVAULT_IO', cause: expect.objectContaining({ code: 'EEXIST' }) }),
      );
    } finally {
      tempName.bytes = undefined;
    }
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(statSync(victim).mode & 0o777).toBe(0o644);
    expect(existsSync(path)).toBe(false);
  });

  it('a symlinked cache directory is refused, even when it points to a safe directory', () => {
    const { dir } = freshCache();
    const link = join(dir, '..', 'linked');
    symlinkSync(dir, link);
    expectCacheError(join(link, 'index_key'));
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('generateKey({ save: true }): files that are not a private 32-byte key', () => {
  it('a FIFO at the cache path is a KeyCacheError at once, never a hang (run in a child so a hang fails the test)', () => {
    const { dir, path } = freshCache();
    execFileSync('mkfifo', ['-m', '600', path]);
    const script = join(dir, '..', 'fifo.mts');
    writeFileSync(
      script,
      `import { generateKey } from ${JSON.stringify(pathToFileURL(indexKeyTs).href)};
const started = performance.now();
try { generateKey({ save: true, path: ${JSON.stringify(path)} }); console.log(JSON.stringify({ returned: true })); }
catch (error) { console.log(JSON.stringify({ code: error.code, name: error.name, ms: performance.now() - started })); }
`,
    );
    const child = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 30_000 });
    expect(child.error).toBeUndefined(); // ETIMEDOUT here would mean the call blocked on the FIFO
    const result = JSON.parse(child.stdout.trim()) as { code?: string; name?: string; ms?: number };
    expect(result).toMatchObject({ code: 'VECVAULT_KEY_CACHE', name: 'KeyCacheError' });
    expect(result.ms).toBeLessThan(1000);
    expect(lstatSync(path).isFIFO()).toBe(true);
  });

  it('a directory at the cache path is a KeyCacheError', () => {
    const { path } = freshCache();
    mkdirSync(path, { mode: 0o700 });
    expectCacheError(path);
  });

  it.each([0o640, 0o604, 0o620, 0o602, 0o610, 0o744].map((mode) => [mode.toString(8), mode] as const))(
    'a key file with mode %s (group/other bits) is a KeyCacheError and is left unchanged',
    (_, mode) => {
      const { path } = freshCache();
      const key = generateKey({ save: true, path });
      chmodSync(path, mode);
      expectCacheError(path);
      expect(readFileSync(path)).toEqual(Buffer.from(key));
      expect(statSync(path).mode & 0o777).toBe(mode);
    },
  );

  it.each([0, 5, 31, 33, 4096])('a %i-byte key file is a KeyCacheError and is left unchanged', (size) => {
    const { path } = freshCache();
    writeFileSync(path, Buffer.alloc(size, 1), { mode: 0o600 });
    expectCacheError(path);
    expect(readFileSync(path).byteLength).toBe(size);
  });

  it.each([0o777, 0o770, 0o703, 0o1777].map((mode) => [mode.toString(8), mode] as const))(
    'a cache directory with mode %s (group/other write) is a KeyCacheError, for a new key and a cached one',
    (_, mode) => {
      const { dir, path } = freshCache();
      chmodSync(dir, mode);
      expectCacheError(path);
      expect(readdirSync(dir)).toEqual([]);
      chmodSync(dir, 0o700);
      generateKey({ save: true, path });
      chmodSync(dir, mode);
      expectCacheError(path);
    },
  );

  it('a regular file where the cache directory should be is a KeyCacheError', () => {
    const { dir } = freshCache();
    writeFileSync(join(dir, 'file'), 'x');
    expectCacheError(join(dir, 'file', 'index_key'));
  });

  it.skipIf(!isRoot)('(as root) a key file or cache directory owned by another user is a KeyCacheError', () => {
    const { dir, path } = freshCache();
    const key = generateKey({ save: true, path });
    chownSync(path, NOBODY, NOBODY);
    expectCacheError(path);
    expect(readFileSync(path)).toEqual(Buffer.from(key));
    chownSync(path, 0, 0);
    expect(generateKey({ save: true, path })).toEqual(key);
    chownSync(dir, NOBODY, NOBODY);
    expectCacheError(path);
    expect(existsSync(join(dir, '..', 'other'))).toBe(false);
    const fresh = join(dir, 'new_key'); // a new key is not written into a foreign directory either
    expectCacheError(fresh);
    expect(existsSync(fresh)).toBe(false);
  });
});
