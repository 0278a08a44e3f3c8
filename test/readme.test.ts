/** The README's usage example runs as written (with 'vecvault' pointed at src/), so the docs cannot drift. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { tempStore } from './support/helpers.js';
import { WARNING_CODES } from '../src/warnings.js';

/** Runs a README block marked `<!-- readme-example: NAME … -->` with 'vecvault' (and 'vecvault/langchain') pointed at src/, and checks each console.log line against its `// …` comment. */
function runReadmeExample(name: string): void {
  const readme = readFileSync('README.md', 'utf8');
  const block = new RegExp(`<!-- readme-example: ${name}[^>]*-->\\s*\`\`\`ts\\n([\\s\\S]*?)\`\`\``).exec(readme)?.[1];
  expect(block, name).toBeDefined();
  const dir = tempStore();
  const code = block!
    .replace("from 'vecvault/langchain'", `from ${JSON.stringify(resolve('src/langchain/index.ts'))}`)
    .replace("from 'vecvault'", `from ${JSON.stringify(resolve('src/index.ts'))}`);
  const source = `const storePath = ${JSON.stringify(join(dir, 'store'))};\n${code}`;
  // Inside the project, so the block's own imports (e.g. @langchain/core) resolve from its node_modules.
  const file = join(resolve('test'), `.readme-example-${name}-${process.pid}.mts`);
  writeFileSync(file, source);
  let out: string[];
  try {
    out = execFileSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8' }).trim().split('\n');
  } finally {
    rmSync(file, { force: true });
  }
  const expected = [...block!.matchAll(/console\.log\(.*?\);\s*\/\/ (.*)$/gm)].map((m) => m[1]!.trim());
  expect(out.length).toBe(expected.length);
  const norm = (s: string) => s.replace(/[\s"']/g, '');
  out.forEach((line, i) => expect(norm(line)).toBe(norm(expected[i]!)));
}

it('README usage example runs and prints what its comments say', () => {
  runReadmeExample('usage');
});

it('README LangChain.js and embedding example runs and prints what its comments say', () => {
  runReadmeExample('langchain');
});

it('README lists every warning code, and the code emits no other', () => {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('### Warnings'), readme.indexOf('## Security model'));
  const listed = [...section.matchAll(/^\| `(VECVAULT_[A-Z_]+)` \|/gm)].map((m) => m[1]);
  expect(listed.sort()).toEqual([...WARNING_CODES].sort());
  // Every warn() call in src/ names a code from the union (the type checks it); and none emits warnings another way.
  const sources = readdirSync('src', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  const direct = sources.filter((f) => f !== 'warnings.ts' && readFileSync(join('src', f), 'utf8').includes('emitWarning('));
  expect(direct).toEqual([]);
});

it('the demo behind `npm start` runs: it queries, measures recall against exact ground truth, reopens and refuses a wrong key', () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
  expect(pkg.scripts.start).toBe('tsx examples/demo.ts');
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/demo.ts', '--path', join(tempStore(), 'demo')], { encoding: 'utf8' });
  const recall = Number(/recall@10 against exact ground truth: ([\d.]+)/.exec(out)?.[1]);
  expect(recall).toBeGreaterThanOrEqual(0.9);
  expect(out).toMatch(/Reopened from disk in \d+ ms: \d+ records/);
  expect(out).toContain('A wrong key gets nothing: VECVAULT_INVALID_KEY');
});
