import { describe, expect, it } from 'vitest';
import { compileFilter, type Filter } from '../src/filter/index.js';

const book = {
  title: 'Notes',
  year: 1843,
  rating: 4.5,
  draft: false,
  editor: null,
  tags: ['math', 'engine'],
  scores: [3, 9],
  author: { name: 'Ada', born: 1815, langs: ['en', 'fr'] },
  chapters: [
    { name: 'intro', pages: 3 },
    { name: 'notes', pages: 40 },
  ],
  matrix: [[1, 2], [3]],
};

function matches(filter: unknown, metadata: unknown = book): boolean {
  return compileFilter(filter)(metadata);
}

describe('equality', () => {
  it.each([
    [{ title: 'Notes' }, true],
    [{ title: 'notes' }, false],
    [{ year: 1843 }, true],
    [{ year: '1843' }, false],
    [{ draft: false }, true],
    [{ draft: 0 }, false],
    [{ title: { $eq: 'Notes' } }, true],
    [{ year: { $eq: 1843.0 } }, true],
  ])('%j → %s', (filter, expected) => expect(matches(filter)).toBe(expected));

  it('a bare value in an array field matches any element', () => {
    expect(matches({ tags: 'math' })).toBe(true);
    expect(matches({ tags: 'poetry' })).toBe(false);
    expect(matches({ scores: { $eq: 9 } })).toBe(true);
  });

  it('an array value means exact, ordered array equality (or an equal nested element)', () => {
    expect(matches({ tags: ['math', 'engine'] })).toBe(true);
    expect(matches({ tags: ['engine', 'math'] })).toBe(false);
    expect(matches({ tags: ['math'] })).toBe(false);
    expect(matches({ matrix: [3] })).toBe(true);
    expect(matches({ matrix: 3 })).toBe(false);
  });

  it('an object value means exact deep equality, key order ignored', () => {
    expect(matches({ author: { born: 1815, name: 'Ada', langs: ['en', 'fr'] } })).toBe(true);
    expect(matches({ author: { name: 'Ada' } })).toBe(false);
    expect(matches({ chapters: { pages: 3, name: 'intro' } })).toBe(true);
    expect(matches({ author: {} })).toBe(false);
    expect(matches({ x: {} }, { x: {} })).toBe(true);
  });

  it('-0 equals 0', () => {
    expect(matches({ n: -0 }, { n: 0 })).toBe(true);
  });
});

describe('null and missing', () => {
  it('null matches null, a missing field, or an array holding null', () => {
    expect(matches({ editor: null })).toBe(true);
    expect(matches({ nothing: null })).toBe(true);
    expect(matches({ 'author.nothing': null })).toBe(true);
    expect(matches({ title: null })).toBe(false);
    expect(matches({ a: null }, { a: [1, null] })).toBe(true);
    expect(matches({ a: null }, { a: undefined })).toBe(true);
  });

  it('$ne and $nin are true when the field is missing', () => {
    expect(matches({ nothing: { $ne: 'x' } })).toBe(true);
    expect(matches({ nothing: { $nin: ['x'] } })).toBe(true);
    expect(matches({ nothing: { $ne: null } })).toBe(false);
    expect(matches({ editor: { $ne: null } })).toBe(false);
    expect(matches({ title: { $ne: null } })).toBe(true);
  });

  it('$exists sees null as present and undefined as absent', () => {
    expect(matches({ editor: { $exists: true } })).toBe(true);
    expect(matches({ nothing: { $exists: true } })).toBe(false);
    expect(matches({ nothing: { $exists: false } })).toBe(true);
    expect(matches({ a: { $exists: false } }, { a: undefined })).toBe(true);
    expect(matches({ 'author.name': { $exists: true } })).toBe(true);
  });

  it('missing metadata behaves like an empty record', () => {
    for (const metadata of [undefined, null, 42, 'text', [1, 2]]) {
      expect(matches({ a: null }, metadata)).toBe(true);
      expect(matches({ a: { $exists: true } }, metadata)).toBe(false);
      expect(matches({ a: { $ne: 1 } }, metadata)).toBe(true);
      expect(matches({}, metadata)).toBe(true);
    }
  });
});

describe('comparisons', () => {
  it.each([
    [{ year: { $gt: 1800 } }, true],
    [{ year: { $gt: 1843 } }, false],
    [{ year: { $gte: 1843 } }, true],
    [{ year: { $lt: 1843 } }, false],
    [{ year: { $lte: 1843 } }, true],
    [{ rating: { $gt: 4, $lt: 5 } }, true],
    [{ rating: { $gt: 4.5, $lt: 5 } }, false],
    [{ title: { $gt: 'M' } }, true],
    [{ title: { $lt: 'M' } }, false],
    [{ title: { $gte: 'Notes' } }, true],
  ])('%j → %s', (filter, expected) => expect(matches(filter)).toBe(expected));

  it('never compares across types', () => {
    expect(matches({ year: { $gt: '1' } })).toBe(false);
    expect(matches({ year: { $lt: 'zzz' } })).toBe(false);
    expect(matches({ title: { $gt: 0 } })).toBe(false);
    expect(matches({ s: { $lt: 5 } }, { s: '1' })).toBe(false);
    expect(matches({ b: { $gte: 0 } }, { b: false })).toBe(false);
    expect(matches({ n: { $gte: 0 } }, { n: null })).toBe(false);
    expect(matches({ nothing: { $lt: 5 } })).toBe(false);
  });

  it('orders strings by UTF-16 code unit, not locale', () => {
    expect(matches({ s: { $lt: 'a' } }, { s: 'Z' })).toBe(true);
    expect(matches({ s: { $gt: '\uffff' } }, { s: '😀' })).toBe(false);
    expect(matches({ s: { $gt: 'ab' } }, { s: 'abc' })).toBe(true);
  });

  it('matches an array field if any element compares true', () => {
    expect(matches({ scores: { $gt: 8 } })).toBe(true);
    expect(matches({ scores: { $gt: 9 } })).toBe(false);
    // each operator may be satisfied by a different element, as in MongoDB
    expect(matches({ scores: { $gt: 5, $lt: 4 } })).toBe(true);
  });
});

describe('$in and $nin', () => {
  it.each([
    [{ title: { $in: ['Notes', 'Other'] } }, true],
    [{ title: { $in: ['Other'] } }, false],
    [{ title: { $in: [] } }, false],
    [{ tags: { $in: ['poetry', 'engine'] } }, true],
    [{ year: { $in: ['1843'] } }, false],
    [{ nothing: { $in: [null] } }, true],
    [{ editor: { $in: [null, 'x'] } }, true],
    [{ tags: { $in: [['math', 'engine']] } }, true],
    [{ author: { $in: [{ name: 'Ada', born: 1815, langs: ['en', 'fr'] }] } }, true],
    [{ title: { $nin: ['Other'] } }, true],
    [{ title: { $nin: ['Notes'] } }, false],
    [{ tags: { $nin: ['engine'] } }, false],
    [{ title: { $nin: [] } }, true],
  ])('%j → %s', (filter, expected) => expect(matches(filter)).toBe(expected));
});

describe('logical operators', () => {
  it('several keys at one level are ANDed', () => {
    expect(matches({ title: 'Notes', year: 1843 })).toBe(true);
    expect(matches({ title: 'Notes', year: 1 })).toBe(false);
  });

  it.each([
    [{ $and: [{ title: 'Notes' }, { year: 1843 }] }, true],
    [{ $and: [{ title: 'Notes' }, { year: 1 }] }, false],
    [{ $or: [{ title: 'x' }, { year: 1843 }] }, true],
    [{ $or: [{ title: 'x' }, { year: 1 }] }, false],
    [{ $nor: [{ title: 'x' }, { year: 1 }] }, true],
    [{ $nor: [{ title: 'x' }, { year: 1843 }] }, false],
    [{ $not: { title: 'Notes' } }, false],
    [{ $not: { title: 'x' } }, true],
    [{ $not: {} }, false],
    [{ year: { $not: { $gt: 1900 } } }, true],
    [{ year: { $not: { $gt: 1800, $lt: 1900 } } }, false],
    [{ nothing: { $not: { $gt: 1 } } }, true],
    [{ $or: [{ $and: [{ 'author.name': 'Ada' }, { $not: { draft: true } }] }, { year: 0 }] }, true],
  ])('%j → %s', (filter, expected) => expect(matches(filter)).toBe(expected));

  it('{} matches everything and says so', () => {
    const filter = compileFilter({});
    expect(filter.matchesEverything).toBe(true);
    expect(filter(book)).toBe(true);
    expect(compileFilter({ a: 1 }).matchesEverything).toBe(false);
  });
});

describe('dot paths', () => {
  it('reach into nested objects', () => {
    expect(matches({ 'author.name': 'Ada' })).toBe(true);
    expect(matches({ 'author.langs': 'fr' })).toBe(true);
    expect(matches({ 'author.born': { $lt: 1900 } })).toBe(true);
    expect(matches({ 'author.name.first': { $exists: true } })).toBe(false);
    expect(matches({ 'title.length': 5 })).toBe(false);
  });

  it('traverse arrays of objects and index arrays by position', () => {
    expect(matches({ 'chapters.name': 'notes' })).toBe(true);
    expect(matches({ 'chapters.pages': { $gt: 30 } })).toBe(true);
    expect(matches({ 'chapters.1.name': 'notes' })).toBe(true);
    expect(matches({ 'chapters.0.name': 'notes' })).toBe(false);
    expect(matches({ 'tags.0': 'math' })).toBe(true);
    expect(matches({ 'tags.1': 'math' })).toBe(false);
    expect(matches({ 'tags.2': { $exists: true } })).toBe(false);
    expect(matches({ 'matrix.0': 2 })).toBe(true);
  });

  it('do not traverse arrays nested in arrays by field name', () => {
    expect(matches({ 'a.b': 1 }, { a: [[{ b: 1 }]] })).toBe(false);
    expect(matches({ 'a.b': 1 }, { a: [{ b: 1 }] })).toBe(true);
  });

  it('read own properties only, never the prototype chain or opaque objects', () => {
    expect(matches({ toString: { $exists: true } }, {})).toBe(false);
    expect(matches({ 'a.length': 2 }, { a: 'xy' })).toBe(false);
    expect(matches({ 'a.length': 2 }, { a: [1, 2] })).toBe(false);
    expect(matches({ 'b.0': 1 }, { b: new Uint8Array([1]) })).toBe(false);
    expect(matches({ 'd.x': 1 }, { d: Object.assign(new Date(0), { x: 1 }) })).toBe(false);
    const proto = { inherited: 1 };
    expect(matches({ inherited: 1 }, Object.create(proto))).toBe(false);
    expect(matches({ a: 1 }, Object.assign(Object.create(null), { a: 1 }))).toBe(true);
  });
});

describe('compiled filter', () => {
  it('reports the paths it reads', () => {
    const filter = compileFilter({ a: 1, $or: [{ 'b.c': { $gt: 1 } }, { $not: { d: null } }] });
    expect([...filter.paths].sort()).toEqual(['a', 'b.c', 'd']);
  });

  it('is a copy: mutating the original filter afterwards changes nothing', () => {
    const raw = { tags: { $in: ['math'] }, author: { name: 'Ada', born: 1815, langs: ['en', 'fr'] } };
    const filter = compileFilter(raw);
    raw.tags.$in.push('zzz');
    raw.tags.$in[0] = 'nope';
    raw.author.langs.pop();
    expect(filter(book)).toBe(true);
    expect(filter.matches(book)).toBe(true);
  });

  it('never throws on hostile metadata', () => {
    const throwing = {
      get a() {
        throw new Error('boom');
      },
    };
    const proxy = new Proxy(
      {},
      {
        getPrototypeOf() {
          throw new Error('trap');
        },
      },
    );
    const revocable = Proxy.revocable({}, {});
    revocable.revoke();
    for (const metadata of [throwing, proxy, revocable.proxy, { a: throwing }, { a: [proxy] }]) {
      expect(() => compileFilter({ 'a.b': 1 })(metadata)).not.toThrow();
      expect(() => compileFilter({ a: { $not: { $eq: { x: 1 } } } })(metadata)).not.toThrow();
    }
  });

  it('stays bounded on cyclic and shared metadata', () => {
    const node: Record<string, unknown> = {};
    node.k = [node, node, node, node];
    const path = Array.from({ length: 30 }, () => 'k').join('.');
    const started = Date.now();
    expect(compileFilter({ [path]: { $exists: true } })({ k: node.k })).toBe(true);
    expect(compileFilter({ [path]: 'x' })({ k: node.k })).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('Filter type', () => {
  it('accepts typed literals and filters built at run time', () => {
    const typed: Filter = { tags: { $in: ['a'] }, $or: [{ year: { $gt: 1 } }, { $not: { draft: true } }] };
    const built: Record<string, unknown> = { ['author.name']: 'Ada' };
    const dynamic: Filter = built;
    expect(compileFilter(typed)({ tags: ['a'], year: 2 })).toBe(true);
    expect(compileFilter(dynamic)({ author: { name: 'Ada' } })).toBe(true);
  });
});
