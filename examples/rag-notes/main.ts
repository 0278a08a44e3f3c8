/**
 * RAG over private notes (`npm run example:rag`): splits the Markdown notes in
 * ./notes with LangChain's text splitter, stores the chunks in an encrypted
 * vecvault index, reopens it the way a restarted app would, and answers
 * questions with a LangChain retriever. Runs offline: the embedding is a
 * deterministic stand-in (hashing-embeddings.ts); see below for a real model.
 *
 *   npx tsx examples/rag-notes/main.ts [--path DIR] [--key-file F] [--question "…"]… [--json]
 *
 * Without --path the store goes to a temporary directory (removed at exit),
 * under a key that lives only for the run. With --key-file, the key is read from F (created,
 * mode 0600, when missing): keep it away from the store, or the encryption
 * protects nothing.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Document } from '@langchain/core/documents';
import { RecursiveCharacterTextSplitter } from '@langchain/textsplitters';
// In an application: `from 'vecvault'` and `from 'vecvault/langchain'`.
import { Client } from '../../src/index.js';
import { VecvaultStore } from '../../src/langchain/index.js';
import { HashingEmbeddings } from './hashing-embeddings.js';

const { values: args } = parseArgs({
  options: {
    path: { type: 'string' },
    'key-file': { type: 'string' },
    question: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
  },
});
const questions = args.question ?? ['How often should I water the tomatoes?', 'What tire pressure for the road bike?'];
const notesDir = join(dirname(fileURLToPath(import.meta.url)), 'notes');
const path = args.path ?? mkdtempSync(join(tmpdir(), 'vecvault-rag-notes-'));
const indexName = 'notes';

function loadKey(): Uint8Array {
  const file = args['key-file'];
  if (file === undefined) return Client.generateKey();
  if (existsSync(file)) return new Uint8Array(readFileSync(file));
  const key = Client.generateKey();
  writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
  return key;
}

// The embedding model. This offline stand-in matches words, not meaning. A real
// model plugs in as any LangChain `Embeddings` (not run here: it downloads weights), e.g.
// transformers.js, in-process:
//   import { pipeline } from '@huggingface/transformers';
//   const extractor = await pipeline('feature-extraction', 'Xenova/all-MiniLM-L6-v2');
//   class MiniLM extends Embeddings {
//     async embedDocuments(texts: string[]) { return (await extractor(texts, { pooling: 'mean', normalize: true })).tolist(); }
//     async embedQuery(text: string) { return (await this.embedDocuments([text]))[0]; }
//   }
// or a hosted one (`new OpenAIEmbeddings()` from @langchain/openai). Keep its name in `embeddingName`.
const embeddings = new HashingEmbeddings(256);
const indexKey = loadKey();

// 1. Notes → chunks, each with its source file and line range (LangChain's `loc`).
const notes = readdirSync(notesDir)
  .filter((file) => file.endsWith('.md'))
  .sort()
  .map((file) => new Document({ pageContent: readFileSync(join(notesDir, file), 'utf8'), metadata: { source: file } }));
const splitter = RecursiveCharacterTextSplitter.fromLanguage('markdown', { chunkSize: 300, chunkOverlap: 40 });
const chunks = await splitter.splitDocuments(notes);
// Stable ids (source + chunk number): indexing again overwrites instead of duplicating.
const perSource = new Map<string, number>();
const ids = chunks.map((chunk) => {
  const source = chunk.metadata.source as string;
  const n = perSource.get(source) ?? 0;
  perSource.set(source, n + 1);
  return `${source}#${n}`;
});

// 2. Index them: text, metadata and vectors are encrypted before they reach the disk.
const config = { indexName, indexKey, metric: 'cosine' as const, embeddingName: embeddings.name };
let client = new Client({ path });
const store = new VecvaultStore(embeddings, { client, ...config });
await store.addDocuments(chunks, { ids });
await client.close();

// 3. Later (a restarted app): open the existing index and ask.
client = new Client({ path });
const reopened = await VecvaultStore.fromExistingIndex(embeddings, { client, ...config });
const retriever = reopened.asRetriever({ k: 3 });
const answers = [];
for (const question of questions) {
  const found = await retriever.invoke(question);
  // A full RAG app puts `found` into an LLM prompt; here the best chunk is the answer.
  answers.push({
    question,
    answer: found[0]?.pageContent ?? '',
    sources: found.map((doc) => `${doc.metadata.source as string}:${(doc.metadata.loc as { lines: { from: number; to: number } }).lines.from}`),
  });
}
await client.close();

// 4. What an attacker with the files but not the key sees: no note text.
const storeFiles = (readdirSync(path, { recursive: true, encoding: 'utf8' }) as string[]).map((f) => join(path, f)).filter((f) => statSync(f).isFile());
const phrases = chunks.map((chunk) => chunk.pageContent.split('\n').find((line) => line.length >= 24)).filter((line): line is string => line !== undefined);
const plaintextFiles = storeFiles.filter((file) => {
  const bytes = readFileSync(file);
  return phrases.some((phrase) => bytes.includes(phrase));
});

if (args.json) {
  console.log(JSON.stringify({ notes: notes.length, chunks: chunks.length, answers, storeFiles: storeFiles.length, plaintextFiles }));
} else {
  console.log(`Indexed ${notes.length} notes as ${chunks.length} encrypted chunks in ${path}.`);
  for (const { question, answer, sources } of answers) {
    console.log(`\nQ: ${question}\nA: ${answer}\n   (from ${sources.join(', ')})`);
  }
  console.log(`\n${storeFiles.length} store files scanned; note text found in ${plaintextFiles.length} of them.`);
}
if (args.path === undefined) rmSync(path, { recursive: true, force: true });
