/**
 * A test child process as one bundled ES module, so each spawn starts in a
 * fraction of tsx's time (the kill tests spawn dozens). Packages stay
 * external and resolve from the package's node_modules; the bundle lives
 * under node_modules/.cache inside the package, so the native addon loader
 * still finds the package root by walking up.
 */
import { buildSync } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function bundleChild(entry: string): string {
  const dir = join(ROOT, 'node_modules', '.cache', 'vecvault-tests');
  mkdirSync(dir, { recursive: true });
  const outfile = join(dir, `${basename(entry, '.ts')}-${process.pid}.mjs`);
  buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile, logLevel: 'error', target: 'node20' });
  return outfile;
}
