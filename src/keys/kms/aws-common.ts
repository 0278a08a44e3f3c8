/** What the two AWS providers share: client settings with bounded timeouts and retries, and error mapping. */
import { KmsError } from '../../errors.js';
import type { AwsCredentials, ProviderOptions } from './types.js';

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_ATTEMPTS = 3;

export interface AwsClientSettings {
  region: string;
  endpoint?: string;
  credentials?: AwsCredentials;
  maxAttempts: number;
  requestHandler: { connectionTimeout: number; requestTimeout: number; throwOnRequestTimeout: boolean };
}

/** The SDK client config: the slot's region, endpoint and credentials; every request bounded. */
export function clientSettings(slot: { region: string; endpoint?: string; credentials?: AwsCredentials }, options: ProviderOptions): AwsClientSettings {
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    region: slot.region,
    ...(slot.endpoint === undefined ? {} : { endpoint: slot.endpoint }),
    ...(slot.credentials === undefined ? {} : { credentials: slot.credentials }),
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    requestHandler: { connectionTimeout: timeout, requestTimeout: timeout, throwOnRequestTimeout: true },
  };
}

/** An overall deadline per call (all attempts), so no call can hang. */
export function deadline(options: ProviderOptions): AbortSignal {
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return AbortSignal.timeout(timeout * (options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS) + 1_000);
}

/** The AWS error's name (`DisabledException`, `AccessDeniedException`), or the network error's code (`ECONNREFUSED`). */
export function awsErrorName(error: unknown): string {
  const e = error as { name?: unknown; code?: unknown; cause?: { code?: unknown } } | null;
  if (typeof e?.code === 'string') return e.code;
  if (typeof e?.cause?.code === 'string') return e.cause.code;
  if (typeof e?.name === 'string' && e.name !== 'Error') return e.name;
  return 'unknown error';
}

export function awsFailure(what: string, call: string, cause: unknown): KmsError {
  return new KmsError(`${what}: ${call} failed (${awsErrorName(cause)}).`, { cause });
}
