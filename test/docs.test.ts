/**
 * Keeps docs/api.md and docs/troubleshooting.md honest without running prose:
 * the codes they name exist, every error code and public method is documented,
 * and every relative link in README.md and docs/*.md leads to a file.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';
import { WARNING_CODES } from '../src/warnings.js';
import { openFresh } from './support/fixtures.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** The members of the `ErrorCode` union, read from the source (a type has no runtime value). */
function errorCodes(): string[] {
  const union = /export type ErrorCode =([^;]+);/.exec(read('src/errors.ts'));
  if (!union) throw new Error('src/errors.ts: no ErrorCode union found');
  return [...union[1]!.matchAll(/'(VECVAULT_[A-Z0-9_]+)'/g)].map((m) => m[1]!);
}

/** Environment variables that share the prefix; they are not codes. */
const ENV_VARS = new Set([
  'VECVAULT_INDEX_KEY',
  'VECVAULT_FORCE_BUILD',
  'VECVAULT_GC_YIELD',
  'VECVAULT_HUGE_PAGES',
  'VECVAULT_MALLOC_TUNING',
  'VECVAULT_WORKER_NICE',
]);

const API = 'docs/api.md';
const TROUBLESHOOTING = 'docs/troubleshooting.md';

describe('docs/api.md and docs/troubleshooting.md', () => {
  it('name only real error and warning codes, and api.md names every error code', () => {
    const errors = errorCodes();
    expect(errors.length).toBeGreaterThan(10);
    const known = new Set<string>([...errors, ...WARNING_CODES]);
    for (const doc of [API, TROUBLESHOOTING]) {
      const named = new Set([...read(doc).matchAll(/VECVAULT_[A-Z0-9_]+/g)].map((m) => m[0]));
      const unknown = [...named].filter((code) => !known.has(code) && !ENV_VARS.has(code));
      expect(unknown, `${doc} names codes that do not exist`).toEqual([]);
    }
    const api = read(API);
    expect(
      errors.filter((code) => !api.includes(code)),
      'error codes missing from docs/api.md',
    ).toEqual([]);
    expect(
      WARNING_CODES.filter((code) => !api.includes(code)),
      'warning codes missing from docs/api.md',
    ).toEqual([]);
  });

  it('document every public method of Client and EncryptedIndex', async () => {
    const { index } = await openFresh();
    const methods = (proto: object) => Object.getOwnPropertyNames(proto).filter((name) => name !== 'constructor' && name !== 'isUsable');
    const client = methods(Client.prototype);
    const encrypted = methods(Object.getPrototypeOf(index) as object);
    const statics = Object.getOwnPropertyNames(Client).filter((name) => typeof (Client as unknown as Record<string, unknown>)[name] === 'function');
    expect(client).toContain('createIndex');
    expect(encrypted).toContain('query');
    expect(statics).toContain('generateKey');
    const api = read(API);
    const undocumented = [...client, ...encrypted, ...statics].filter((name) => !api.includes(`\`${name}(`) && !api.includes(`.${name}(`));
    expect(undocumented, 'methods missing from docs/api.md').toEqual([]);
  });
});

describe('relative links in README.md and docs/*.md', () => {
  const files = [
    'README.md',
    ...readdirSync(join(root, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];

  it.each(files)('%s links only to files that exist', (file) => {
    // Links inside fenced code blocks are code, not links.
    const text = read(file).replace(/^```[\s\S]*?^```/gm, '');
    const broken: string[] = [];
    for (const match of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = match[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue; // http:, mailto:, in-page anchors
      const path = decodeURIComponent(target.split('#')[0]!);
      if (!existsSync(resolve(root, dirname(file), path))) broken.push(target);
    }
    expect(broken, `${file}: links to missing files`).toEqual([]);
  });
});

describe('no merge leftovers', () => {
  it('no tracked text file holds a merge-conflict marker', () => {
    const files = execFileSync('git', ['ls-files', '-z'], { encoding: 'utf8' })
      .split('\0')
      .filter((f) => /\.(ts|mts|mjs|js|json|md|cc|h|gyp|yml|yaml)$/.test(f) || f === '.ci/run');
    const marked = files.filter((f) => existsSync(f) && /^(<{7}|>{7}) |^={7}$/m.test(readFileSync(f, 'utf8')));
    expect(marked).toEqual([]);
  });
});
