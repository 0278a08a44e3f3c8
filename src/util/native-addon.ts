/**
 * Loads vecvault's native addon on first use, never at import time, through
 * node-gyp-build: build/Release/vecvault_native.node when it was compiled here
 * (scripts/build-native.mjs, or `--force`), else the prebuilt binary in
 * prebuilds/<platform>-<arch>/ that matches this platform and libc.
 * Shared by the engine (usearch) and crypto (batched OpenSSL) layers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeError } from '../errors.js';

/** node-gyp-build's loader: `path(dir)` finds the binary (build/Release first, then prebuilds/), the call requires it. */
interface NodeGypBuild {
  (dir: string): unknown;
  path(dir: string): string;
}

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
let addonPath: string | undefined;

/** The file of the native addon that is (or would be) loaded: build/Release/… or prebuilds/<platform>-<arch>/…. */
export function nativeAddonPath(): string {
  if (addonPath) return addonPath;
  const nodeGypBuild = createRequire(import.meta.url)('node-gyp-build') as NodeGypBuild;
  try {
    addonPath = nodeGypBuild.path(packageRoot());
  } catch (cause) {
    throw new NativeError(
      `no native addon for ${process.platform}-${process.arch}: none was built here and no prebuilt one matches. ` +
        'Run `npm rebuild vecvault` (needs a C++17 compiler, python3 and make)',
      { cause },
    );
  }
  return addonPath;
}

export function loadNativeAddon(): unknown {
  if (addon) return addon;
  const path = nativeAddonPath();
  try {
    addon = createRequire(import.meta.url)(path);
  } catch (cause) {
    throw new NativeError(`the native addon ${path} failed to load: rebuild it with \`npm rebuild vecvault --build-from-source\``, { cause });
  }
  return addon;
}
