/**
 * Node factories: each builds a syntax-tree node together with its compiled
 * test, a closure specialised for the operator so evaluation does no
 * dispatching on filter shape at run time.
 */

import {
  isScalar,
  matchesLiteral,
  resolvePath,
  satisfiesComparison,
  type Scalar,
} from './metadata-values.js';
import type {
  AndNode,
  CompareNode,
  ComparisonOperator,
  EqualsNode,
  ExistsNode,
  FilterNode,
  InNode,
  Literal,
  MatchAllNode,
  NotNode,
  OrNode,
} from './nodes.js';

/** `null` also matches a missing field, as in MongoDB. */
export function equalsNode(path: string, segments: readonly string[], value: Literal): EqualsNode {
  const test = (metadata: unknown): boolean => {
    const values = resolvePath(metadata, segments);
    if (values.length === 0) return value === null;
    for (let i = 0; i < values.length; i++) {
      if (matchesLiteral(values[i], value)) return true;
    }
    return false;
  };
  return { kind: 'eq', path, segments, value, test };
}

export function inNode(path: string, segments: readonly string[], values: readonly Literal[]): InNode {
  // Scalars go in a Set (SameValueZero equals === here: filters hold no NaN).
  const scalars = new Set<Scalar>();
  const composites: Literal[] = [];
  for (const value of values) {
    if (isScalar(value)) scalars.add(value);
    else composites.push(value);
  }
  const matchesMissing = scalars.has(null);
  const test = (metadata: unknown): boolean => {
    const found = resolvePath(metadata, segments);
    if (found.length === 0) return matchesMissing;
    for (let f = 0; f < found.length; f++) {
      const value = found[f];
      if (isScalar(value)) {
        if (scalars.has(value)) return true;
        continue;
      }
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const element: unknown = value[i];
          if (isScalar(element) && scalars.has(element)) return true;
        }
      }
      for (const composite of composites) {
        if (matchesLiteral(value, composite)) return true;
      }
    }
    return false;
  };
  return { kind: 'in', path, segments, values, test };
}

/** True if any value (or any element of an array value) compares true. */
export function compareNode(
  path: string,
  segments: readonly string[],
  operator: ComparisonOperator,
  value: number | string,
): CompareNode {
  const test = (metadata: unknown): boolean => {
    const found = resolvePath(metadata, segments);
    for (let f = 0; f < found.length; f++) {
      const candidate = found[f];
      if (satisfiesComparison(candidate, operator, value)) return true;
      if (Array.isArray(candidate)) {
        for (let i = 0; i < candidate.length; i++) {
          if (satisfiesComparison(candidate[i], operator, value)) return true;
        }
      }
    }
    return false;
  };
  return { kind: 'compare', path, segments, operator, value, test };
}

/** A field exists when its path resolves to at least one value (null included). */
export function existsNode(path: string, segments: readonly string[]): ExistsNode {
  const test = (metadata: unknown): boolean => resolvePath(metadata, segments).length > 0;
  return { kind: 'exists', path, segments, test };
}

export function andNode(children: readonly FilterNode[]): AndNode {
  const tests = children.map((child) => child.test);
  const test = (metadata: unknown): boolean => {
    for (let i = 0; i < tests.length; i++) {
      if (!tests[i]!(metadata)) return false;
    }
    return true;
  };
  return { kind: 'and', children, test };
}

export function orNode(children: readonly FilterNode[]): OrNode {
  const tests = children.map((child) => child.test);
  const test = (metadata: unknown): boolean => {
    for (let i = 0; i < tests.length; i++) {
      if (tests[i]!(metadata)) return true;
    }
    return false;
  };
  return { kind: 'or', children, test };
}

export function notNode(child: FilterNode): NotNode {
  const childTest = child.test;
  return { kind: 'not', child, test: (metadata) => !childTest(metadata) };
}

export function matchAllNode(): MatchAllNode {
  return { kind: 'all', test: () => true };
}

/** One child stays itself; several become an AND; none means "everything". */
export function allOf(children: readonly FilterNode[]): FilterNode {
  if (children.length === 0) return matchAllNode();
  if (children.length === 1) return children[0]!;
  return andNode(children);
}
