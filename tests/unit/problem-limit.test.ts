import { boundProblems, cut, MAX_MESSAGE_LENGTH, moreProblems, nestingDepthExceeds, quoted } from '../../crds/problem-limit.js';
import type { Problem } from '../../crds/types.js';

const p = (n: number, file = 'f.yaml'): Problem => ({ file, pointer: `/${n}`, message: `problem ${n}` });

describe('boundProblems', () => {
  test.each([
    ['under the bound: the very same list', 3, 5, 3, undefined],
    ['at the bound: unchanged', 5, 5, 5, undefined],
    ['over the bound: the first ones and a count', 12, 5, 6, '7 more problems not shown'],
    ['one over: a singular count', 6, 5, 6, '1 more problem not shown'],
  ])('%s', (_name, count, max, length, last) => {
    const list = Array.from({ length: count }, (_, i) => p(i));
    const bounded = boundProblems(list, 'f.yaml', max);
    expect(bounded).toHaveLength(length);
    if (last) expect(bounded[bounded.length - 1]!.message).toMatch(new RegExp(`^${last}`));
    else expect(bounded).toBe(list);
  });

  test('bounding twice keeps one count, summed', () => {
    const inner = boundProblems(Array.from({ length: 20 }, (_, i) => p(i)), 'f.yaml', 5);
    const outer = boundProblems([...inner, ...Array.from({ length: 10 }, (_, i) => p(100 + i))], 'f.yaml', 5);
    expect(outer.filter((q) => q.message.includes('more problem'))).toEqual([moreProblems('f.yaml', 25)]);
    expect(outer).toHaveLength(6);
  });

  test('long messages and pointers are cut', () => {
    const [only] = boundProblems([{ file: 'f', pointer: `/${'k'.repeat(5000)}`, message: 'm'.repeat(5000) }], 'f');
    expect(only!.message.length).toBe(MAX_MESSAGE_LENGTH + 1);
    expect(only!.pointer.length).toBe(MAX_MESSAGE_LENGTH + 1);
  });
});

describe('cut and quoted', () => {
  test.each([
    ['short', 'abc', '"abc"'],
    ['long', 'x'.repeat(200), `"${'x'.repeat(80)}…"`],
    ['quotes and controls escaped', 'a"b\u001b', '"a\\"b\\u001b"'],
    ['a number', 42, '42'],
    ['an object', { a: 1 }, '{"a":1}'],
    ['undefined', undefined, 'undefined'],
  ])('%s', (_name, value, expected) => {
    expect(quoted(value)).toBe(expected);
  });

  test('cut leaves short text alone', () => {
    expect(cut('abc', 3)).toBe('abc');
    expect(cut('abcd', 3)).toBe('abc…');
  });
});

describe('nestingDepthExceeds', () => {
  const nest = (depth: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  };
  test.each([
    ['a scalar', 1, 64, false],
    ['64 levels', nest(64), 64, false],
    ['65 levels', nest(65), 64, true],
    ['100,000 levels, without recursion', nest(100_000), 64, true],
  ])('%s', (_name, value, limit, expected) => {
    expect(nestingDepthExceeds(value, limit)).toBe(expected);
  });

  test('a shared value reached deeper the second time is measured there', () => {
    const shared = nest(10);
    expect(nestingDepthExceeds({ a: shared, b: nest(5) }, 12)).toBe(false);
    expect(nestingDepthExceeds([shared, [[[[shared]]]]], 12)).toBe(true);
  });
});
