/** The one comparator, mapping guard and JSON pointer of the code base (crds/values.ts, crds/json-pointer.ts). */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { escapePointerToken, pointerOf } from '../../crds/json-pointer.js';
import { byText, compareText, isRecord } from '../../crds/values.js';

describe('compareText', () => {
  test.each([
    ['a', 'b', -1],
    ['b', 'a', 1],
    ['a', 'a', 0],
    ['B', 'a', -1],
    ['a-b', 'a0', -1],
    ['a', 'ab', -1],
    ['é', 'z', 1],
  ])('%j vs %j → %d', (a, b, order) => {
    expect(compareText(a, b)).toBe(order);
  });

  test('sorts as JSON.stringify of sorted keys does (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.string()), (texts) => {
        const sorted = [...texts].sort(compareText);
        expect(sorted).toEqual([...texts].sort());
        for (let i = 1; i < sorted.length; i++) expect(compareText(sorted[i - 1]!, sorted[i]!)).toBeLessThanOrEqual(0);
      }),
    );
  });

  test('byText orders items by a text of each', () => {
    expect([{ n: 'b' }, { n: 'a' }, { n: 'c' }].sort(byText((x) => x.n)).map((x) => x.n)).toEqual(['a', 'b', 'c']);
  });
});

describe('isRecord', () => {
  test.each([
    [{}, true],
    [{ a: 1 }, true],
    [Object.create(null), true],
    [[], false],
    [null, false],
    [undefined, false],
    ['x', false],
    [1, false],
  ])('%j → %s', (value, record) => {
    expect(isRecord(value)).toBe(record);
  });
});

describe('JSON pointers (RFC 6901)', () => {
  test.each([
    [['env', 2, 'key'], '/env/2/key'],
    [['a/b'], '/a~1b'],
    [['m~n'], '/m~0n'],
    [['~/'], '/~0~1'],
    [[''], '/'],
    [[], ''],
  ])('%j → %j', (tokens, pointer) => {
    expect(pointerOf(...tokens)).toBe(pointer);
  });

  test('escaping is undone by RFC 6901 unescaping (property)', () => {
    fc.assert(fc.property(fc.string(), (token) => expect(escapePointerToken(token).replace(/~1/g, '/').replace(/~0/g, '~')).toBe(token)));
  });
});
