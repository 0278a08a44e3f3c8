/** The filter language: validation, compiled predicates and an in-memory metadata index. */

export { compileFilter, type CompiledFilter } from './compile.js';
export { MetadataIndex, type MetadataIndexOptions } from './metadata-index.js';
export { MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_PATH_LENGTH } from './limits.js';
export type { FilterNode } from './nodes.js';
export type { FieldCondition, FieldOperators, Filter, FilterLiteral, FilterScalar, Metadata, MetadataObject } from './types.js';
