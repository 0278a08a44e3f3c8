/**
 * Loads vecvault's native addon (build/Release/vecvault_native.node, built on
 * install by scripts/build-native.mjs) on first use, never at import time.
 * Shared by the engine (usearch) and crypto (batched OpenSSL) layers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeError } from '../errors.js';

const ADDON_FILE = join('build', 'Release', 'vecvault_native.node');

/** The package root: the nearest directory above this module with our package.json (works from src/ and dist/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && isVecvaultManifest(manifest)) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new NativeError('cannot find the vecvault package root to load the native addon');
    dir = parent;
  }
}

function isVecvaultManifest(path: string): boolean {
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown }).name === 'vecvault';
  } catch {
    return false;
  }
}

let addon: unknown;

export function loadNativeAddon(): unknown {
  if (addon) return addon;
  const path = join(packageRoot(), ADDON_FILE);
  if (!existsSync(path)) {
    throw new NativeError(
      `the native addon is not built (${ADDON_FILE} missing): run \`npm rebuild vecvault\` ` + '(needs a C++17 compiler, python3 and make)',
    );
  }
  try {
    addon = createRequire(import.meta.url)(path);
  } catch (cause) {
    throw new NativeError('the native addon failed to load: rebuild it with `npm rebuild vecvault`', { cause });
  }
  return addon;
}
