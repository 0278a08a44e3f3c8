/**
 * Property tests: the compiled predicate and MetadataIndex.match must agree
 * with a deliberately naive reference evaluator, written here from the
 * documented semantics (src/filter/README.md) without sharing any code.
 * Value domains are tiny so that filters match some records and not others.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../src/errors.js';
import { compileFilter, MetadataIndex } from '../src/filter/index.js';

// ---------------------------------------------------------------- reference

function isPlain(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function referenceResolve(root: unknown, path: string): unknown[] {
  if (!isPlain(root)) return [];
  let values: unknown[] = [root];
  for (const segment of path.split('.')) {
    const next: unknown[] = [];
    const isIndex = /^(0|[1-9][0-9]*)$/.test(segment);
    for (const value of values) {
      if (isPlain(value)) {
        if (Object.hasOwn(value, segment)) next.push(value[segment]);
      } else if (Array.isArray(value)) {
        if (isIndex && Number(segment) < value.length) next.push(value[Number(segment)]);
        for (const element of value) {
          if (isPlain(element) && Object.hasOwn(element, segment)) next.push(element[segment]);
        }
      }
    }
    values = next.filter((value) => value !== undefined);
  }
  return values;
}

function referenceEqual(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => referenceEqual(x, b[i]));
  }
  if (isPlain(a) || isPlain(b)) {
    if (!isPlain(a) || !isPlain(b)) return false;
    const keys = Object.keys(b);
    return Object.keys(a).length === keys.length && keys.every((k) => Object.hasOwn(a, k) && referenceEqual(a[k], b[k]));
  }
  return a === b;
}

function referenceEq(values: unknown[], literal: unknown): boolean {
  if (values.length === 0) return literal === null;
  return values.some((v) => referenceEqual(v, literal) || (Array.isArray(v) && v.some((e) => referenceEqual(e, literal))));
}

function referenceCompare(values: unknown[], operator: string, operand: number | string): boolean {
  const test = (v: unknown): boolean => {
    if (typeof v !== typeof operand) return false;
    const x = v as number | string;
    if (operator === '$gt') return x > operand;
    if (operator === '$gte') return x >= operand;
    if (operator === '$lt') return x < operand;
    return x <= operand;
  };
  return values.some((v) => test(v) || (Array.isArray(v) && v.some(test)));
}

function referenceOperator(values: unknown[], operator: string, operand: any): boolean {
  switch (operator) {
    case '$eq':
      return referenceEq(values, operand);
    case '$ne':
      return !referenceEq(values, operand);
    case '$in':
      return operand.some((x: unknown) => referenceEq(values, x));
    case '$nin':
      return !operand.some((x: unknown) => referenceEq(values, x));
    case '$exists':
      return values.length > 0 === operand;
    case '$not':
      return !Object.entries(operand).every(([op, x]) => referenceOperator(values, op, x));
    default:
      return referenceCompare(values, operator, operand);
  }
}

function referenceMatches(filter: Record<string, any>, metadata: unknown): boolean {
  return Object.entries(filter).every(([key, condition]) => {
    if (key === '$and') return condition.every((f: any) => referenceMatches(f, metadata));
    if (key === '$or') return condition.some((f: any) => referenceMatches(f, metadata));
    if (key === '$nor') return !condition.some((f: any) => referenceMatches(f, metadata));
    if (key === '$not') return !referenceMatches(condition, metadata);
    const values = referenceResolve(metadata, key);
    if (isPlain(condition) && Object.keys(condition).some((k) => k.startsWith('$'))) {
      return Object.entries(condition).every(([op, operand]) => referenceOperator(values, op, operand));
    }
    return referenceEq(values, condition);
  });
}

// ---------------------------------------------------------------- generators

const scalar = fc.oneof(
  { arbitrary: fc.constantFrom<unknown>(0, 1, 'a', 'b', true, null), weight: 4 },
  { arbitrary: fc.constantFrom<unknown>(2, 1.5, -0, '1', '', false), weight: 1 },
);
const fieldKey = fc.constantFrom('a', 'b', 'c');
const nestedKey = fc.constantFrom('a', 'b', 'c', '0');

const { metadataValue } = fc.letrec<{ metadataValue: unknown }>((tie) => ({
  metadataValue: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { arbitrary: scalar, weight: 12 },
    { arbitrary: fc.constant(undefined), weight: 1 },
    { arbitrary: fc.array(tie('metadataValue'), { maxLength: 3 }), weight: 3 },
    { arbitrary: fc.dictionary(nestedKey, tie('metadataValue'), { maxKeys: 3 }), weight: 3 },
  ),
}));

const metadataRecord = fc.oneof(
  { arbitrary: fc.dictionary(fieldKey, metadataValue, { minKeys: 1, maxKeys: 3 }), weight: 12 },
  { arbitrary: fc.constantFrom<unknown>(undefined, null, 7, 'x', [1]), weight: 1 },
);

const path = fc.oneof(
  { arbitrary: fc.constantFrom('a', 'b', 'c'), weight: 3 },
  { arbitrary: fc.constantFrom('a.b', 'a.c', 'b.a', 'a.0', 'a.1', 'c.a.b', '0', 'b.0.a', 'a.b.c', 'a.0.b'), weight: 2 },
);

const literal: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: scalar, weight: 14 },
  { arbitrary: fc.array(scalar, { maxLength: 2 }), weight: 1 },
  { arbitrary: fc.dictionary(fc.constantFrom('a', 'b'), scalar, { maxKeys: 2 }), weight: 1 },
);
const comparable = fc.constantFrom<number | string>(0, 1, 2, 1.5, -1, 'a', 'b', 'B', '1', '');

const baseOperator: fc.Arbitrary<[string, unknown]> = fc.oneof(
  fc.tuple(fc.constantFrom('$eq', '$ne'), literal),
  fc.tuple(fc.constantFrom('$gt', '$gte', '$lt', '$lte'), comparable),
  fc.tuple(fc.constantFrom('$in', '$nin'), fc.array(literal, { maxLength: 3 })),
  fc.tuple(fc.constant('$exists'), fc.boolean()),
);
const operatorObject = (entry: fc.Arbitrary<[string, unknown]>) =>
  fc.uniqueArray(entry, { minLength: 1, maxLength: 2, selector: ([op]) => op }).map((entries) => Object.fromEntries(entries));
const anyOperator: fc.Arbitrary<[string, unknown]> = fc.oneof(
  { arbitrary: baseOperator, weight: 6 },
  { arbitrary: fc.tuple(fc.constant('$not'), operatorObject(baseOperator)), weight: 1 },
);
const condition = fc.oneof(literal, operatorObject(anyOperator));

const { filter } = fc.letrec<{ filter: Record<string, unknown> }>((tie) => ({
  filter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { arbitrary: fc.dictionary(path, condition, { minKeys: 1, maxKeys: 2 }), weight: 40 },
    { arbitrary: fc.constant({}), weight: 1 },
    {
      arbitrary: fc
        .tuple(fc.constantFrom('$and', '$or', '$nor'), fc.array(tie('filter'), { minLength: 1, maxLength: 3 }))
        .map(([op, list]) => ({ [op]: list })),
      weight: 10,
    },
    { arbitrary: tie('filter').map((inner) => ({ $not: inner })), weight: 5 },
    {
      arbitrary: fc
        .tuple(fc.dictionary(path, condition, { minKeys: 1, maxKeys: 2 }), tie('filter'))
        .map(([fields, inner]) => ({ ...fields, $or: [inner, { [Object.keys(fields)[0]!]: { $exists: true } }] })),
      weight: 5,
    },
  ),
}));

// ---------------------------------------------------------------- properties

const RUNS = 10_000;

describe('compiled filters and MetadataIndex agree with the reference evaluator', () => {
  it(`on ${RUNS} random filters × random records`, () => {
    let informative = 0;
    fc.assert(
      fc.property(filter, fc.array(metadataRecord, { minLength: 8, maxLength: 16 }), (raw, records) => {
        const compiled = compileFilter(raw);
        const index = new MetadataIndex();
        const eager = new MetadataIndex({ andScanShare: 1 }); // always plans from indexes when it can
        const expected = new Set<number>();
        let predicateAgrees = true;
        records.forEach((metadata, key) => {
          const want = referenceMatches(raw, metadata);
          predicateAgrees &&= compiled(metadata) === want;
          if (want) expected.add(key);
          index.set(key, metadata);
          eager.set(key, metadata);
        });
        if (expected.size > 0 && expected.size < records.length) informative++;
        // Plain booleans rather than expect(): this loop runs 10,000 times.
        const same = (matched: ReadonlySet<number>): boolean => matched.size === expected.size && [...expected].every((key) => matched.has(key));
        return predicateAgrees && same(index.match(compiled)) && same(eager.match(compiled));
      }),
      { numRuns: RUNS },
    );
    // The domains are small enough that filters split record sets, not only all-or-nothing.
    console.info(`filter-property: ${informative} of ${RUNS} filters matched some but not all records`);
    expect(informative).toBeGreaterThan(RUNS * 0.15);
  });

  it('MetadataIndex stays exact through upserts, overwrites and deletes (with its own key set, and with one the caller keeps)', () => {
    const operation = fc.oneof(
      fc.tuple(fc.constant('set' as const), fc.nat(9), fc.oneof(metadataRecord, fc.constant(undefined))),
      fc.tuple(fc.constant('delete' as const), fc.nat(9), fc.constant(undefined)),
      fc.tuple(fc.constant('match' as const), fc.nat(3), fc.constant(undefined)),
    );
    fc.assert(
      fc.property(fc.array(filter, { minLength: 4, maxLength: 4 }), fc.array(operation, { minLength: 10, maxLength: 50 }), (raws, ops) => {
        const filters = raws.map((raw) => ({ raw, compiled: compileFilter(raw) }));
        // Extreme tuning so that few writes already exercise planning, side sets and rebuilds (or never rebuild).
        // The live-record table's way: the caller keeps the key set, records without metadata are not stored.
        const allKeys = new Set<number>();
        const indexes = [
          new MetadataIndex(),
          new MetadataIndex({ andScanShare: 1, rangeRebuildBacklog: 3 }),
          new MetadataIndex({ andScanShare: 1, rangeRebuildBacklog: Number.MAX_SAFE_INTEGER }),
          new MetadataIndex({ allKeys }),
          new MetadataIndex({ allKeys, andScanShare: 1, rangeRebuildBacklog: 3 }),
        ];
        const model = new Map<number, unknown>();
        const check = (which: number): void => {
          const { raw, compiled } = filters[which]!;
          const expected = [...model].filter(([, m]) => referenceMatches(raw, m)).map(([k]) => k);
          for (const index of indexes) {
            expect([...index.match(compiled)].sort((a, b) => a - b)).toEqual(expected.sort((a, b) => a - b));
          }
        };
        for (const [kind, key, metadata] of ops) {
          if (kind === 'set') {
            allKeys.add(key); // before set(), as MetadataIndexOptions.allKeys says
            for (const index of indexes) index.set(key, metadata);
            model.set(key, metadata);
          } else if (kind === 'delete') {
            const present = model.delete(key);
            for (const index of indexes) expect(index.delete(key)).toBe(present);
            allKeys.delete(key); // after delete()
          } else check(key);
          for (const index of indexes) expect(index.size).toBe(model.size);
        }
        filters.forEach((_, which) => check(which));
      }),
      { numRuns: 1_000 },
    );
  });
});

// ---------------------------------------------------------------- fuzzing

/** Keys that are valid, invalid or hostile, so the fuzzer reaches every branch of validation. */
const fuzzKey = fc.oneof(
  path,
  fc.constantFrom(
    '$and',
    '$or',
    '$nor',
    '$not',
    '$eq',
    '$ne',
    '$gt',
    '$gte',
    '$lt',
    '$lte',
    '$in',
    '$nin',
    '$exists',
    '$regex',
    '$where',
    '$',
    '',
    '.',
    'a..b',
    'a.',
    '__proto__',
    'constructor',
    'prototype',
    'a.__proto__',
    'toString',
    'hasOwnProperty',
    'valueOf',
    'length',
  ),
  fc.string({ maxLength: 6 }),
);

/** Every kind of value JavaScript can hand us that JSON cannot: filters and metadata must survive them. */
const EXOTIC_VALUES = {
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
} as const;

const { fuzzValue } = fc.letrec<{ fuzzValue: unknown }>((tie) => ({
  fuzzValue: fc.oneof(
    { depthSize: 'small' },
    fc.anything({ ...EXOTIC_VALUES, maxDepth: 2, withUnicodeString: true }),
    scalar,
    fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, undefined),
    fc.array(tie('fuzzValue'), { maxLength: 3 }),
    fc.dictionary(fuzzKey, tie('fuzzValue'), { maxKeys: 3, noNullPrototype: false }),
  ),
}));

const FUZZ_RUNS = 5_000;

describe('fuzzing compileFilter', () => {
  it('either compiles or throws ValidationError; compiled filters never throw and agree with the reference', () => {
    let compiled = 0;
    fc.assert(
      fc.property(fuzzValue, fc.array(metadataRecord, { maxLength: 4 }), fc.anything(), (raw, records, weird) => {
        let predicate;
        try {
          predicate = compileFilter(raw);
        } catch (error) {
          expect(error).toBeInstanceOf(ValidationError);
          expect((error as ValidationError).code).toBe('VECVAULT_VALIDATION');
          expect((error as ValidationError).path).toMatch(/^filters/);
          return;
        }
        compiled++;
        expect(typeof predicate(weird)).toBe('boolean');
        return records.every((metadata) => predicate(metadata) === referenceMatches(raw as Record<string, unknown>, metadata));
      }),
      { numRuns: FUZZ_RUNS },
    );
    console.info(`filter-fuzz: ${compiled} of ${FUZZ_RUNS} fuzzed filters were valid`);
    expect(compiled).toBeGreaterThan(FUZZ_RUNS / 100);
  });

  it('survives arbitrary values as filters and as metadata', () => {
    const anything = fc.anything(EXOTIC_VALUES);
    fc.assert(
      fc.property(anything, anything, (raw, metadata) => {
        try {
          const predicate = compileFilter(raw);
          expect(typeof predicate(metadata)).toBe('boolean');
        } catch (error) {
          expect(error).toBeInstanceOf(ValidationError);
        }
      }),
      { numRuns: 3_000 },
    );
  });
});
