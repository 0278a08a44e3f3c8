/**
 * Every ```ts block of the README and docs/ runs, and type-checks, against
 * src/ — so the docs cannot drift from the code. A block may be marked on the
 * line before its fence:
 *   <!-- example: signature -->   a shape to read (a type, a call with `?`), not a program: not run
 *   <!-- example: filters -->     one filter literal per line: each is run as `query({ filters })`
 *   <!-- readme-example: usage … -->  run, with its printed output checked, by test/readme.test.ts
 * Any other block runs as written, in its own module, after a prelude that
 * provides what the docs take as given: a `client` on a fresh store, an
 * `indexKey`, and (unless the block creates its own) an open index `index`
 * named "notes" (dimension 3, cosine) holding records `a` (folder work, year
 * 2025, contents 'note') and `b`. Paths './x' point into a temp directory;
 * a block that names './damaged' gets a store there holding "notes" under
 * `indexKey`. `import … from 'vecvault'` resolves to src/.
 *
 * Shell blocks (```sh / ```bash) run with `bash -e` in a fresh directory, with
 * `vecvault` on PATH running src/cli/main.ts, after a prelude of the files
 * the docs take as given unless the block makes them itself: notes.key and
 * sift.key, ./store holding "notes" (cosine, records a and b) and "sift",
 * ./damaged holding "notes", notes.jsonl / vectors.jsonl / query.json with
 * vectors of the block's `--dimension` (3 if none), sift_base.fvecs. A block
 * that cannot run here is marked `<!-- example: not-run: the reason -->`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import * as vecvault from '../src/index.js';

interface Example {
  file: string;
  line: number;
  lang: 'ts' | 'sh';
  code: string;
  mark: string | undefined;
}

const SOURCES = ['README.md', ...readdirSync('docs').map((f) => join('docs', f))].filter((f) => f.endsWith('.md'));

function examples(): Example[] {
  const found: Example[] = [];
  for (const file of SOURCES) {
    const lines = readFileSync(file, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const lang = lines[i] === '```ts' ? 'ts' : ['```sh', '```bash'].includes(lines[i]!) ? 'sh' : undefined;
      if (lang === undefined) continue;
      const end = lines.indexOf('```', i + 1);
      const before = lines
        .slice(Math.max(0, i - 2), i)
        .reverse()
        .find((l) => l.trim() !== '');
      const mark = /^<!-- (example: [a-z-]+|readme-example: [a-z-]+)(: .+)?/.exec(before ?? '')?.[1];
      found.push({ file, line: i + 1, lang, code: lines.slice(i + 1, end).join('\n'), mark });
      i = end;
    }
  }
  return found;
}

const SRC = resolve('src');
const runtimeExports = Object.keys(vecvault);

/** The example as a module: hoisted imports, then the prelude and the example in a block of their own (so its names may shadow the prelude's). */
function moduleFor(example: Example, dir: string): string {
  const code = example.code.replaceAll("'./", `'${dir}/`).replaceAll('"./', `"${dir}/`);
  const importLines = code.split('\n').filter((l) => /^import\s/.test(l));
  const body = code
    .split('\n')
    .filter((l) => !/^import\s/.test(l))
    .join('\n');
  const imports = importLines.map((l) =>
    l.replace(/from 'vecvault(\/[a-z-]+)?'/, (_, sub: string | undefined) => `from '${SRC}/${sub ? `${sub.slice(1)}/` : ''}index.js'`),
  );
  const imported = new Set(
    importLines.flatMap(
      (l) =>
        /\{([^}]*)\}/
          .exec(l)?.[1]
          ?.split(',')
          .map((n) => n.trim().replace(/^type\s+/, '')) ?? [],
    ),
  );
  const used = runtimeExports.filter((name) => !imported.has(name) && new RegExp(`\\b${name}\\b`).test(body));
  const given = (name: string) => new RegExp(`\\b${name}\\b`).test(body) && !new RegExp(`\\b(const|let)\\s+${name}\\b`).test(body);
  const extras: string[] = [];
  const extraImports: string[] = [];
  if (given('myModel')) {
    // A stand-in model: 384 numbers per text from its characters.
    extras.push(
      `const myModel = { embed: async (texts: string[]) => texts.map((t) => Array.from({ length: 384 }, (_, i) => ((t.charCodeAt(i % t.length) * (i + 1)) % 17) - 8)) };`,
    );
  }
  if (given('embeddings') || given('docs') || given('store')) {
    extraImports.push(
      `import { SyntheticEmbeddings as __Synthetic } from '@langchain/core/utils/testing';`,
      `import { Document as __Document } from '@langchain/core/documents';`,
      `import { VecvaultStore as __Store } from '${SRC}/langchain/index.js';`,
    );
    extras.push(`const embeddings = new __Synthetic({ vectorSize: 16 });`);
    extras.push(
      `const docs = [new __Document({ pageContent: 'budget meeting notes', metadata: { folder: 'work', year: 2025 } }), new __Document({ pageContent: 'garden plan', metadata: { folder: 'home', year: 2024 } })];`,
    );
    if (given('store')) extras.push(`const store = await __Store.fromDocuments(docs, embeddings, { client, indexName: 'lc', indexKey });`);
  }
  const ownIndex = /\bcreateIndex\(/.test(body);
  const usesIndex = /\bindex\b|\bloadIndex\(/.test(body);
  return `import * as __vecvault from '${SRC}/index.js';
${[...imports, ...extraImports].join('\n')}
const __dir = ${JSON.stringify(dir)};
const __client = new __vecvault.Client({ path: __dir + '/store' });
try {
  const { ${used.join(', ')} } = __vecvault;
  const client = __client;
  const storePath = __dir + '/store';
  const indexKey = new Uint8Array(32).fill(7);
  void storePath;
  ${
    body.includes(`${dir}/damaged`)
      ? `{ const c = new __vecvault.Client({ path: __dir + '/damaged' }); const i = await c.createIndex({ indexName: 'notes', indexKey, dimension: 3 }); await i.upsert({ ids: ['a'], vectors: [[1, 0, 0]] }); await c.close(); }`
      : ''
  }
  ${
    usesIndex && !ownIndex
      ? `const index = await client.createIndex({ indexName: 'notes', indexKey, dimension: 3, metric: 'cosine' });
  await index.upsert({ items: [{ id: 'a', vector: [1, 0, 0], metadata: { folder: 'work', year: 2025 }, contents: 'note' }, { id: 'b', vector: [0, 1, 0] }] });`
      : ''
  }
  ${extras.join('\n  ')}
  {
${body}
  }
} finally {
  await __client.close();
}
export {};
`;
}

/** A directory holding `vecvault`, which runs src/cli/main.ts under tsx whatever the working directory. */
let shimDir: string | undefined;
function shim(): string {
  if (shimDir) return shimDir;
  shimDir = join(dir, 'bin');
  mkdirSync(shimDir, { recursive: true });
  const tsx = pathToFileURL(resolve('node_modules/tsx/dist/loader.mjs')).href;
  writeFileSync(join(shimDir, 'vecvault'), `#!/bin/sh\nexec "${process.execPath}" --import "${tsx}" "${resolve('src/cli/main.ts')}" "$@"\n`);
  chmodSync(join(shimDir, 'vecvault'), 0o755);
  return shimDir;
}

const KEY = new Uint8Array(32).fill(7);

/** The files a shell example takes as given, except those it makes itself. */
async function shellPrelude(code: string, cwd: string): Promise<void> {
  const makes = (pattern: RegExp) => pattern.test(code);
  const dimension = Number(/--dimension (\d+)/.exec(code)?.[1] ?? 3);
  const row = (i: number) => Array.from({ length: dimension }, (_, d) => (d === i % dimension ? 1 : 0.01 * (d + 1)));
  const hex = Buffer.from(KEY).toString('hex');
  if (!makes(/keygen --out notes\.key/)) writeFileSync(join(cwd, 'notes.key'), `${hex}\n`);
  writeFileSync(join(cwd, 'sift.key'), `${hex}\n`);
  const jsonl = Array.from({ length: 5 }, (_, i) =>
    JSON.stringify({ id: `n${i}`, vector: row(i), metadata: { folder: i % 2 ? 'work' : 'home', year: 2023 + i } }),
  ).join('\n');
  if (!makes(/--out notes\.jsonl|> notes\.jsonl/)) writeFileSync(join(cwd, 'notes.jsonl'), jsonl);
  writeFileSync(join(cwd, 'vectors.jsonl'), jsonl);
  writeFileSync(join(cwd, 'query.json'), JSON.stringify(row(0)));
  const fvecs = Buffer.alloc(10 * (4 + 4 * 8));
  for (let r = 0; r < 10; r++) {
    fvecs.writeInt32LE(8, r * 36);
    for (let d = 0; d < 8; d++) fvecs.writeFloatLE(r + d / 10, r * 36 + 4 + d * 4);
  }
  writeFileSync(join(cwd, 'sift_base.fvecs'), fvecs);
  const createsNotes = makes(/vecvault create [^\n]*--index notes/);
  const store = new vecvault.Client({ path: join(cwd, 'store') });
  try {
    if (!createsNotes) {
      const notes = await store.createIndex({ indexName: 'notes', indexKey: KEY, dimension, metric: 'cosine' });
      await notes.upsert({
        items: [
          { id: 'a', vector: row(0), metadata: { folder: 'work', year: 2025 }, contents: 'note' },
          { id: 'b', vector: row(1), metadata: { year: 2024 } },
        ],
      });
    }
    await store.createIndex({ indexName: 'sift', indexKey: KEY });
  } finally {
    await store.close();
  }
  const damaged = new vecvault.Client({ path: join(cwd, 'damaged') });
  try {
    const notes = await damaged.createIndex({ indexName: 'notes', indexKey: KEY, dimension: 3 });
    await notes.upsert({ ids: ['a'], vectors: [[1, 0, 0]] });
  } finally {
    await damaged.close();
  }
}

const all = examples();
// Inside the project (under node_modules/.cache), so an example's own imports such as @langchain/core resolve.
mkdirSync(resolve('node_modules/.cache'), { recursive: true });
const dir = mkdtempSync(join(resolve('node_modules/.cache'), 'vecvault-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const written: { example: Example; path: string }[] = [];

describe('code examples in README.md and docs/', () => {
  it('every ts block is marked or runnable; marks are known', () => {
    expect(all.filter((e) => e.lang === 'ts').length).toBeGreaterThan(20);
    expect(all.filter((e) => e.lang === 'sh').length).toBeGreaterThan(15);
    const known = { ts: ['example: signature', 'example: filters', 'readme-example: usage', 'readme-example: langchain'], sh: ['example: not-run'] };
    for (const e of all) {
      if (e.mark !== undefined) expect(known[e.lang], `${e.file}:${e.line}`).toContain(e.mark);
    }
    // Not running is the exception: each says why, on the mark.
    for (const e of all.filter((x) => x.mark === 'example: not-run')) {
      const text = readFileSync(e.file, 'utf8').split('\n')[e.line - 3] ?? '';
      expect(text, `${e.file}:${e.line}`).toMatch(/not-run: \S/);
    }
  });

  for (const example of all.filter((e) => e.mark === 'example: filters')) {
    it(`${example.file}:${example.line}: every filter is accepted by query()`, async () => {
      const filters = example.code
        .split('\n')
        .map((line) => line.replace(/\/\/.*$/, '').trim())
        .filter((line) => line !== '');
      expect(filters.length).toBeGreaterThan(3);
      const client = new vecvault.Client({ path: join(dir, 'filters') });
      try {
        const index = await client.createIndex({ indexName: 'f', indexKey: vecvault.Client.generateKey(), dimension: 2 });
        await index.upsert({ ids: ['x'], vectors: [[1, 0]] });
        // Trusted text from this repository, evaluated as the object literal it shows.
        for (const text of filters) await index.query({ queryVectors: [1, 0], topK: 1, filters: new Function(`return (${text});`)() as vecvault.Filter });
      } finally {
        await client.close();
      }
    });
  }

  for (const example of all.filter((e) => e.mark === undefined && e.lang === 'sh')) {
    it(`${example.file}:${example.line} (shell) runs`, async () => {
      const cwd = join(dir, `${example.file.replace(/[/.]/g, '_')}_${example.line}`);
      mkdirSync(cwd, { recursive: true });
      await shellPrelude(example.code, cwd);
      const run = spawnSync('bash', ['-e', '-c', example.code], {
        cwd,
        encoding: 'utf8',
        env: { ...process.env, PATH: `${shim()}:${process.env.PATH}`, VECVAULT_INDEX_KEY: '' },
        timeout: 120_000,
      });
      expect(run.status, `${example.file}:${example.line}\n${run.stderr}`).toBe(0);
    });
  }

  for (const example of all.filter((e) => e.mark === undefined && e.lang === 'ts')) {
    it(`${example.file}:${example.line} runs`, async () => {
      const own = join(dir, `${example.file.replace(/[/.]/g, '_')}_${example.line}`);
      execFileSync('mkdir', ['-p', own]);
      const path = join(own, 'example.ts');
      writeFileSync(path, moduleFor(example, own));
      written.push({ example, path });
      const log = console.log;
      const warn = console.warn;
      console.log = () => undefined; // examples print; the output is not what is checked here
      console.warn = () => undefined;
      try {
        await import(path);
      } finally {
        console.log = log;
        console.warn = warn;
      }
    });
  }

  afterAll(() => {
    // One tsc run over every example that ran: the docs' calls must type-check, not only run.
    const tsconfig = join(dir, 'tsconfig.json');
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }'); // ESM, as the package is: top-level await
    writeFileSync(
      tsconfig,
      // The repository's own settings (strict, lib, module), checking only these files.
      JSON.stringify({
        extends: resolve('tsconfig.json'),
        compilerOptions: { noEmit: true, rootDir: '/', typeRoots: [resolve('node_modules/@types')] },
        files: written.map((w) => w.path),
        include: [],
      }),
    );
    try {
      execFileSync(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', tsconfig], { encoding: 'utf8' });
    } catch (error) {
      const out = (error as { stdout?: string }).stdout ?? String(error);
      const located = out.replace(/[^\s]*\/([^/\s]+)\/example\.ts\((\d+),\d+\)/g, (_, name: string, line: string) => `${name} (module line ${line})`);
      throw new Error(`docs examples do not type-check:\n${located}`);
    }
  });
});
