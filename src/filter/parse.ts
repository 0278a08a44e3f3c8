/**
 * Validates a whole filter up front and turns it into a syntax tree. Any
 * problem is a ValidationError whose `path` names where it is (for example
 * `filters.$and[1].tags.$in`); messages name types, never values.
 */

import { allOf, compareNode, equalsNode, existsNode, inNode, notNode, orNode } from './build-nodes.js';
import { FORBIDDEN_KEYS, MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_PATH_LENGTH } from './limits.js';
import type { ComparisonOperator, FilterNode, Literal, LiteralObject } from './nodes.js';
import { describeType, invalid, isArrayInput, isPlainObjectInput, readElements, readEntries } from './read-input.js';

export const ROOT_PATH = 'filters';

export interface ParsedFilter {
  readonly root: FilterNode;
  /** Every field path the filter reads, as written (`author.name`). */
  readonly paths: ReadonlySet<string>;
}

const COMPARISONS: ReadonlySet<string> = new Set(['$gt', '$gte', '$lt', '$lte']);
const LOGICAL_LISTS: ReadonlySet<string> = new Set(['$and', '$or', '$nor']);
const FIELD_OPERATORS = '$eq $ne $gt $gte $lt $lte $in $nin $exists $not';

class Parser {
  private nodes = 0;
  readonly paths = new Set<string>();

  /** Counts one more node against the size budget. */
  visit(path: string): void {
    this.nodes++;
    if (this.nodes > MAX_FILTER_NODES) {
      throw invalid(path, `the filter is too large (more than ${MAX_FILTER_NODES} values).`);
    }
  }

  enter(path: string, depth: number): void {
    if (depth > MAX_FILTER_DEPTH) throw invalid(path, `the filter is nested deeper than ${MAX_FILTER_DEPTH} levels.`);
    this.visit(path);
  }

  elements(value: readonly unknown[], path: string): unknown[] {
    const budget = MAX_FILTER_NODES - this.nodes;
    const tooLarge = (): never => {
      throw invalid(path, `the filter is too large (more than ${MAX_FILTER_NODES} values).`);
    };
    // Only the length is checked here: each element is counted when visited.
    return readElements(value, path, budget, tooLarge);
  }

  /** A filter document: field paths and logical operators, ANDed together. */
  document(input: unknown, path: string, depth: number): FilterNode {
    this.enter(path, depth);
    if (!isPlainObjectInput(input, path)) {
      throw invalid(path, `expected a filter object, got ${describeType(input)}.`);
    }
    const children: FilterNode[] = [];
    for (const [key, value] of readEntries(input, path)) {
      const keyPath = `${path}.${key}`;
      if (key.startsWith('$')) children.push(this.logical(key, value, keyPath, depth));
      else children.push(this.field(key, value, keyPath, depth + 1));
    }
    return allOf(children);
  }

  private logical(operator: string, value: unknown, path: string, depth: number): FilterNode {
    if (operator === '$not') return notNode(this.document(value, path, depth + 1));
    if (!LOGICAL_LISTS.has(operator)) {
      throw invalid(path, `unknown operator ${operator}; at this level use $and, $or, $nor, $not or a field name.`);
    }
    this.enter(path, depth + 1);
    if (!isArrayInput(value, path)) {
      throw invalid(path, `${operator} expects a non-empty array of filter objects, got ${describeType(value)}.`);
    }
    const elements = this.elements(value, path);
    if (elements.length === 0) throw invalid(path, `${operator} expects a non-empty array of filter objects.`);
    const children = elements.map((element, i) => this.document(element, `${path}[${i}]`, depth + 2));
    if (operator === '$and') return allOf(children);
    const either = children.length === 1 ? children[0]! : orNode(children);
    return operator === '$or' ? either : notNode(either);
  }

  private field(key: string, condition: unknown, path: string, depth: number): FilterNode {
    const segments = splitPath(key, path);
    this.paths.add(key);
    if (isPlainObjectInput(condition, path)) {
      const entries = readEntries(condition, path);
      if (entries.some(([name]) => name.startsWith('$'))) {
        this.enter(path, depth);
        return this.operators(key, segments, entries, path, depth);
      }
    }
    return equalsNode(key, segments, this.literal(condition, path, depth));
  }

  /** An operator object under a field: every key must be an operator; they are ANDed. */
  private operators(key: string, segments: readonly string[], entries: ReadonlyArray<[string, unknown]>, path: string, depth: number): FilterNode {
    const children: FilterNode[] = [];
    for (const [operator, operand] of entries) {
      const operatorPath = `${path}.${operator}`;
      if (!operator.startsWith('$')) {
        throw invalid(operatorPath, 'field names and operators cannot be mixed in one object; use a dot path.');
      }
      children.push(this.operator(key, segments, operator, operand, operatorPath, depth + 1));
    }
    return allOf(children);
  }

  private operator(key: string, segments: readonly string[], operator: string, operand: unknown, path: string, depth: number): FilterNode {
    switch (operator) {
      case '$eq':
        return equalsNode(key, segments, this.literal(operand, path, depth));
      case '$ne':
        return notNode(equalsNode(key, segments, this.literal(operand, path, depth)));
      case '$in':
      case '$nin': {
        const values = this.literalList(operator, operand, path, depth);
        const node = inNode(key, segments, values);
        return operator === '$in' ? node : notNode(node);
      }
      case '$exists':
        this.visit(path);
        if (typeof operand !== 'boolean') throw invalid(path, `$exists expects true or false, got ${describeType(operand)}.`);
        return operand ? existsNode(key, segments) : notNode(existsNode(key, segments));
      case '$not':
        return notNode(this.negatedOperators(key, segments, operand, path, depth));
      default:
        if (COMPARISONS.has(operator)) {
          this.visit(path);
          return compareNode(key, segments, operator as ComparisonOperator, comparable(operator, operand, path));
        }
        if (LOGICAL_LISTS.has(operator)) {
          throw invalid(path, `${operator} is only allowed at the top level of a filter, not under a field.`);
        }
        throw invalid(path, `unknown operator ${operator}; field operators are ${FIELD_OPERATORS}.`);
    }
  }

  private negatedOperators(key: string, segments: readonly string[], operand: unknown, path: string, depth: number): FilterNode {
    this.enter(path, depth);
    if (!isPlainObjectInput(operand, path)) {
      throw invalid(path, `$not expects an object of operators such as { $gt: 5 }, got ${describeType(operand)}.`);
    }
    const entries = readEntries(operand, path);
    if (entries.length === 0) throw invalid(path, '$not expects at least one operator.');
    return this.operators(key, segments, entries, path, depth);
  }

  private literalList(operator: string, operand: unknown, path: string, depth: number): Literal[] {
    this.enter(path, depth);
    if (!isArrayInput(operand, path)) throw invalid(path, `${operator} expects an array of values, got ${describeType(operand)}.`);
    return this.elements(operand, path).map((element, i) => this.literal(element, `${path}[${i}]`, depth + 1));
  }

  /** A value compared by equality: copied, so later changes to the caller's object do not leak in. */
  literal(value: unknown, path: string, depth: number): Literal {
    this.enter(path, depth);
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw invalid(path, 'numbers must be finite (no NaN or Infinity).');
      return value;
    }
    if (isArrayInput(value, path)) {
      const elements = this.elements(value, path);
      return Object.freeze(elements.map((element, i) => this.literal(element, `${path}[${i}]`, depth + 1)));
    }
    if (isPlainObjectInput(value, path)) {
      const copy: Record<string, Literal> = Object.create(null) as Record<string, Literal>;
      for (const [key, inner] of readEntries(value, path)) {
        const keyPath = `${path}.${key}`;
        if (FORBIDDEN_KEYS.has(key)) throw invalid(keyPath, `the key ${key} is not allowed.`);
        if (key.startsWith('$')) {
          throw invalid(keyPath, 'operators are not allowed inside a value; to match a nested field use a dot path.');
        }
        copy[key] = this.literal(inner, keyPath, depth + 1);
      }
      return Object.freeze(copy) as LiteralObject;
    }
    if (value === undefined) throw invalid(path, 'undefined is not a filter value; use null or $exists.');
    throw invalid(path, `unsupported value: ${describeType(value)}; use strings, finite numbers, booleans, null, arrays or plain objects.`);
  }
}

/** `author.name` → ['author', 'name'], rejecting empty, `$`-prefixed and prototype segments. */
function splitPath(key: string, path: string): string[] {
  if (key.length > MAX_PATH_LENGTH) throw invalid(path, `field paths are limited to ${MAX_PATH_LENGTH} characters.`);
  const segments = key.split('.');
  for (const segment of segments) {
    if (segment === '') throw invalid(path, 'field paths must not have empty segments (leading, trailing or double dots).');
    if (FORBIDDEN_KEYS.has(segment)) throw invalid(path, `the path segment ${segment} is not allowed.`);
    if (segment.startsWith('$')) throw invalid(path, 'path segments must not start with $.');
  }
  return segments;
}

function comparable(operator: string, operand: unknown, path: string): number | string {
  if (typeof operand === 'string') return operand;
  if (typeof operand === 'number') {
    if (!Number.isFinite(operand)) throw invalid(path, 'numbers must be finite (no NaN or Infinity).');
    return operand;
  }
  throw invalid(path, `${operator} expects a number or a string, got ${describeType(operand)}.`);
}

export function parseFilter(input: unknown): ParsedFilter {
  const parser = new Parser();
  const root = parser.document(input, ROOT_PATH, 0);
  return { root, paths: parser.paths };
}
