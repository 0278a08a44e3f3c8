import { describe, expect, it } from 'vitest';
import { ValidationError } from '../src/errors.js';
import { compileFilter, MAX_FILTER_DEPTH, MAX_FILTER_NODES } from '../src/filter/index.js';

/** Compiles `filter`, expecting a ValidationError; returns it. */
function rejection(filter: unknown): ValidationError {
  try {
    compileFilter(filter);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    const validation = error as ValidationError;
    expect(validation.code).toBe('VECVAULT_VALIDATION');
    return validation;
  }
  throw new Error('expected a ValidationError');
}

class Point {
  x = 1;
}

describe('invalid filters name the offending path', () => {
  it.each<[string, unknown, string]>([
    ['not an object', 'tag', 'filters'],
    ['null', null, 'filters'],
    ['an array', [{ a: 1 }], 'filters'],
    ['unknown top-level operator', { $where: 'x' }, 'filters.$where'],
    ['unknown field operator', { tags: { $regex: 'x' } }, 'filters.tags.$regex'],
    ['operator-like typo', { tags: { $IN: ['x'] } }, 'filters.tags.$IN'],
    ['$in not an array', { tags: { $in: 'x' } }, 'filters.tags.$in'],
    ['$nin not an array', { tags: { $nin: { a: 1 } } }, 'filters.tags.$nin'],
    ['$gt on an object', { n: { $gt: { a: 1 } } }, 'filters.n.$gt'],
    ['$gte on an array', { n: { $gte: [1] } }, 'filters.n.$gte'],
    ['$lt on a boolean', { n: { $lt: true } }, 'filters.n.$lt'],
    ['$lte on null', { n: { $lte: null } }, 'filters.n.$lte'],
    ['$and not an array', { $and: { a: 1 } }, 'filters.$and'],
    ['$or empty', { $or: [] }, 'filters.$or'],
    ['$nor of non-objects', { $nor: [{ a: 1 }, 3] }, 'filters.$nor[1]'],
    ['$and of arrays', { $and: [[{ a: 1 }]] }, 'filters.$and[0]'],
    ['$not not an object', { $not: [{ a: 1 }] }, 'filters.$not'],
    ['field $not not an object', { n: { $not: 5 } }, 'filters.n.$not'],
    ['field $not empty', { n: { $not: {} } }, 'filters.n.$not'],
    ['field $not with a field name', { n: { $not: { a: 1 } } }, 'filters.n.$not.a'],
    ['$and under a field', { n: { $and: [{ a: 1 }] } }, 'filters.n.$and'],
    ['$exists not boolean', { n: { $exists: 1 } }, 'filters.n.$exists'],
    ['NaN', { n: Number.NaN }, 'filters.n'],
    ['Infinity in $in', { n: { $in: [1, Infinity] } }, 'filters.n.$in[1]'],
    ['-Infinity in $gt', { n: { $gt: -Infinity } }, 'filters.n.$gt'],
    ['bigint', { n: 1n }, 'filters.n'],
    ['undefined', { n: undefined }, 'filters.n'],
    ['function', { n: () => 1 }, 'filters.n'],
    ['symbol value', { n: Symbol('x') }, 'filters.n'],
    ['Date', { n: new Date(0) }, 'filters.n'],
    ['Map', { n: new Map() }, 'filters.n'],
    ['class instance', { n: new Point() }, 'filters.n'],
    ['Date as the filter', new Date(0), 'filters'],
    ['typed array', { n: new Uint8Array(2) }, 'filters.n'],
    ['mixed operators and fields', { n: { $gt: 1, a: 2 } }, 'filters.n.a'],
    ['operator inside a literal', { n: { a: { $gt: 1 } } }, 'filters.n.a.$gt'],
    ['empty path', { '': 1 }, 'filters.'],
    ['double dot', { 'a..b': 1 }, 'filters.a..b'],
    ['leading dot', { '.a': 1 }, 'filters..a'],
    ['trailing dot', { 'a.': 1 }, 'filters.a.'],
    ['$ in a path segment', { 'a.$b': 1 }, 'filters.a.$b'],
    ['__proto__ path', JSON.parse('{"__proto__": {"polluted": 1}}'), 'filters.__proto__'],
    ['constructor path segment', { 'a.constructor.prototype': 1 }, 'filters.a.constructor.prototype'],
    ['prototype key', { prototype: 1 }, 'filters.prototype'],
    ['__proto__ inside a literal', { a: JSON.parse('{"__proto__": 1}') }, 'filters.a.__proto__'],
    ['constructor inside $in', { a: { $in: [{ constructor: 1 }] } }, 'filters.a.$in[0].constructor'],
    ['__proto__ under $and', { $and: [JSON.parse('{"x.__proto__": 1}')] }, 'filters.$and[0].x.__proto__'],
    ['sparse array', { a: { $in: [1, , 3] } }, 'filters.a.$in[1]'],
    ['nested deep inside $or', { $or: [{ a: 1 }, { b: { $in: [1, 'x', Number.NaN] } }] }, 'filters.$or[1].b.$in[2]'],
  ])('%s', (_name, filter, path) => {
    const error = rejection(filter);
    expect(error.path).toBe(path);
    expect(error.message).toContain(path);
  });

  it('rejects a non-plain prototype set by an object literal', () => {
    expect(rejection({ __proto__: { a: 1 } }).path).toBe('filters');
  });

  it('rejects getters without calling them', () => {
    let called = false;
    const filter = {
      get a() {
        called = true;
        return 1;
      },
    };
    expect(rejection(filter).path).toBe('filters.a');
    expect(called).toBe(false);
  });

  it('rejects symbol keys and non-enumerable properties', () => {
    expect(rejection({ [Symbol('s')]: 1 }).path).toBe('filters');
    expect(rejection(Object.defineProperty({}, 'a', { value: 1, enumerable: false })).path).toBe('filters.a');
  });

  it('turns throwing proxies into a ValidationError', () => {
    const trap = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('trap');
        },
      },
    );
    expect(rejection({ a: trap }).path).toBe('filters.a');
    const revocable = Proxy.revocable({}, {});
    revocable.revoke();
    expect(rejection({ $and: [revocable.proxy] }).path).toBe('filters.$and[0]');
  });

  it(`rejects nesting deeper than ${MAX_FILTER_DEPTH} levels without overflowing the stack`, () => {
    let deep: unknown = { a: 1 };
    for (let i = 0; i < 100_000; i++) deep = { $and: [deep] };
    expect(rejection(deep).message).toMatch(/deeper/);
    let literal: unknown = 1;
    for (let i = 0; i < 100_000; i++) literal = [literal];
    expect(rejection({ a: literal }).message).toMatch(/deeper/);
    let ok: unknown = { a: 1 };
    for (let i = 0; i < 5; i++) ok = { $or: [ok] };
    expect(() => compileFilter(ok)).not.toThrow();
  });

  it('rejects cyclic filters', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.$and = [cyclic];
    expect(rejection(cyclic).message).toMatch(/deeper/);
  });

  it(`rejects filters with more than ${MAX_FILTER_NODES} values, quickly`, () => {
    const started = Date.now();
    expect(rejection({ a: { $in: new Array(2 ** 32 - 1) } }).path).toBe('filters.a.$in');
    expect(rejection({ a: { $in: Array.from({ length: MAX_FILTER_NODES + 1 }, (_, i) => i) } }).path).toBe('filters.a.$in');
    expect(() => compileFilter({ a: { $in: Array.from({ length: 50_000 }, (_, i) => `id-${i}`) } })).not.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('rejects paths longer than the limit', () => {
    expect(rejection({ ['a'.repeat(2000)]: 1 }).code).toBe('VECVAULT_VALIDATION');
  });

  it('never echoes filter or metadata values in messages', () => {
    const secret = 'patient-4711-diagnosis';
    for (const filter of [
      { n: { $gt: { secret } } },
      { n: { $in: secret } },
      { n: { $exists: secret } },
      { n: { $gt: [secret] } },
      { $or: [{ n: secret }, secret] },
    ]) {
      expect(rejection(filter).message).not.toContain(secret);
    }
  });
});
