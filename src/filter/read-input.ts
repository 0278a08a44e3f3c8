/**
 * Reading the caller's filter object. The filter is untrusted input: it may be
 * a Proxy, hold getters, symbols, class instances or cycles. Every access goes
 * through these helpers, which read own data properties only and turn any
 * exception a hostile object throws into a ValidationError.
 */

import { ValidationError, VecvaultError } from '../errors.js';

export function invalid(path: string, problem: string): ValidationError {
  return new ValidationError(`Invalid filter at ${path}: ${problem}`, { path });
}

function guarded<T>(path: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof VecvaultError) throw error;
    throw new ValidationError(`Invalid filter at ${path}: the value could not be read; pass plain data.`, {
      path,
      cause: error,
    });
  }
}

/** Describes a value's type for error messages; never includes the value itself. */
export function describeType(value: unknown): string {
  return guarded('filters', () => {
    if (value === null) return 'null';
    if (Array.isArray(value)) return 'an array';
    if (typeof value === 'number') return Number.isFinite(value) ? 'a number' : 'a non-finite number';
    if (typeof value === 'object') return isPlainObjectInput(value, 'filters') ? 'an object' : 'a non-plain object';
    return `a ${typeof value}`;
  });
}

export function isArrayInput(value: unknown, path: string): value is readonly unknown[] {
  return guarded(path, () => Array.isArray(value) && Object.getPrototypeOf(value) === Array.prototype);
}

/** A plain object: Object.prototype or null prototype (no Date, Map, class instance, array). */
export function isPlainObjectInput(value: unknown, path: string): value is object {
  return guarded(path, () => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
    const proto: unknown = Object.getPrototypeOf(value);
    return proto === Object.prototype || proto === null;
  });
}

/** Own enumerable string-keyed data properties, in insertion order. */
export function readEntries(value: object, path: string): Array<[string, unknown]> {
  return guarded(path, () => {
    const entries: Array<[string, unknown]> = [];
    for (const key of Reflect.ownKeys(value)) {
      if (typeof key === 'symbol') throw invalid(path, 'symbol keys are not allowed.');
      const descriptor = Object.getOwnPropertyDescriptor(value, key);
      if (descriptor === undefined) continue;
      if (!('value' in descriptor)) throw invalid(`${path}.${key}`, 'getters and setters are not allowed; pass plain data.');
      if (!descriptor.enumerable) throw invalid(`${path}.${key}`, 'non-enumerable properties are not allowed.');
      entries.push([key, descriptor.value]);
    }
    return entries;
  });
}

/** Array elements as own data properties; holes and accessors are rejected. */
export function readElements(value: readonly unknown[], path: string, maxLength: number, tooLarge: () => never): unknown[] {
  return guarded(path, () => {
    const length = value.length;
    if (length > maxLength) tooLarge();
    const elements: unknown[] = [];
    for (let i = 0; i < length; i++) {
      const descriptor = Object.getOwnPropertyDescriptor(value, i);
      if (descriptor === undefined) throw invalid(`${path}[${i}]`, 'sparse arrays are not allowed.');
      if (!('value' in descriptor)) throw invalid(`${path}[${i}]`, 'getters and setters are not allowed; pass plain data.');
      elements.push(descriptor.value);
    }
    return elements;
  });
}
