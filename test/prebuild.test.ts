/**
 * The prebuilt native addon (prebuilds/<platform>/, build output: the package
 * tarball carries it, git does not): a prebuild matches the sources it records,
 * a changed source makes it stale (the install script then compiles instead of
 * using it), and the packed tarball installs and works with no C++ toolchain
 * (scripts/pack-check.mjs, which builds the prebuild in a staging copy when
 * there is no current one).
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nativeAddonPath } from '../src/util/native-addon.js';
import { tempStore } from './support/helpers.js';

const root = process.cwd();
const here = `${process.platform}-${process.arch}`;

function buildNative(cwd: string, ...args: string[]) {
  return spawnSync(process.execPath, [join(cwd, 'scripts', 'build-native.mjs'), ...args], { cwd, encoding: 'utf8' });
}

/**
 * A copy of what the prebuild check reads (binding.gyp, native/, scripts/;
 * node_modules linked) with this machine's compiled addon recorded as its
 * prebuild: the same record `npm run build:prebuild` writes, without minutes of prebuildify.
 */
function packageCopyWithPrebuild(): string {
  const dir = join(tempStore('vecvault-prebuild-'), 'pkg');
  mkdirSync(dir);
  for (const entry of ['package.json', 'binding.gyp', 'native', 'scripts']) cpSync(join(root, entry), join(dir, entry), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  mkdirSync(join(dir, 'prebuilds', here), { recursive: true });
  cpSync(nativeAddonPath(), join(dir, 'prebuilds', here, 'vecvault.glibc.node'));
  const recorded = buildNative(dir, '--record');
  expect(recorded.status, recorded.stderr).toBe(0);
  return dir;
}

describe('prebuilt native addon', () => {
  it('a prebuild is current for the sources it records; a changed native source makes it stale: --check fails and install compiles instead of using it', () => {
    const dir = packageCopyWithPrebuild();
    const current = buildNative(dir, '--check'); // the negative control: the same copy passes unchanged
    expect(current.stderr, current.stderr).toBe('');
    expect(current.status).toBe(0);
    expect(current.stdout).toMatch(new RegExp(`prebuilds/${here} is current`));
    appendFileSync(join(dir, 'native', 'addon.cc'), '\n// changed\n');
    const check = buildNative(dir, '--check');
    expect(check.status).toBe(1);
    expect(check.stderr).toMatch(new RegExp(`prebuilds/${here} is stale`));
    // The install script would compile; CC=false makes that fail fast instead of spending minutes.
    const install = spawnSync(process.execPath, [join(dir, 'scripts', 'build-native.mjs')], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, CC: 'false', CXX: 'false', PATH: '/nonexistent', VECVAULT_FORCE_BUILD: '' },
    });
    expect(install.stdout).toMatch(new RegExp(`prebuilds/${here} is stale.*building the native addon from source`));
    expect(install.stdout).not.toMatch(/using the prebuilt/);
    expect(install.status).not.toBe(0);
  });

  it('the loader reports which binary it uses: build/Release when compiled here, else the prebuild', () => {
    expect(nativeAddonPath()).toMatch(/(build\/Release\/vecvault_native|prebuilds\/linux-x64\/vecvault\.glibc)\.node$/);
  });

  it('npm run pack:check: the tarball installs with no compiler reachable and passes create/upsert/query/reopen', { timeout: 600_000 }, () => {
    if (`${process.platform}-${process.arch}` !== 'linux-x64') return;
    const run = spawnSync(process.execPath, [join(root, 'scripts', 'pack-check.mjs'), '--json'], { cwd: root, encoding: 'utf8' });
    const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as {
      ok: boolean;
      error?: string;
      pack: { seconds: number; sizeMB: number; prebuilds: string[] };
      install: { seconds: number; usedPrebuild: boolean };
      smoke: { addon: string; isa: string; buildDirPresent: boolean };
    };
    expect(report.error).toBeUndefined();
    expect(report.ok).toBe(true);
    expect(report.install.usedPrebuild).toBe(true);
    expect(report.smoke.addon).toBe('prebuilds/linux-x64/vecvault.glibc.node');
    expect(report.smoke.isa).not.toBe('serial');
    expect(report.smoke.buildDirPresent).toBe(false);
    console.log(
      `pack:check: packed ${report.pack.sizeMB} MB in ${report.pack.seconds} s; installed with no compiler in ${report.install.seconds} s; ISA ${report.smoke.isa}`,
    );
  });
});
