/** The examples in src/filter/README.md run here, so the docs cannot drift from the code. */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileFilter } from '../src/filter/index.js';

const readme = readFileSync(new URL('../src/filter/README.md', import.meta.url), 'utf8');

function codeBlock(info: string, occurrence = 0): string {
  const blocks = [...readme.matchAll(/```([^\n]*)\n([\s\S]*?)```/g)].filter((m) => m[1]!.trim() === info);
  const block = blocks[occurrence];
  if (block === undefined) throw new Error(`README has no \`\`\`${info} block #${occurrence}`);
  return block[2]!;
}

/** README snippets are JS object literals, trusted text from this repository. */
function evaluate(source: string): unknown {
  return new Function(`return (${source});`)();
}

const record = evaluate(codeBlock('js', 0));
const examples = codeBlock('js filter-examples')
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => {
    const [filter, comment] = line.split('//');
    return { filter: filter!.trim(), matches: comment!.trim().startsWith('matches') };
  });

describe('README filter examples', () => {
  it('has examples', () => expect(examples.length).toBeGreaterThan(10));

  it.each(examples)('$filter', ({ filter, matches }) => {
    expect(compileFilter(evaluate(filter))(record)).toBe(matches);
  });
});
