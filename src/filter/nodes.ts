/**
 * The validated syntax tree a filter compiles to. `$ne`, `$nin`, `$nor` and
 * `$exists: false` are rewritten as `not` over the positive forms, so the
 * evaluator and the MetadataIndex planner handle few shapes. Every node carries
 * its own compiled `test`, which lets the planner verify sub-conditions.
 */

/** A literal after validation: arrays are frozen copies, objects null-prototype copies. */
export type Literal = string | number | boolean | null | readonly Literal[] | LiteralObject;
export interface LiteralObject {
  readonly [key: string]: Literal;
}

export type ComparisonOperator = '$gt' | '$gte' | '$lt' | '$lte';

/** Evaluates a node against a record's whole metadata. */
export type NodeTest = (metadata: unknown) => boolean;

interface FieldNodeBase {
  /** The path as written in the filter, e.g. `author.name`. */
  readonly path: string;
  readonly segments: readonly string[];
  readonly test: NodeTest;
}

export interface EqualsNode extends FieldNodeBase {
  readonly kind: 'eq';
  readonly value: Literal;
}

export interface InNode extends FieldNodeBase {
  readonly kind: 'in';
  readonly values: readonly Literal[];
}

export interface CompareNode extends FieldNodeBase {
  readonly kind: 'compare';
  readonly operator: ComparisonOperator;
  readonly value: number | string;
}

export interface ExistsNode extends FieldNodeBase {
  readonly kind: 'exists';
}

export interface AndNode {
  readonly kind: 'and';
  readonly children: readonly FilterNode[];
  readonly test: NodeTest;
}

export interface OrNode {
  readonly kind: 'or';
  readonly children: readonly FilterNode[];
  readonly test: NodeTest;
}

export interface NotNode {
  readonly kind: 'not';
  readonly child: FilterNode;
  readonly test: NodeTest;
}

/** The empty filter `{}`: matches every record. */
export interface MatchAllNode {
  readonly kind: 'all';
  readonly test: NodeTest;
}

export type FieldNode = EqualsNode | InNode | CompareNode | ExistsNode;
export type FilterNode = FieldNode | AndNode | OrNode | NotNode | MatchAllNode;
