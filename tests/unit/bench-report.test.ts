import { previousResults } from '../bench/report.js';

const doc = `# Benchmarks

## operator

Measured then.

| measurement | result | target | met |
|---|---|---|---|
| no-op resync: time per pass | median 25.6 ms | ≤ 50 ms | yes |
| peak RSS | 86.1 MB | ≤ 100 MB | yes |

## peers

| measurement | result | before | target | met |
|---|---|---|---|---|
| no-op pass | 1747 ms | 1100 ms | ≤ 50 ms | **no** |
`;

describe('the figures a benchmark section replaces', () => {
  test('read from a table without a before column', () => {
    expect([...previousResults(doc, '## operator')]).toEqual([
      ['no-op resync: time per pass', 'median 25.6 ms'],
      ['peak RSS', '86.1 MB'],
    ]);
  });
  test('read from a table with one: the result, not the older figure', () => {
    expect(previousResults(doc, '## peers').get('no-op pass')).toBe('1747 ms');
  });
  test('none for a new section', () => {
    expect(previousResults(doc, '## backup').size).toBe(0);
  });
});
