/** The built package, imported the way a user imports it: dist/ via the package's own exports. */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { tempStore } from './support/helpers.js';

it('npm run build emits dist/ that works through the package exports', () => {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  const dir = tempStore();
  // Inside the package, so 'vecvault' resolves by self-reference through package.json "exports".
  const script = join(process.cwd(), 'test', `.package-smoke-${process.pid}.mjs`);
  writeFileSync(
    script,
    `import { Client, ValidationError } from 'vecvault';
const client = new Client({ path: ${JSON.stringify(join(dir, 'store'))} });
const index = await client.createIndex({ indexName: 'pkg', indexKey: Client.generateKey(), dimension: 2 });
await index.upsert([{ id: 'x', vector: [1, 2], contents: 'hi' }]);
const { results } = await index.query({ queryVectors: [1, 2], topK: 1, include: ['contents'] });
let code = '';
try { await index.upsert([{ id: '', vector: [1, 2] }]); } catch (e) { code = e instanceof ValidationError ? e.code : 'wrong class'; }
await client.close();
const vecvault = await import('vecvault');
const { VecvaultStore, fromLangChainEmbeddings } = await import('vecvault/langchain');
const { SyntheticEmbeddings } = await import('@langchain/core/utils/testing');
const lcClient = new Client({ path: ${JSON.stringify(join(dir, 'lc'))} });
const store = await VecvaultStore.fromTexts(['hello world'], {}, new SyntheticEmbeddings({ vectorSize: 4 }), { client: lcClient, indexName: 'lc', indexKey: Client.generateKey() });
const [doc] = await store.asRetriever(1).invoke('hello world');
await lcClient.close();
const langchain = { type: store._vectorstoreType(), pageContent: doc.pageContent, adapter: typeof fromLangChainEmbeddings };
console.log(JSON.stringify({ results, code, engine: 'ok', encryptedIndexValue: 'EncryptedIndex' in vecvault, langchain }));
`,
  );
  try {
    const out = execFileSync(process.execPath, [script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({
      results: [{ id: 'x', contents: 'hi' }],
      code: 'VECVAULT_VALIDATION',
      engine: 'ok',
      encryptedIndexValue: false,
      langchain: { type: 'vecvault', pageContent: 'hello world', adapter: 'function' },
    });
  } finally {
    rmSync(script, { force: true });
  }
}, 180_000);

/** Every .d.ts a user's compiler reads from the package entry: the entry and what it imports, transitively. */
function publicDeclarations(entry: string): Map<string, string> {
  const seen = new Map<string, string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    const text = readFileSync(file, 'utf8');
    seen.set(file, text);
    for (const [, spec] of text.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) visit(resolve(dirname(file), `${spec}.d.ts`));
  };
  visit(entry);
  return seen;
}

it('the public .d.ts shows the documented surface only: no private fields, no internal types', () => {
  // dist/ was built by the test above (same file, run in order).
  const files = publicDeclarations(join(process.cwd(), 'dist', 'index.d.ts'));
  expect(files.size).toBeGreaterThan(3);
  for (const [file, text] of files) {
    expect(text, file).not.toMatch(/^\s*(private|protected)\s|@internal/m); // a private member's declaration; `#private;` (ES private fields) shows nothing
    expect(text, file).not.toMatch(/\b(IndexState|IndexStore|KvStore|Manifest|IndexKeys|NativeIndexHandle|MetadataIndex)\b/);
  }
  const index = files.get(join(process.cwd(), 'dist', 'index.d.ts'))!;
  expect(index).toContain('export type { EncryptedIndex }');
  expect(index).toContain('export type { WarningCode }');
  const encryptedIndex = files.get(join(process.cwd(), 'dist', 'api', 'encrypted-index.d.ts'))!;
  expect(encryptedIndex).not.toMatch(/constructor|isUsable|static /);
  // vecvault/langchain: its own entry, built on the public API only (and the main entry never loads LangChain).
  const langchain = publicDeclarations(join(process.cwd(), 'dist', 'langchain', 'index.d.ts'));
  for (const [file, text] of langchain) {
    expect(text, file).not.toMatch(/^\s*(private|protected)\s|@internal/m);
    expect(text, file).not.toMatch(/\b(IndexState|IndexStore|KvStore|Manifest|IndexKeys|NativeIndexHandle|MetadataIndex)\b/);
  }
  expect(langchain.get(join(process.cwd(), 'dist', 'langchain', 'index.d.ts'))).toMatch(/export declare class VecvaultStore extends VectorStore/);
  for (const file of files.keys()) expect(readFileSync(file, 'utf8'), file).not.toContain('@langchain');
  expect(readFileSync(join(process.cwd(), 'dist', 'index.js'), 'utf8')).not.toContain('langchain');
  // The negative control: the same scan finds the internals in a file users never reach.
  expect(readFileSync(join(process.cwd(), 'dist', 'core', 'index-state.d.ts'), 'utf8')).toMatch(/^\s*(private|protected)\s/m);
});
