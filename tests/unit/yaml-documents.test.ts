import fc from 'fast-check';
import { MAX_DOCUMENT_FILE_BYTES, parseJsonText, parseYamlDocuments } from '../../state/yaml-documents.js';

describe('parseYamlDocuments', () => {
  test('reads several documents and labels them', () => {
    const r = parseYamlDocuments('a: 1\n---\nb: 2\n', 'x.yaml');
    expect(r.problems).toEqual([]);
    expect(r.documents.map((d) => [d.label, d.value])).toEqual([
      ['x.yaml (document 1)', { a: 1 }],
      ['x.yaml (document 2)', { b: 2 }],
    ]);
  });

  test('a single document keeps the plain file name; empty documents are skipped', () => {
    const r = parseYamlDocuments('---\na: 1\n---\n', 'x.yaml');
    expect(r.documents).toEqual([{ label: 'x.yaml', index: 0, value: { a: 1 } }]);
  });

  test.each([
    ['syntax error', 'a: [1, 2\n', 'not valid YAML'],
    ['duplicate key', 'a: 1\na: 2\n', 'not valid YAML'],
    ['alias bomb', ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`)].join('\n'), 'cannot be read'],
  ])('%s is a problem, not a crash', (_name, text, fragment) => {
    const r = parseYamlDocuments(text, 'bad.yaml');
    expect(r.problems.length).toBeGreaterThan(0);
    expect(r.problems[0]).toEqual(expect.objectContaining({ file: 'bad.yaml', message: expect.stringContaining(fragment) }));
  });

  test('oversize input is refused before parsing', () => {
    const r = parseYamlDocuments('a: "' + 'x'.repeat(MAX_DOCUMENT_FILE_BYTES) + '"', 'big.yaml');
    expect(r.documents).toEqual([]);
    expect(r.problems[0]?.message).toContain('larger than');
  });

  test('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => {
        const r = parseYamlDocuments(text, 'p.yaml');
        return Array.isArray(r.documents) && Array.isArray(r.problems);
      }),
      { numRuns: 500 },
    );
  });
});

describe('parseJsonText', () => {
  test('reports line and column of a syntax error', () => {
    const r = parseJsonText('{\n  "a": 1,\n  "b": \n}', 'm.json');
    expect(r.value).toBeUndefined();
    expect(r.problems[0]?.message).toMatch(/not valid JSON at line 4/);
  });
});
