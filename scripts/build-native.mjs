#!/usr/bin/env node
// vecvault's native addon: use the prebuilt binary shipped in prebuilds/ when
// one matches this platform, is current and loads; compile it from source
// (binding.gyp → build/Release/vecvault_native.node, node-gyp against the
// headers of the installed `usearch` package) otherwise. The addon is loaded
// by node-gyp-build (src/util/native-addon.ts), which prefers build/Release
// over prebuilds/.
//
//   node scripts/build-native.mjs             the package's `install` script
//   node scripts/build-native.mjs --force     compile build/Release even when not needed
//                                             (also VECVAULT_FORCE_BUILD=1, npm's --build-from-source)
//   node scripts/build-native.mjs --prebuild  compile prebuilds/<platform>-<arch>/ with prebuildify
//                                             and record the hash of the sources it was built from
//   node scripts/build-native.mjs --record    record the binary already in prebuilds/<platform>-<arch>/
//                                             (one built elsewhere from these sources)
//   node scripts/build-native.mjs --prepack   before `npm pack`: the tarball's prebuilds are current
//                                             (builds this platform's when missing or stale, unless
//                                             VECVAULT_PREBUILD_NO_COMPILE=1)
//   node scripts/build-native.mjs --check     exit 1 when a prebuild in prebuilds/ is stale
//
// prebuilds/ is build output (not in git): the package tarball carries it, so
// an install from npm uses it; a git clone compiles.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const addon = join(root, 'build', 'Release', 'vecvault_native.node');
const args = process.argv.slice(2);
const force = args.includes('--force') || process.env.VECVAULT_FORCE_BUILD === '1' || process.env.npm_config_build_from_source === 'true';
/** The prebuilds the package tarball must carry (`--prepack` checks them). */
const PACKED_PLATFORMS = ['linux-x64'];
/** Written beside each prebuilt binary: what it was built from. */
const RECORD = 'vecvault.sources.json';
const here = `${process.platform}-${process.arch}`;

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

function locateUsearch() {
  const { locateUsearch } = require(join(root, 'native', 'locate-usearch.cjs'));
  return locateUsearch(root);
}

/** Everything whose change must trigger a rebuild: our sources and the usearch we compile against. */
function sourceFiles() {
  const usearch = locateUsearch();
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

const sha256 = (data) => createHash('sha256').update(data).digest('hex');

/**
 * The hash a prebuild records: binding.gyp and every file under native/ (path
 * and bytes), plus the exact usearch and node-addon-api versions compiled
 * against (an npm version's files never change). Independent of the machine.
 */
function sourcesHash() {
  const hash = createHash('sha256');
  const ours = [join(root, 'binding.gyp'), ...filesUnder(join(root, 'native'))]
    .map((file) => [relative(root, file).split(sep).join('/'), file])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, file] of ours) hash.update(`${name}\0`).update(readFileSync(file)).update('\0');
  const usearch = JSON.parse(readFileSync(join(locateUsearch(), 'package.json'), 'utf8')).version;
  const addonApi = JSON.parse(readFileSync(require.resolve('node-addon-api/package.json'), 'utf8')).version;
  hash.update(`usearch@${usearch}\0node-addon-api@${addonApi}\0`);
  return { sources: hash.digest('hex'), usearch, nodeAddonApi: addonApi };
}

/** The binary in prebuilds/<dir>/ and its record, or why it cannot be used. */
function prebuildState(dir) {
  const folder = join(root, 'prebuilds', dir);
  const binaries = existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith('.node')) : [];
  if (binaries.length === 0) return { ok: false, why: `no prebuilt binary for ${dir}` };
  if (binaries.length > 1) return { ok: false, why: `more than one binary in prebuilds/${dir}` };
  const binary = join(folder, binaries[0]);
  let record;
  try {
    record = JSON.parse(readFileSync(join(folder, RECORD), 'utf8'));
  } catch {
    return { ok: false, binary, why: `prebuilds/${dir}/${RECORD} is missing or unreadable` };
  }
  const now = sourcesHash();
  if (record.sources !== now.sources) {
    return { ok: false, binary, why: `prebuilds/${dir} is stale: native/, binding.gyp, usearch or node-addon-api changed since it was built` };
  }
  if (record.binary !== sha256(readFileSync(binary))) {
    return { ok: false, binary, why: `prebuilds/${dir}/${binaries[0]} is not the binary its record describes` };
  }
  return { ok: true, binary, record };
}

/** Loads the binary in a child process (a bad binary cannot take this one down). */
function loads(binary) {
  const result = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(binary)})`], { encoding: 'utf8' });
  if (result.status === 0) return { ok: true };
  const firstLine = (result.stderr || `exit ${result.status}`).split('\n').find((line) => /error/i.test(line)) ?? '';
  return { ok: false, why: `it does not load here (${firstLine.trim() || `exit ${result.status}`})` };
}

/**
 * Node's own headers when this Node install ships them (official tarballs and
 * distro packages do): lets node-gyp build offline instead of downloading
 * them. An explicit nodedir (npm config or env) wins.
 */
function localNodeDir() {
  if (process.env.npm_config_nodedir) return undefined;
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
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

function run(command, argv, env = process.env) {
  return spawnSync(command, argv, { cwd: root, stdio: 'inherit', env }).status === 0;
}

function nodeGyp(argv) {
  let bin;
  try {
    bin = nodeGypBin();
  } catch {
    fail('node-gyp is not installed');
  }
  return run(process.execPath, [bin, ...argv]);
}

function fail(reason) {
  console.error(`
vecvault: building the native addon failed (${reason}).
vecvault ships a prebuilt addon for ${PACKED_PLATFORMS.join(', ')} (glibc); on other platforms, or
when the prebuilt one cannot be used, it compiles a small C++ addon over usearch's
C++ core when it is installed. Your machine then needs:
  - a C++17 compiler (g++ >= 8 or clang >= 7; on macOS the Xcode command-line tools),
  - python3 (used by node-gyp),
  - make.
On Debian/Ubuntu: sudo apt-get install build-essential python3
Then run: npm rebuild vecvault   (or: node scripts/build-native.mjs --force)
`);
  process.exit(1);
}

function compile(why) {
  const started = Date.now();
  console.log(`vecvault: ${why}; building the native addon from source (about 1–3 minutes)…`);
  const nodedir = localNodeDir();
  // npm runs one compile job by default; NumKong has ~25 large C files.
  if (!nodeGyp(['configure', ...(nodedir ? [`--nodedir=${nodedir}`] : [])])) fail('node-gyp configure failed');
  if (!nodeGyp(['build', '--jobs', 'max'])) fail('node-gyp build failed');
  if (!existsSync(addon)) fail(`node-gyp finished but ${addon} is missing`);
  console.log(`vecvault: native addon built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** prebuildify --napi --strip for this platform, then the record of what it was built from. */
function prebuild() {
  const started = Date.now();
  const folder = join(root, 'prebuilds', here);
  rmSync(folder, { recursive: true, force: true });
  const nodedir = localNodeDir();
  const env = { ...process.env, npm_config_jobs: 'max', ...(nodedir ? { npm_config_nodedir: nodedir } : {}) };
  console.log(`vecvault: building prebuilds/${here} with prebuildify (about 1–4 minutes)…`);
  const prebuildify = require.resolve('prebuildify/bin.js');
  const built = run(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', `--target=${process.versions.node}`, `--node-gyp=${nodeGypBin()}`], env);
  if (!built) fail('prebuildify failed');
  const binary = record();
  const size = (statSync(binary).size / 1024 / 1024).toFixed(1);
  console.log(`vecvault: prebuilds/${here}/${basename(binary)} (${size} MB) built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** Writes the record of the one binary in prebuilds/<here>/: the sources it was built from, its hash. */
function record() {
  const folder = join(root, 'prebuilds', here);
  const binaries = existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith('.node')) : [];
  if (binaries.length !== 1) fail(`expected one binary in prebuilds/${here}, found ${binaries.length}`);
  const binary = join(folder, binaries[0]);
  const loaded = loads(binary);
  if (!loaded.ok) fail(`the prebuild ${loaded.why}`);
  const entry = {
    ...sourcesHash(),
    binary: sha256(readFileSync(binary)),
    builtWith: { node: process.versions.node, napi: 8, compiler: compilerVersion() },
  };
  writeFileSync(join(folder, RECORD), `${JSON.stringify(entry, null, 2)}\n`);
  return binary;
}

function compilerVersion() {
  const result = spawnSync(process.env.CXX || 'c++', ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.split('\n')[0] : 'unknown';
}

function install() {
  if (!force) {
    let fresh;
    try {
      fresh = upToDate();
    } catch (error) {
      fail(error instanceof Error ? error.message : String(error));
    }
    if (fresh) {
      console.log('vecvault: native addon (build/Release) is up to date, skipping the build');
      return;
    }
  }
  let why = 'asked to build from source';
  if (existsSync(addon)) why = 'build/Release is older than its sources';
  else if (!force) {
    const state = prebuildState(here);
    const loaded = state.ok ? loads(state.binary) : state;
    if (loaded.ok) {
      console.log(`vecvault: using the prebuilt native addon ${relative(root, state.binary)}`);
      return;
    }
    why = state.ok ? `the prebuilt addon for ${here} cannot be used: ${loaded.why}` : state.why;
  }
  compile(why);
}

/** The prebuilds the tarball carries are present and current; this platform's is rebuilt when it is not. */
function prepack() {
  for (const dir of PACKED_PLATFORMS) {
    const state = prebuildState(dir);
    if (state.ok) continue;
    if (dir !== here || process.env.VECVAULT_PREBUILD_NO_COMPILE === '1') {
      console.error(`vecvault: ${state.why}; build it on ${dir} with \`npm run build:prebuild\` and copy prebuilds/${dir} here before packing`);
      process.exit(1);
    }
    prebuild();
  }
  console.log(`vecvault: prebuilds current for ${PACKED_PLATFORMS.join(', ')}`);
}

/** Every prebuild present is current (a missing one is fine: prepack builds it for the tarball). */
function check() {
  const dirs = existsSync(join(root, 'prebuilds')) ? readdirSync(join(root, 'prebuilds')) : [];
  let stale = false;
  for (const dir of dirs) {
    const state = prebuildState(dir);
    if (state.ok) console.log(`vecvault: prebuilds/${dir} is current (sources ${state.record.sources.slice(0, 12)})`);
    else {
      stale = true;
      console.error(`vecvault: ${state.why}; rebuild it with \`npm run build:prebuild\` (on ${dir})`);
    }
  }
  if (dirs.length === 0) console.log("vecvault: no prebuilds here (npm pack builds this platform's)");
  process.exit(stale ? 1 : 0);
}

if (args.includes('--prebuild')) prebuild();
else if (args.includes('--record')) record();
else if (args.includes('--prepack')) prepack();
else if (args.includes('--check')) check();
else install();
