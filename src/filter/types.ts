/**
 * Public types of the filter language. Metadata is JSON-like: what msgpack
 * round-trips for a plain object of strings, numbers, booleans and nulls.
 */

/** A JSON-like value: string, finite number, boolean, null, array or plain object. */
export type Metadata = string | number | boolean | null | Metadata[] | { [key: string]: Metadata };

/** Metadata of one record: filters address its fields by (dot) path. */
export type MetadataObject = { [key: string]: Metadata };

export type FilterScalar = string | number | boolean | null;

/** A value compared by deep equality. Objects must not contain `$` keys. */
export type FilterLiteral = FilterScalar | readonly FilterLiteral[] | { readonly [key: string]: FilterLiteral };

/** Operators that apply to the value(s) found at one field path. */
export interface FieldOperators {
  $eq?: FilterLiteral;
  $ne?: FilterLiteral;
  $gt?: number | string;
  $gte?: number | string;
  $lt?: number | string;
  $lte?: number | string;
  $in?: readonly FilterLiteral[];
  $nin?: readonly FilterLiteral[];
  $exists?: boolean;
  $not?: FieldOperators;
}

/** What a field path maps to: a bare value (equality) or an operator object. */
export type FieldCondition = FilterLiteral | FieldOperators;

/**
 * A filter document: field paths (`'author.name'`) mapped to conditions
 * (`FieldCondition`), combined with logical operators. Several keys at one
 * level are ANDed. Field values are typed `unknown` so that filters built at
 * run time (`Record<string, unknown>`) type-check: `compileFilter` validates
 * every value anyway and names the offending path.
 */
export interface Filter {
  $and?: readonly Filter[];
  $or?: readonly Filter[];
  $nor?: readonly Filter[];
  $not?: Filter;
  [path: string]: unknown;
}
