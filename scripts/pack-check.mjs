#!/usr/bin/env node
// npm run pack:check — packs vecvault the way `npm publish` would, installs the
// tarball into a fresh temporary app with no C++ toolchain reachable (PATH holds
// only node, npm and sh; CC=false, CXX=false), and runs create / upsert / query /
// reopen there, plus a check that a SIMD kernel is active in the installed
// binary. Prints the timings; `--json` prints one JSON object instead.
//
// The package is packed from a staging copy of its files (node_modules
// symlinked), so `prepack` (tsc → dist/) never writes into the working tree
// while other tests read it. A current prebuild in prebuilds/ is packed as is;
// without one, prepack builds it in the staging copy (1–4 minutes), never in
// the working tree.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const json = process.argv.includes('--json');
const keep = process.argv.includes('--keep');
const work = mkdtempSync(join(tmpdir(), 'vecvault-pack-'));
const log = (line) => {
  if (!json) console.log(line);
};

function run(command, args, options) {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed (exit ${result.status}${result.signal ? `, ${result.signal}` : ''}):\n${result.stdout}\n${result.stderr}`,
    );
  }
  return { ...result, seconds };
}

/** A PATH with node, npm and sh only: no cc, c++, g++, make or python3. */
function bareBin() {
  const bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync('/bin/sh', join(bin, 'sh')); // npm runs lifecycle scripts with `sh`
  const npmCli = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  const npm = process.env.npm_execpath && existsSync(process.env.npm_execpath) ? process.env.npm_execpath : npmCli;
  writeFileSync(join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npm}" "$@"\n`, { mode: 0o755 });
  for (const tool of ['cc', 'gcc', 'c++', 'g++', 'clang', 'make', 'python3']) {
    const found = spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env: { PATH: bin }, encoding: 'utf8' });
    if (found.status === 0) throw new Error(`${tool} is reachable on the bare PATH: ${found.stdout}`);
  }
  return bin;
}

/** Copies what `npm pack` reads (package.json "files", the tsconfigs prepack's build needs) into a staging folder. */
function stage() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const dir = join(work, 'package');
  mkdirSync(dir);
  const entries = [
    'package.json',
    'LICENSE',
    'README.md',
    'CHANGELOG.md',
    'tsconfig.json',
    'tsconfig.build.json',
    ...pkg.files.filter((f) => !f.startsWith('!')),
  ];
  for (const entry of new Set(entries.map((e) => e.replace(/\/$/, '')))) {
    if (entry === 'dist' || !existsSync(join(root, entry))) continue; // dist/ is built by prepack
    cpSync(join(root, entry), join(dir, entry), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return { dir, pkg };
}

const SMOKE = `
import { Client } from 'vecvault';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve('vecvault/package.json'));
const storePath = process.argv[2];
const indexKey = Client.generateKey();
const dimension = 16;
let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
const items = Array.from({ length: 500 }, (_, i) => ({ id: 'v' + i, vector: Array.from({ length: dimension }, rand), metadata: { even: i % 2 === 0 } }));

let client = new Client({ path: storePath });
const index = await client.createIndex({ indexName: 'smoke', indexKey, dimension, metric: 'cosine' });
const upserted = await index.upsert({ items });
const first = await index.query({ queryVectors: items[42].vector, topK: 5, include: ['distance'] });
const filtered = await index.query({ queryVectors: items[42].vector, topK: 3, filters: { even: false } });
await client.close();

client = new Client({ path: storePath });
const reopened = await client.loadIndex({ indexName: 'smoke', indexKey });
const again = await reopened.query({ queryVectors: items[42].vector, topK: 5, include: ['distance'] });
const count = (await reopened.listIds()).count;
await client.close();

const { simdCapabilities, nativeEngine } = await import(pathToFileURL(join(pkgDir, 'dist', 'engine', 'native.js')).href);
const { nativeAddonPath } = await import(pathToFileURL(join(pkgDir, 'dist', 'util', 'native-addon.js')).href);
// vecvault/langchain resolves through the exports map; without the optional peer @langchain/core it fails to load, naming it.
let langchainWithoutPeer = 'loaded';
try {
  await import('vecvault/langchain');
} catch (error) {
  langchainWithoutPeer = error.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('@langchain/core') ? 'missing-peer' : String(error.code);
}
const engine = nativeEngine.create({ dimension, metric: 'cos', precision: 'f32', connectivity: 16, expansionAdd: 128, expansionSearch: 64 });
const isa = engine.isa();
await engine.close();
console.log(JSON.stringify({
  upserted: upserted.upsertedCount,
  top: first.results[0].id,
  topDistance: first.results[0].distance,
  filteredAllOdd: filtered.results.every((r) => Number(r.id.slice(1)) % 2 === 1),
  reopenedSame: JSON.stringify(again.results.map((r) => r.id)) === JSON.stringify(first.results.map((r) => r.id)),
  count,
  addon: nativeAddonPath().slice(pkgDir.length + 1),
  isa,
  simd: simdCapabilities(),
  buildDirPresent: (await import('node:fs')).existsSync(join(pkgDir, 'build')),
  langchainWithoutPeer,
}));
`;

const report = { ok: false, work };
try {
  const { dir, pkg } = stage();
  log(`vecvault pack:check in ${work}`);

  const packed = run('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: dir,
    env: { ...process.env, npm_config_loglevel: 'warn' },
  });
  // npm's JSON report starts with a line holding only `[`; prepack's build logs (prebuildify) come before it.
  const info = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[$/m)))[0];
  const tarball = join(work, info.filename);
  const prebuilt = info.files.filter((f) => f.path.startsWith('prebuilds/'));
  report.pack = {
    seconds: +packed.seconds.toFixed(1),
    tarball: info.filename,
    sizeMB: +(info.size / 1048576).toFixed(2),
    unpackedMB: +(info.unpackedSize / 1048576).toFixed(2),
    files: info.entryCount,
    prebuilds: prebuilt.map((f) => `${f.path} (${(f.size / 1048576).toFixed(2)} MB)`),
  };
  log(`packed ${info.filename} in ${report.pack.seconds} s: ${report.pack.sizeMB} MB, ${info.entryCount} files; ${report.pack.prebuilds.join(', ')}`);
  if (!prebuilt.some((f) => f.path.endsWith('.node'))) throw new Error('the tarball carries no prebuilt binary');

  const bin = bareBin();
  const app = join(work, 'app');
  mkdirSync(app);
  // The install-script policy an app would declare (npm's `allowScripts`); --strict-allow-scripts
  // fails the install if the package brings a dependency with an install script that this does not cover.
  const allowScripts = { [`file:${tarball}`]: true, 'classic-level': true, 'msgpackr-extract': true, usearch: false };
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'vecvault-pack-check-app', version: '1.0.0', private: true, type: 'module', allowScripts }, null, 2),
  );
  const env = { HOME: process.env.HOME ?? work, PATH: bin, CC: 'false', CXX: 'false', npm_config_cache: process.env.npm_config_cache ?? '', TMPDIR: tmpdir() };
  if (!env.npm_config_cache) delete env.npm_config_cache;
  const installed = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', '--strict-allow-scripts', tarball], {
    cwd: app,
    env,
  });
  report.install = { seconds: +installed.seconds.toFixed(1), usedPrebuild: /using the prebuilt native addon/.test(installed.stdout + installed.stderr) };
  log(`installed into a fresh app (PATH without a compiler, CC=CXX=false) in ${report.install.seconds} s`);
  if (!report.install.usedPrebuild) throw new Error(`the install script did not report using the prebuild:\n${installed.stdout}\n${installed.stderr}`);

  writeFileSync(join(app, 'smoke.mjs'), SMOKE);
  const smoke = run('node', ['smoke.mjs', join(work, 'store')], { cwd: app, env });
  const result = JSON.parse(smoke.stdout.trim().split('\n').pop());
  report.smoke = { seconds: +smoke.seconds.toFixed(1), ...result };
  log(`create/upsert/query/reopen in the app: ${smoke.stdout.trim()}`);
  const problems = [];
  if (result.upserted !== 500 || result.count !== 500) problems.push('upsert/listIds counts');
  if (result.top !== 'v42' || !(result.topDistance < 1e-5)) problems.push('nearest neighbour of an indexed vector is not itself');
  if (!result.filteredAllOdd) problems.push('filtered query');
  if (!result.reopenedSame) problems.push('results after reopening differ');
  if (!result.addon.startsWith(`prebuilds/`)) problems.push(`loaded ${result.addon}, not the prebuild`);
  if (result.buildDirPresent) problems.push('the install compiled build/');
  if (result.langchainWithoutPeer !== 'missing-peer') problems.push(`vecvault/langchain without @langchain/core: ${result.langchainWithoutPeer}`);
  if (!info.files.some((f) => f.path === 'dist/langchain/index.js')) problems.push('the tarball lacks dist/langchain/index.js');
  if (process.arch === 'x64' && (result.isa === 'serial' || !result.simd.available.includes(result.isa) || !result.simd.compiled.includes('haswell')))
    problems.push(`no SIMD kernel active (${result.isa})`);
  if (problems.length > 0) throw new Error(`smoke test failed: ${problems.join('; ')}`);
  report.ok = true;
  report.version = pkg.version;
} catch (error) {
  report.error = error instanceof Error ? error.message : String(error);
} finally {
  if (report.ok && !keep) rmSync(work, { recursive: true, force: true });
}
if (json) console.log(JSON.stringify(report));
else if (report.ok) console.log(`pack:check passed: install from the tarball took ${report.install.seconds} s with no compiler`);
else console.error(`pack:check FAILED (files kept in ${work}):\n${report.error}`);
process.exit(report.ok ? 0 : 1);
