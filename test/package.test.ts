/** The built package, imported the way a user imports it: dist/ via the package's own exports. */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
console.log(JSON.stringify({ results, code, engine: 'ok' }));
`,
  );
  try {
    const out = execFileSync(process.execPath, [script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ results: [{ id: 'x', contents: 'hi' }], code: 'VECVAULT_VALIDATION', engine: 'ok' });
  } finally {
    rmSync(script, { force: true });
  }
}, 180_000);
