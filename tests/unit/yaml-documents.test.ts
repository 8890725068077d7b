import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { readComposeTemplate, readPackageTemplate } from '../../state/compose-template.js';
import { MAX_DOCUMENT_FILE_BYTES, parseJsonText, parseYamlDocuments, parseYamlStreams, plainDocumentValue } from '../../state/yaml-documents.js';

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

// ---------------------------------------------------------------------------------------------
// plainDocumentValue reads the plainest documents without the yaml package; whatever it reads,
// yaml must read to the very same value, with no error and no warning.

/** yaml's reading of a text, as parseYamlDocuments would take it when it has one clean document. */
function yamlReading(text: string): { value: unknown } | undefined {
  const docs = parseAllDocuments(text, { uniqueKeys: true, strict: true, schema: 'core', resolveKnownTags: false });
  if (!Array.isArray(docs) || docs.length !== 1) return undefined;
  const doc = docs[0]!;
  if (doc.errors.length > 0 || doc.warnings.length > 0) return undefined;
  return { value: doc.toJS({ maxAliasCount: 100 }) };
}

/** Same value, same key order, same types all the way down (1 is not "1", true is not "true"). */
function sameReading(plain: unknown, text: string): boolean {
  const reading = yamlReading(text);
  return reading !== undefined && isDeepStrictEqual(plain, reading.value) && JSON.stringify(plain) === JSON.stringify(reading.value);
}

const KEYS = [
  'a', 'name', 'kind', 'apiVersion', 'spec', 'metadata', 'x1', 'A_b', 'a-b', 'k'.repeat(63), 'k'.repeat(64),
  'null', 'Null', 'NULL', 'true', 'True', 'false', 'FALSE', 'yes', 'no', 'on', 'off', 'y', 'n', 'nan', 'inf',
  '__proto__', 'constructor', 'toString', 'hasOwnProperty', '1', '0x1', 'a.b', 'a b', '-a', '~', '<<', '', '?', 'a:b', '"a"',
];
const SCALARS = [
  'abc', 'Demo notes', 'a  b', 'a b ', 'x', 'en', 'tor', 'default', '1', '0', '00', '007', '-1', '+1', '8080', '65535',
  '123456789012345', '1234567890123456', '99999999999999999999', '1.0', '1.0.0', '1.', '.5', '1e3', '1E3', '1e', '0x1F', '0o17', '0b1',
  '.inf', '-.inf', '.NaN', '.nan', 'NaN', 'Infinity', 'null', 'Null', 'NULL', '~', 'true', 'false', 'True', 'TRUE', 'False', 'yes', 'No',
  'on', 'Off', 'y', '1_000', '1,000', 'pic.ngo/v1alpha1', '172.20.0.0/16', '172.20.0.20-172.20.3.254', 'git.pic.ngo/roof/', '../store',
  './x', '/abs', '-x', '- x', 'a:b', 'a: b', 'a :b', 'a #b', 'a#b', '"q"', "'q'", '&a x', '*a', '!!str x', '!x', '|', '>', '%x', '@x', '`x',
  '...', '.', '..', '/', '.x', '._', '_', '.5.5', '/.inf', '.Inf', '.INF', '.NAN', '.e1', '.1e1', 'a\tb', 'é', 'a é', '😀', '2001-01-01', '2001-01-01T00:00:00Z', '1:30', '0.1.2-rc.1+b', 'v1', 'a/b/c', 'a..b', 'a--b', 'a_', '_a',
];
const FLOWS = [
  '[a, b]', '[]', '{}', '[a,b]', '[ a ]', '[a, [b]]', '[a, b c]', '{a: 1}', '{a: b, a: c}', '{a: b, c: d}', '{a:b}', '{a:  b}', '{ a: b }',
  '{null: 1}', '{true: x}', '{1: x}', '{__proto__: x}', '[1.0]', '[true, 1, x, 1.0.0]', '{a: }', '[a, ]', '[, a]', '[a, b', 'a, b]',
  '{a: [b]}', '{a: {b: c}}', '[a, b] x', '[a # c]', '{a: b # c}', '[null]', '[~]', '[""]', '[a,  b]', '[a ,b]', '{a: 1, b: 1.0.0}',
];
const TRAILERS = ['', ' ', '  ', ' # c', '  # c: d', ' #c', '#c', '\t# c', ' # é ☃', ' # \u0085', ' # \u2028', ' # \uFEFF', ' # 😀', ' #\u0001', ' # \t'];
const COMMENTS = ['#', '# c', '#c: d', '  # indented', '# é ☃', '# \u0085', '# \u2028', '# \uFEFF', '# 😀', '#\u0001', '# \t', '\t# c', ' '];

/** Half of each pool is what the plain reading takes, so generated documents often pass whole. */
function weighted(values: readonly string[], accepted: (v: string) => boolean): fc.Arbitrary<string> {
  const good = values.filter(accepted);
  const edge = values.filter((v) => !accepted(v));
  return fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...good) }, { weight: 1, arbitrary: fc.constantFrom(...edge) });
}
const keyArb = weighted(KEYS, (k) => plainDocumentValue(`${k}: x\n`) !== undefined);
const scalarArb = fc.oneof(
  { weight: 20, arbitrary: weighted(SCALARS, (v) => plainDocumentValue(`a: ${v}\n`) !== undefined) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
);
const flowArb = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom(...FLOWS) },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.boolean(), fc.array(fc.tuple(keyArb, scalarArb), { maxLength: 4 })).map(([list, items]) =>
      list ? `[${items.map(([, v]) => v).join(', ')}]` : `{${items.map(([k, v]) => `${k}: ${v}`).join(', ')}}`,
    ),
  },
);
const trailerArb = weighted(TRAILERS, (t) => plainDocumentValue(`a: b${t}\n`) !== undefined);
const commentArb = weighted(COMMENTS, (c) => plainDocumentValue(`${c}\na: b\n`) !== undefined);

type Entry = { key: string; value: string | Entry[] };
const entries: fc.Arbitrary<Entry[]> = fc.letrec<{ entries: Entry[] }>((tie) => ({
  entries: fc.array(
    fc.record({
      key: keyArb,
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        { weight: 4, arbitrary: scalarArb },
        { weight: 2, arbitrary: flowArb },
        { weight: 2, arbitrary: tie('entries') },
      ),
    }),
    { minLength: 1, maxLength: 4 },
  ),
})).entries;

/** A document in (or near) the plain subset: nested mappings, each with its own indentation step. */
const nearPlainDocument = fc
  .record({
    body: entries,
    steps: fc.array(fc.oneof({ weight: 6, arbitrary: fc.constantFrom(1, 2, 3, 4) }, { weight: 1, arbitrary: fc.constantFrom(0, -1) }), { minLength: 6, maxLength: 6 }),
    trailers: fc.array(trailerArb, { minLength: 40, maxLength: 40 }),
    noise: fc.array(
      fc.tuple(fc.nat(40), fc.oneof({ weight: 4, arbitrary: commentArb }, { weight: 1, arbitrary: fc.constantFrom('---', '...', '- a', '%YAML 1.2', 'a: |', '  x', '\tb: c', 'k: v', 'a:', '? a', '  a: b') })),
      { maxLength: 3 },
    ),
    start: fc.constantFrom('', '', '', '---\n', '---\n', '--- \n', '--- # c\n', '\uFEFF', '# c\n', '\n'),
    end: fc.constantFrom('\n', '\n', '\n', '', '\n\n', '\n...\n', '\n---\n', '\r\n'),
    crlf: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    uniqueKeys: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  })
  .map(({ body, steps, trailers, noise, start, end, crlf, uniqueKeys }) => {
    const lines: string[] = [];
    let t = 0;
    const render = (list: Entry[], indent: number, depth: number): void => {
      const seen = new Set<string>();
      for (const { key, value } of list) {
        if (uniqueKeys && seen.has(key)) continue;
        seen.add(key);
        const pad = ' '.repeat(Math.max(0, indent));
        const trailer = trailers[t++ % trailers.length]!;
        if (typeof value === 'string') lines.push(`${pad}${key}: ${value}${trailer}`);
        else {
          lines.push(`${pad}${key}:${trailer}`);
          render(value, indent + steps[depth % steps.length]!, depth + 1);
        }
      }
    };
    render(body, 0, 0);
    for (const [at, line] of noise) lines.splice(at % (lines.length + 1), 0, line);
    return start + lines.join(crlf ? '\r\n' : '\n') + end;
  });

describe('plainDocumentValue', () => {
  test('reads the documents of the example cell, and yaml reads them the same', () => {
    const root = path.join(process.cwd(), 'examples', 'cell');
    const connection = path.join(process.cwd(), 'examples', 'connections', 'vpn-home.yaml');
    const files = [path.join(root, 'cell.yaml'), ...['services', 'peers'].flatMap((d) => readdirSync(path.join(root, d)).map((f) => path.join(root, d, f))), connection];
    let plain = 0;
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const value = plainDocumentValue(text);
      if (value === undefined) continue;
      plain++;
      expect(sameReading(value, text)).toBe(true);
    }
    expect(plain).toBeGreaterThan(files.length / 2);
  });

  test.each([
    ['a generated PeerAccount', 'apiVersion: pic.ngo/v1alpha1\nkind: PeerAccount\nmetadata: {name: peer7}\nspec:\n  services: [svc7, svc49]\n', { apiVersion: 'pic.ngo/v1alpha1', kind: 'PeerAccount', metadata: { name: 'peer7' }, spec: { services: ['svc7', 'svc49'] } }],
    ['versions, numbers, words and comments', '---\n# c\nspec:\n    version: 1.0.0 # pinned\n    config: {port: 9024, title: Demo notes, on: true}\n\n    subnet: 172.20.0.0/16\n', { spec: { version: '1.0.0', config: { port: 9024, title: 'Demo notes', on: true }, subnet: '172.20.0.0/16' } }],
    ['empty flow collections', 'a: []\nb: {}\n', { a: [], b: {} }],
  ])('reads %s', (_name, text, expected) => {
    expect(plainDocumentValue(text)).toEqual(expected);
    expect(sameReading(plainDocumentValue(text), text)).toBe(true);
  });

  test.each([
    ['a null word', 'a: null\n'],
    ['an empty value', 'a:\nb: c\n'],
    ['a float', 'a: 1.5\n'],
    ['a capitalised boolean', 'a: True\n'],
    ['a quoted string', 'a: "b"\n'],
    ['a block list', 'a:\n  - b\n'],
    ['an anchor and alias', 'a: &x b\nc: *x\n'],
    ['a repeated key', 'a: b\na: c\n'],
    ['a repeated key in a flow mapping', 'a: {b: 1, b: 2}\n'],
    ['uneven indentation', 'a:\n    b: c\n  d: e\n'],
    ['an indented root', '  a: b\n'],
    ['a tab', 'a:\n\tb: c\n'],
    ['carriage returns', 'a: b\r\nc: d\r\n'],
    ['two documents', 'a: b\n---\nc: d\n'],
    ['a key YAML reads as a boolean', 'true: x\n'],
    ['a long integer', 'a: 1234567890123456\n'],
    ['a leading-zero integer', 'a: 007\n'],
    ['nothing but comments', '# only a comment\n'],
    ['a scalar document', 'just text\n'],
  ])('leaves %s to yaml', (_name, text) => {
    expect(plainDocumentValue(text)).toBeUndefined();
  });

  test('long runs of spaces do not make reading slow (it would be quadratic with backtracking)', () => {
    const line = (filler: string): string => `a: b${filler.repeat(100_000)}c`;
    expect(plainDocumentValue([line(' '), line(' #'), line('  '), `${' '.repeat(300_000)}# c`].join('\n'))).toBeUndefined();
    expect(plainDocumentValue(`a: b${' '.repeat(300_000)}\n${' '.repeat(300_000)}\nc: d # ${'#'.repeat(300_000)}\n`)).toEqual({ a: 'b', c: 'd' });
  });

  test('whatever it reads, yaml reads the same, without error or warning (generated documents)', () => {
    let read = 0;
    fc.assert(
      fc.property(nearPlainDocument, (text) => {
        const value = plainDocumentValue(text);
        if (value === undefined) return true;
        read++;
        return sameReading(value, text);
      }),
      { numRuns: 4000 },
    );
    // The generator must exercise the reading side, not only the refusals.
    expect(read).toBeGreaterThan(150);
  });

  test('whatever it reads from arbitrary text, yaml reads the same', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.stringMatching(/^([a-z]{1,3}:( [a-z0-9.[\]{}, ]{0,12})?\n {0,4}){1,6}$/)), (text) => {
        const value = plainDocumentValue(text);
        return value === undefined || sameReading(value, text);
      }),
      { numRuns: 3000 },
    );
  });

  test('parseYamlDocuments gives the same result whichever way a document is read', () => {
    fc.assert(
      fc.property(nearPlainDocument, (text) => {
        if (plainDocumentValue(text) === undefined) return true;
        const reading = yamlReading(text)!;
        return isDeepStrictEqual(parseYamlDocuments(text, 'f.yaml'), { documents: [{ label: 'f.yaml', index: 0, value: reading.value }], problems: [], notices: [] });
      }),
      { numRuns: 500 },
    );
  });
});

describe('parseYamlStreams: one parse, a composer per option set', () => {
  const documentOptions = { uniqueKeys: true, prettyErrors: false, strict: true, schema: 'core', resolveKnownTags: false } as const;
  const composeOptions = { merge: true, uniqueKeys: true, stringKeys: true, strict: true, prettyErrors: false, resolveKnownTags: false, logLevel: 'silent' } as const;
  /** What parseAllDocuments gives or throws, as comparable data. */
  const outcome = (read: () => ReturnType<typeof parseAllDocuments>) => {
    try {
      const docs = read();
      const stream = docs as unknown as { errors?: unknown[]; warnings?: unknown[] };
      return {
        docs: docs.map((d) => ({ errors: d.errors.map((e) => [e.code, e.message, e.pos]), warnings: d.warnings.map((w) => [w.code, w.message, w.pos]), value: safeJs(d) })),
        stream: { errors: (stream.errors ?? []).map(String), warnings: (stream.warnings ?? []).map(String) },
      };
    } catch (err) {
      return { thrown: String(err) };
    }
  };
  const safeJs = (d: { toJS(options?: { maxAliasCount?: number }): unknown }): unknown => {
    try {
      return d.toJS({ maxAliasCount: 32 });
    } catch (err) {
      return `threw ${String(err)}`;
    }
  };
  const fragments = fc.constantFrom(
    'a', 'b: ', ': ', '\n', '  ', '- ', '&x ', '*x', '<<: ', '<<: *x', '[', ']', '{', '}', ', ', '"', "'", '#', '!!str ', '!!binary ', '? ', '|', '>', '---', '...', '%YAML 1.2\n', '1', 'true', 'null', '\t',
  );
  const texts = fc.oneof(fc.string({ maxLength: 120 }), fc.array(fragments, { maxLength: 50 }).map((parts) => parts.join('')));

  test('each reading is what parseAllDocuments gives under its options alone (documents, errors, warnings, values, what it throws)', () => {
    fc.assert(
      fc.property(texts, (text) => {
        const [asDocument, asCompose] = parseYamlStreams(text, [documentOptions, composeOptions]);
        const of = (s: typeof asDocument) => () => {
          if ('thrown' in s!) throw s.thrown;
          return s!.docs as unknown as ReturnType<typeof parseAllDocuments>;
        };
        expect(outcome(of(asDocument))).toEqual(outcome(() => parseAllDocuments(text, documentOptions)));
        expect(outcome(of(asCompose))).toEqual(outcome(() => parseAllDocuments(text, composeOptions)));
      }),
      { numRuns: 3000 },
    );
  });

  test('readPackageTemplate reads a template as parseYamlDocuments and readComposeTemplate do, each on its own', () => {
    const example = readFileSync(path.join(process.cwd(), 'examples', 'store', 'services', 'notes', 'compose-template.yml'), 'utf8');
    const lines = example.split('\n');
    const mutated = fc.tuple(fc.nat({ max: lines.length - 1 }), texts).map(([at, text]) => [...lines.slice(0, at), text, ...lines.slice(at + 1)].join('\n'));
    fc.assert(
      fc.property(fc.oneof(texts, mutated), (text) => {
        expect(readPackageTemplate(text, 't.yml')).toEqual({ documentProblems: parseYamlDocuments(text, 't.yml').problems, template: readComposeTemplate(text, 't.yml') });
      }),
      { numRuns: 3000 },
    );
    expect(readPackageTemplate(example, 't.yml').documentProblems).toEqual([]);
  });
});
