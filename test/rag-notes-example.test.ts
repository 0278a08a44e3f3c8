/**
 * examples/rag-notes (`npm run example:rag`) runs offline as documented: it
 * answers from the right notes, leaves no note text in the store files, and
 * indexing again under the same key overwrites instead of duplicating.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { tempStore } from './support/helpers.js';

interface Run {
  notes: number;
  chunks: number;
  answers: { question: string; answer: string; sources: string[] }[];
  storeFiles: number;
  plaintextFiles: string[];
}

function run(path: string, keyFile: string, ...questions: string[]): Run {
  const args = [
    '--import',
    'tsx',
    'examples/rag-notes/main.ts',
    '--path',
    path,
    '--key-file',
    keyFile,
    '--json',
    ...questions.flatMap((q) => ['--question', q]),
  ];
  return JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' }).trim().split('\n').at(-1)!) as Run;
}

it('indexes the notes through the text splitter into an encrypted index and answers with a retriever', () => {
  const dir = tempStore();
  const path = join(dir, 'store');
  const keyFile = join(dir, 'notes.key');
  const first = run(path, keyFile, 'How often should I water the tomatoes?', 'When is the tax return due?', 'Where is the backup repository key kept?');
  expect(first.notes).toBe(5);
  expect(first.chunks).toBeGreaterThan(first.notes); // the splitter cut the longer notes
  expect(first.answers.map((a) => a.sources[0]!.split(':')[0])).toEqual(['garden-tomatoes.md', 'tax-deadlines.md', 'server-backups.md']);
  expect(first.answers[0]!.answer).toContain('twice a week');
  expect(first.storeFiles).toBeGreaterThan(3);
  expect(first.plaintextFiles).toEqual([]);

  // Negative control for the example's scan: a plaintext copy of a note in the store is found.
  // The second run (same key file) re-indexes under the same ids: no duplicates in the answers.
  const planted = join(path, 'copied-note.md');
  copyFileSync('examples/rag-notes/notes/garden-tomatoes.md', planted);
  const second = run(path, keyFile, 'How often should I water the tomatoes?');
  expect(second.plaintextFiles).toEqual([planted]);
  expect(second.answers[0]!.sources).toEqual(first.answers[0]!.sources);
}, 60_000);
