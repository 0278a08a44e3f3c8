/**
 * The provider SDKs are optional peer dependencies: an application that only
 * passes `indexKey` installs none of them. A provider loads its SDK when a
 * slot opens; a missing package is a `KmsError` that says what to install.
 */
import { KmsError } from '../../errors.js';

function isMissing(error: unknown, pkg: string): boolean {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (e === null || typeof e !== 'object') return false;
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : '';
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' || /Cannot find (module|package)|Failed to load url/i.test(message)) &&
    message.includes(pkg)
  );
}

/**
 * Runs `load` (a dynamic `import()` of `pkg`); a missing package becomes a
 * KmsError naming the package and the slot, any other load failure (a native
 * module built for another Node) a KmsError with the error as `cause`.
 */
export async function importOptional<T>(pkg: string, slotName: string, provider: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (cause) {
    if (isMissing(cause, pkg)) {
      throw new KmsError(`KMS slot "${slotName}" uses provider '${provider}', which needs the package ${pkg}: run \`npm install ${pkg}\`.`, { cause });
    }
    throw new KmsError(`KMS slot "${slotName}": the package ${pkg} failed to load (reinstall it).`, { cause });
  }
}
