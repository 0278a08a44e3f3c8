/** The README's usage example runs as written (with 'vecvault' pointed at src/), so the docs cannot drift. */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { tempStore } from './support/helpers.js';

it('README usage example runs and prints what its comments say', () => {
  const readme = readFileSync('README.md', 'utf8');
  const block = /<!-- readme-example: usage[^>]*-->\s*```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(block).toBeDefined();
  const dir = tempStore();
  const source = `const storePath = ${JSON.stringify(join(dir, 'store'))};\n${block!.replace("from 'vecvault'", `from ${JSON.stringify(resolve('src/index.ts'))}`)}`;
  const file = join(dir, 'example.mts');
  writeFileSync(file, source);
  const out = execFileSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8' }).trim().split('\n');
  const expected = [...block!.matchAll(/console\.log\(.*?\);\s*\/\/ (.*)$/gm)].map((m) => m[1]!.trim());
  expect(out.length).toBe(expected.length);
  const norm = (s: string) => s.replace(/[\s"']/g, '');
  out.forEach((line, i) => expect(norm(line)).toBe(norm(expected[i]!)));
});
