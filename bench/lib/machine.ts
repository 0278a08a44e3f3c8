/** What the numbers were measured on: recorded in every JSON and report. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, totalmem, platform, release, arch } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  loadAverage1m: number;
  platform: string;
  node: string;
  versions: Record<string, string>;
  /** The vecvault commit measured (`-dirty` when the work tree had changes), or 'unknown'. */
  commit: string;
}

function gitCommit(): string {
  try {
    const cwd = projectRoot();
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'native'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

const require = createRequire(import.meta.url);

/** A package's version without `require.resolve('<pkg>/package.json')`, which exports maps may forbid. */
export function packageVersion(name: string): string {
  for (const base of require.resolve.paths(name) ?? []) {
    const file = join(base, name, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return 'not installed';
}

export function machineInfo(): MachineInfo {
  const cpuList = cpus();
  return {
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    loadAverage1m: Math.round(loadavg()[0]! * 100) / 100,
    platform: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    commit: gitCommit(),
    versions: Object.fromEntries(
      ['usearch', 'hnswlib-node', '@lancedb/lancedb', 'vectra', '@noble/ciphers', 'tinybench', 'classic-level'].map((p) => [p, packageVersion(p)]),
    ),
  };
}

export function projectRoot(): string {
  return dirname(dirname(dirname(fileURLToPath(import.meta.url))));
}
