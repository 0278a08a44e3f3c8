#!/usr/bin/env node
// Prints where the installed `usearch` package lives, relative to the current
// directory (gyp runs `<!()` commands from the directory of binding.gyp).
// Relative, because gyp's make generator skips objects whose sources are
// absolute paths. `require.resolve('usearch/package.json')` is blocked by
// usearch's `exports` map, so walk the resolution paths by hand: this finds
// ./node_modules/usearch in a checkout and ../usearch when vecvault is itself
// installed as a dependency.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function locateUsearch(from = process.cwd()) {
  const searchPaths = require.resolve.paths('usearch') ?? [];
  const candidates = [path.join(from, 'node_modules'), ...searchPaths];
  for (const dir of candidates) {
    const root = path.join(dir, 'usearch');
    if (fs.existsSync(path.join(root, 'include', 'usearch', 'index_dense.hpp'))) return root;
  }
  throw new Error('vecvault: cannot find the usearch package (with include/usearch/index_dense.hpp) in node_modules');
}

function relativeToCwd(p) {
  const rel = path.relative(process.cwd(), p);
  return rel.split(path.sep).join('/');
}

function numkongSources(root) {
  const dir = path.join(root, 'numkong', 'c');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.c'))
    .sort()
    .map((f) => relativeToCwd(path.join(dir, f)));
}

module.exports = { locateUsearch };

if (require.main === module) {
  const root = locateUsearch();
  if (process.argv[2] === '--numkong-sources') console.log(numkongSources(root).join('\n'));
  else console.log(relativeToCwd(root));
}
