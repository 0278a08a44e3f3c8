/**
 * The addon's JS surface against its hand-written TypeScript types: the real
 * `NativeIndex` class must have exactly the methods of `NativeIndexHandle`
 * and the module exactly the exports of `NativeAddon` (src/engine/native.ts),
 * no name missing and none extra. The lists compared here are checked against
 * those interfaces at compile time (`npx tsc -p tsconfig.json --noEmit`), so
 * a method added on one side only fails one check or the other.
 */
import { describe, expect, it } from 'vitest';

import { NATIVE_ADDON_EXPORTS, NATIVE_INDEX_METHODS } from '../src/engine/native.js';
import { loadNativeAddon } from '../src/util/native-addon.js';

/** What `actual` has that `expected` lacks and the reverse, sorted: both empty when they name the same keys. */
function difference(actual: readonly PropertyKey[], expected: readonly string[]): { missing: string[]; extra: string[] } {
  const names = actual.map(String);
  return {
    missing: expected.filter((name) => !names.includes(name)).sort(),
    extra: names.filter((name) => !expected.includes(name)).sort(),
  };
}

const NONE = { missing: [], extra: [] };

/** Own keys every sloppy-mode function has, which N-API's class constructors are. */
const FUNCTION_KEYS = ['length', 'name', 'arguments', 'caller', 'prototype'];

function addon(): Record<PropertyKey, unknown> {
  return loadNativeAddon() as Record<PropertyKey, unknown>;
}

function nativeIndexClass(): new (...args: unknown[]) => Record<string, unknown> {
  const NativeIndex = addon().NativeIndex;
  expect(typeof NativeIndex).toBe('function');
  return NativeIndex as new (...args: unknown[]) => Record<string, unknown>;
}

describe('native addon surface', () => {
  it('the method and export lists hold no name twice', () => {
    expect(new Set(NATIVE_INDEX_METHODS).size).toBe(NATIVE_INDEX_METHODS.length);
    expect(new Set(NATIVE_ADDON_EXPORTS).size).toBe(NATIVE_ADDON_EXPORTS.length);
  });

  it("NativeIndex's prototype has exactly the methods of NativeIndexHandle", () => {
    const { prototype } = nativeIndexClass();
    const own = Reflect.ownKeys(prototype).filter((key) => key !== 'constructor');
    expect(difference(own, NATIVE_INDEX_METHODS)).toEqual(NONE);
    for (const name of NATIVE_INDEX_METHODS) {
      const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
      expect(typeof descriptor?.value, name).toBe('function');
    }
  });

  it('NativeIndex has no static members (its TS type is a bare constructor)', () => {
    expect(difference(Reflect.ownKeys(nativeIndexClass()), FUNCTION_KEYS).extra).toEqual([]);
  });

  it('an instance carries no methods of its own: all come from the prototype', () => {
    const NativeIndex = nativeIndexClass();
    const index = new NativeIndex(4, 'l2sq', 'f32', 16, 64, 2);
    try {
      expect(Object.getPrototypeOf(index)).toBe(NativeIndex.prototype);
      expect(Reflect.ownKeys(index)).toEqual([]);
    } finally {
      (index.close as () => void).call(index);
    }
  });

  it('the module has exactly the exports of NativeAddon, each of its declared kind', () => {
    const module = addon();
    expect(difference(Reflect.ownKeys(module), NATIVE_ADDON_EXPORTS)).toEqual(NONE);
    expect(typeof module.NativeIndex).toBe('function');
    expect(typeof module.simdInfo).toBe('function');
    expect(typeof module.crypto).toBe('object');
    expect(module.crypto).not.toBeNull();
    expect(module.usearchVersion).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
