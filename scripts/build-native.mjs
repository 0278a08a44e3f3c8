#!/usr/bin/env node
// Builds vecvault's native addon (binding.gyp → build/Release/vecvault_native.node)
// with node-gyp against the headers of the installed `usearch` package.
// Run by the package's `install` script; skips the build when the addon is
// newer than every source it depends on. `--force` (or VECVAULT_FORCE_BUILD=1)
// rebuilds anyway.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const addon = join(root, 'build', 'Release', 'vecvault_native.node');
const force = process.argv.includes('--force') || process.env.VECVAULT_FORCE_BUILD === '1';

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

/** Everything whose change must trigger a rebuild: our sources and the usearch we compile against. */
function sourceFiles() {
  const { locateUsearch } = require(join(root, 'native', 'locate-usearch.cjs'));
  const usearch = locateUsearch(root);
  return [
    join(root, 'binding.gyp'),
    ...filesUnder(join(root, 'native')),
    join(usearch, 'package.json'),
    join(usearch, 'include', 'usearch', 'index_dense.hpp'),
  ];
}

function upToDate() {
  if (force || !existsSync(addon)) return false;
  const built = statSync(addon).mtimeMs;
  return sourceFiles().every((file) => statSync(file).mtimeMs < built);
}

/**
 * Node's own headers when this Node install ships them (official tarballs and
 * distro packages do): lets node-gyp build offline instead of downloading
 * them. An explicit nodedir (npm config or env) wins.
 */
function localNodeDir() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

/** Our node-gyp dependency, else the one npm bundles (npm passes its path to install scripts). */
function nodeGypBin() {
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch (error) {
    if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
    throw error;
  }
}

function nodeGyp(args) {
  let bin;
  try {
    bin = nodeGypBin();
  } catch {
    fail('node-gyp is not installed');
  }
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: root, stdio: 'inherit' });
  return result.status === 0;
}

function fail(reason) {
  console.error(`
vecvault: building the native addon failed (${reason}).
vecvault compiles a small C++ addon over usearch's C++ core when it is installed.
Your machine needs:
  - a C++17 compiler (g++ >= 8 or clang >= 7; on macOS the Xcode command-line tools),
  - python3 (used by node-gyp),
  - make.
On Debian/Ubuntu: sudo apt-get install build-essential python3
Then run: npm rebuild vecvault   (or: node scripts/build-native.mjs --force)
`);
  process.exit(1);
}

function main() {
  let fresh;
  try {
    fresh = upToDate();
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  if (fresh) {
    console.log('vecvault: native addon is up to date, skipping the build');
    return;
  }
  const started = Date.now();
  console.log('vecvault: building the native addon (about 1–3 minutes)…');
  // npm runs one compile job by default; NumKong has ~25 large C files.
  if (!nodeGyp(['configure', ...localNodeDir()])) fail('node-gyp configure failed');
  if (!nodeGyp(['build', '--jobs', 'max'])) fail('node-gyp build failed');
  if (!existsSync(addon)) fail(`node-gyp finished but ${addon} is missing`);
  console.log(`vecvault: native addon built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main();
