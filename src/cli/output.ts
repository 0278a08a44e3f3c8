/**
 * What the CLI prints: exit codes, errors as `CODE: message` on stderr, one
 * JSON document on stdout under `--json`, and progress bars on stderr only
 * when it is a terminal and `--json` is off.
 */
import cliProgress from 'cli-progress';
import { VecvaultError, type ErrorCode } from '../errors.js';

/** Exit codes (docs/cli.md). 0 is success. */
export const EXIT = {
  /** A failure that is not a vecvault error (a bug: please report it). */
  internal: 1,
  /** Bad flags or input: VECVAULT_VALIDATION, and VECVAULT_CLOSED. */
  usage: 2,
  invalidKey: 3,
  notFound: 4,
  exists: 5,
  /** VECVAULT_INTEGRITY, and `verify` finding any problem. */
  integrity: 6,
  locked: 7,
  io: 8,
  notSupported: 9,
  /** VECVAULT_KMS, VECVAULT_NATIVE, VECVAULT_KEY_CACHE. */
  other: 10,
  /** `recover` wrote the new store but could not recover everything. */
  partial: 11,
  /** VECVAULT_PERMISSION: opened with `--user-id`, a user key without the permission the command needs. */
  permission: 12,
} as const;

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  VECVAULT_VALIDATION: EXIT.usage,
  VECVAULT_CLOSED: EXIT.usage,
  VECVAULT_INVALID_KEY: EXIT.invalidKey,
  VECVAULT_INDEX_NOT_FOUND: EXIT.notFound,
  VECVAULT_INDEX_EXISTS: EXIT.exists,
  VECVAULT_INTEGRITY: EXIT.integrity,
  VECVAULT_STORE_LOCKED: EXIT.locked,
  VECVAULT_IO: EXIT.io,
  VECVAULT_NOT_SUPPORTED: EXIT.notSupported,
  VECVAULT_PERMISSION: EXIT.permission,
};

/**
 * Prints `CODE: message` to stderr (and, for damage, how to recover) and
 * returns the exit code. Messages of vecvault errors never hold key material.
 */
export function reportError(error: unknown, recoverHint = true): number {
  if (error instanceof VecvaultError) {
    process.stderr.write(`${error.code}: ${error.message}\n`);
    if (error.code === 'VECVAULT_INTEGRITY' && recoverHint) {
      process.stderr.write(
        '`vecvault recover --path DIR --index NAME --to NEWDIR` copies every record that still authenticates into a new store (docs/cli.md).\n',
      );
    }
    return BY_CODE[error.code] ?? EXIT.other;
  }
  process.stderr.write(`VECVAULT_INTERNAL: ${error instanceof Error ? error.message : String(error)}\n`);
  return EXIT.internal;
}

/** JSON for stdout: typed arrays become arrays, byte contents `{ "base64": … }`. */
export function toJson(value: unknown, space?: number): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (v instanceof Float32Array || v instanceof Float64Array) return Array.from(v);
      if (v instanceof Uint8Array) return { base64: Buffer.from(v).toString('base64') };
      return v;
    },
    space,
  );
}

export interface Progress {
  update(done: number, total?: number): void;
  stop(): void;
}

const SILENT: Progress = { update: () => undefined, stop: () => undefined };

/** A progress bar with rate and ETA on stderr, or nothing under `--json` or when stderr is not a terminal. */
export function progressBar(label: string, json: boolean, unit: string): Progress {
  if (json || !process.stderr.isTTY) return SILENT;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} {bar} {percentage}% | {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let running = false;
  return {
    update(done, total) {
      const rate = Math.round(done / Math.max(0.001, (Date.now() - started) / 1000));
      if (!running) {
        bar.start(total ?? done, done, { rate });
        running = true;
      } else {
        if (total !== undefined) bar.setTotal(total);
        bar.update(done, { rate });
      }
    },
    stop() {
      if (running) bar.stop();
    },
  };
}
