/**
 * Reading metadata during evaluation. Metadata is untrusted data: only own
 * properties of plain objects and arrays are ever read, nothing here recurses
 * on metadata beyond the depth of a filter literal, and path resolution is
 * bounded, so no record can make evaluation hang or reach a prototype.
 */

import { MAX_RESOLVE_WORK, MAX_RESOLVED_VALUES } from './limits.js';
import type { ComparisonOperator, Literal, LiteralObject } from './nodes.js';

export type Scalar = string | number | boolean | null;

export function isScalar(value: unknown): value is Scalar {
  return value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

/** Objects with Object.prototype or no prototype; Buffers, Dates, Maps, class instances are opaque. */
export function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** `'0'`, `'12'` → array index; anything else (`'01'`, `'-1'`, `'x'`) → -1. */
export function arrayIndexOf(segment: string): number {
  const length = segment.length;
  if (length === 0 || length > 9) return -1;
  if (length > 1 && segment.charCodeAt(0) === 48) return -1;
  let index = 0;
  for (let i = 0; i < length; i++) {
    const digit = segment.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    index = index * 10 + digit;
  }
  return index;
}

/** Returned by `resolveDirect` when the path crosses an array and may reach several values. */
export const FANS_OUT: unique symbol = Symbol('fans out');

/**
 * The common case without allocating: follows a chain of plain objects and
 * returns the value found, `undefined` when the path is missing, or FANS_OUT
 * when an array sits in the middle of the path (use `resolvePath` then).
 */
export function resolveDirect(root: unknown, segments: readonly string[]): unknown {
  if (!isPlainRecord(root)) return undefined;
  let current: unknown = root;
  for (let depth = 0; depth < segments.length; depth++) {
    if (isPlainRecord(current)) {
      const segment = segments[depth]!;
      if (!Object.hasOwn(current, segment)) return undefined;
      current = current[segment];
    } else return Array.isArray(current) ? FANS_OUT : undefined;
  }
  return current;
}

/**
 * The values a dot path reaches in `root`, MongoDB-style: a segment reads an
 * own property of a plain object; on an array it reads the element at that
 * index (if the segment is a number) and the property of every plain-object
 * element. `undefined` counts as absent. An empty result means "missing".
 */
export function resolvePath(root: unknown, segments: readonly string[]): unknown[] {
  const direct = resolveDirect(root, segments);
  if (direct === undefined) return [];
  if (direct !== FANS_OUT) return [direct];
  const work = { remaining: MAX_RESOLVE_WORK };
  let values: unknown[] = [root];
  for (let depth = 0; depth < segments.length && values.length > 0; depth++) {
    values = stepInto(values, segments[depth]!, work);
  }
  return values;
}

function stepInto(values: readonly unknown[], segment: string, work: { remaining: number }): unknown[] {
  const found: unknown[] = [];
  const index = arrayIndexOf(segment);
  const push = (value: unknown): boolean => {
    if (value !== undefined) found.push(value);
    return found.length < MAX_RESOLVED_VALUES;
  };
  for (let v = 0; v < values.length; v++) {
    const value = values[v];
    if (isPlainRecord(value)) {
      if (Object.hasOwn(value, segment) && !push(value[segment])) break;
    } else if (Array.isArray(value)) {
      if (index !== -1 && index < value.length && Object.hasOwn(value, index) && !push(value[index])) break;
      work.remaining -= value.length;
      if (work.remaining < 0) break;
      for (let i = 0; i < value.length; i++) {
        const element: unknown = value[i];
        if (isPlainRecord(element) && Object.hasOwn(element, segment) && !push(element[segment])) return found;
      }
    }
  }
  return found;
}

/**
 * Exact deep equality of a metadata value with a filter literal: same type,
 * arrays equal element-wise in order, objects with the same own keys (in any
 * order) and equal values. Recursion follows the literal, so it is bounded.
 */
export function equalsLiteral(value: unknown, literal: Literal): boolean {
  if (literal === null || typeof literal !== 'object') return value === literal;
  if (Array.isArray(literal)) {
    if (!Array.isArray(value) || value.length !== literal.length) return false;
    for (let i = 0; i < literal.length; i++) {
      if (!equalsLiteral(value[i], literal[i] as Literal)) return false;
    }
    return true;
  }
  if (!isPlainRecord(value)) return false;
  const keys = Object.keys(literal);
  if (Object.keys(value).length !== keys.length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(value, key) || !equalsLiteral(value[key], (literal as LiteralObject)[key]!)) return false;
  }
  return true;
}

/** A value matches a literal if it equals it, or (when an array) one of its elements does. */
export function matchesLiteral(value: unknown, literal: Literal): boolean {
  if (equalsLiteral(value, literal)) return true;
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) {
    if (equalsLiteral(value[i], literal)) return true;
  }
  return false;
}

/**
 * Same-type ordering only: numbers with numbers, strings with strings (by
 * UTF-16 code unit). Returns a check specialised for one operator and operand.
 */
export function comparisonCheck(operator: ComparisonOperator, operand: number | string): (value: unknown) => boolean {
  const type = typeof operand;
  switch (operator) {
    case '$gt':
      return (value) => typeof value === type && (value as number | string) > operand;
    case '$gte':
      return (value) => typeof value === type && (value as number | string) >= operand;
    case '$lt':
      return (value) => typeof value === type && (value as number | string) < operand;
    case '$lte':
      return (value) => typeof value === type && (value as number | string) <= operand;
  }
}
