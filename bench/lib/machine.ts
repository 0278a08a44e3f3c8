/** What the numbers were measured on: recorded in every JSON and report. */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, totalmem, platform, release, arch } from 'node:os';
import { dirname, join } from 'node:path';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  loadAverage1m: number;
  platform: string;
  node: string;
  versions: Record<string, string>;
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
    versions: Object.fromEntries(
      ['usearch', 'hnswlib-node', '@lancedb/lancedb', 'vectra', '@noble/ciphers', 'tinybench', 'classic-level'].map((p) => [p, packageVersion(p)]),
    ),
  };
}

export function projectRoot(): string {
  return dirname(dirname(dirname(new URL(import.meta.url).pathname)));
}
