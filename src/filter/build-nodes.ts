/**
 * Node factories: each builds a syntax-tree node together with its compiled
 * test, a closure specialised for the operator so evaluation does no
 * dispatching on filter shape at run time.
 */

import { comparisonCheck, FANS_OUT, isScalar, matchesLiteral, resolveDirect, resolvePath, type Scalar } from './metadata-values.js';
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
  NodeTest,
  NotNode,
  OrNode,
} from './nodes.js';

/**
 * A field test from a per-value check: true if any value the path resolves to
 * passes, or `whenMissing` if it resolves to nothing. Single values (no array
 * mid-path) skip the array allocation.
 */
function fieldTest(segments: readonly string[], matchesValue: (value: unknown) => boolean, whenMissing: boolean): NodeTest {
  return (metadata) => {
    const direct = resolveDirect(metadata, segments);
    if (direct === undefined) return whenMissing;
    if (direct !== FANS_OUT) return matchesValue(direct);
    const values = resolvePath(metadata, segments);
    if (values.length === 0) return whenMissing;
    for (let i = 0; i < values.length; i++) {
      if (matchesValue(values[i])) return true;
    }
    return false;
  };
}

/** The scalar case of `matchesLiteral`, without the generic deep-equality dispatch. */
function equalsScalar(found: unknown, scalar: Scalar): boolean {
  if (found === scalar) return true;
  if (!Array.isArray(found)) return false;
  for (let i = 0; i < found.length; i++) {
    if (found[i] === scalar) return true;
  }
  return false;
}

/** `null` also matches a missing field, as in MongoDB. */
export function equalsNode(path: string, segments: readonly string[], value: Literal): EqualsNode {
  const matchesValue = isScalar(value) ? (found: unknown): boolean => equalsScalar(found, value) : (found: unknown): boolean => matchesLiteral(found, value);
  const test = fieldTest(segments, matchesValue, value === null);
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
  const matchesValue = (value: unknown): boolean => {
    if (isScalar(value)) return scalars.has(value);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const element: unknown = value[i];
        if (isScalar(element) && scalars.has(element)) return true;
      }
    }
    for (const composite of composites) {
      if (matchesLiteral(value, composite)) return true;
    }
    return false;
  };
  return { kind: 'in', path, segments, values, test: fieldTest(segments, matchesValue, scalars.has(null)) };
}

/** True if any value (or any element of an array value) compares true. */
export function compareNode(path: string, segments: readonly string[], operator: ComparisonOperator, value: number | string): CompareNode {
  const satisfies = comparisonCheck(operator, value);
  const matchesValue = (candidate: unknown): boolean => {
    if (satisfies(candidate)) return true;
    if (!Array.isArray(candidate)) return false;
    for (let i = 0; i < candidate.length; i++) {
      if (satisfies(candidate[i])) return true;
    }
    return false;
  };
  return { kind: 'compare', path, segments, operator, value, test: fieldTest(segments, matchesValue, false) };
}

/** A field exists when its path resolves to at least one value (null included). */
export function existsNode(path: string, segments: readonly string[]): ExistsNode {
  return { kind: 'exists', path, segments, test: fieldTest(segments, () => true, false) };
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
