import fc from 'fast-check';
import { listObject, parseOutput, renderJsonPath, renderNames, toYamlText } from '../../controllers/cli/output.js';
import { UsageError } from '../../controllers/cli/usage.js';
import { parse as parseYaml } from 'yaml';

const LIST = listObject([
  { kind: 'ServiceInstall', name: 'files', phase: 'Stalled', conditions: [{ type: 'Ready', status: 'False', message: 'no image' }] },
  { kind: 'ServiceInstall', name: 'notes', phase: 'Ready', conditions: [{ type: 'Ready', status: 'True', message: 'ok' }], facts: { serviceIp: '172.20.0.20' } },
]);

describe('-o jsonpath (kubectl template syntax)', () => {
  test.each([
    ['{.items[*].name}', 'files notes'],
    ['{.kind}', 'List'],
    ['{.items[0].name}', 'files'],
    ['{.items[1].facts.serviceIp}', '172.20.0.20'],
    ['{.items[?(@.phase=="Ready")].name}', 'notes'],
    ['{range .items[*]}{.name}{"\\t"}{.phase}{"\\n"}{end}', 'files\tStalled\nnotes\tReady\n'],
    ['{range .items[*]}[{.conditions[*].message}]{end}', '[no image][ok]'],
    ['names: {.items[*].name}!', 'names: files notes!'],
    ['{$.items[*].phase}', 'Stalled Ready'],
    ['{.items[0].conditions[0]}', '{"type":"Ready","status":"False","message":"no image"}'],
    ['{.nothing}', ''],
    ['plain text', 'plain text'],
  ])('%s', (template, expected) => {
    expect(renderJsonPath(template, LIST)).toBe(expected);
  });

  test.each([
    ['{.items[*].name', /unclosed "\{"/],
    ['{}', /empty \{\}/],
    ['{range .items[*]}{.name}', /without \{end\}/],
    ['{end}', /\{end\} without/],
  ])('%s is a usage error', (template, message) => {
    expect(() => parseOutput(`jsonpath=${template}`, ['json', 'jsonpath'], 'get')).toThrow(message);
    expect(() => parseOutput(`jsonpath=${template}`, ['json', 'jsonpath'], 'get')).toThrow(UsageError);
  });

  test('a value with escape sequences is escaped; the template\'s own newline is kept', () => {
    const hostile = listObject([{ name: 'x\u001b[2J\r\u202e' }]);
    expect(renderJsonPath('{range .items[*]}{.name}{"\\n"}{end}', hostile)).toBe('x\\e[2J\\r\\u{202e}\n');
  });

  test('filters cannot run JavaScript', () => {
    expect(() => renderJsonPath('{.items[?(@.constructor.constructor("return process")().exit(7))]}', LIST)).toThrow(UsageError);
  });

  test('any template either renders or is a usage error, never another exception', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('{', '}', '.', '[', ']', '*', '?', '(', ')', '@', '$', '"', "'", '=', 'r', 'a', 'n', 'g', 'e', ' ', 'd', 'items', 'name', '\\') , maxLength: 40 }), (template) => {
        try {
          parseOutput(`jsonpath=${template}`, ['jsonpath'], 'get');
          renderJsonPath(template, LIST);
        } catch (err) {
          if (!(err instanceof UsageError)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseOutput', () => {
  test.each([
    [undefined, { format: 'table' }],
    ['wide', { format: 'wide' }],
    ['json', { format: 'json' }],
    ['name', { format: 'name' }],
    ['jsonpath={.kind}', { format: 'jsonpath', template: '{.kind}' }],
  ])('%s', (value, expected) => {
    expect(parseOutput(value, ['table', 'wide', 'json', 'yaml', 'name', 'jsonpath'], 'get')).toEqual(expected);
  });

  test.each([['xml'], ['jsonpath'], ['jsonpath='], ['Table']])('%s is refused naming the formats', (value) => {
    expect(() => parseOutput(value, ['table', 'json', 'jsonpath'], 'get')).toThrow(UsageError);
  });
});

describe('-o yaml', () => {
  test.each([
    ['an ISO time', { t: '2026-01-01T00:00:00.000Z' }, 't: "2026-01-01T00:00:00.000Z"'],
    ['a date', { d: '2026-01-01' }, 'd: "2026-01-01"'],
    ['an ESC', { m: 'a\u001bb' }, 'm: "a\\eb"'],
    ['a bidi override', { m: 'a\u202eb' }, 'm: "a\\u202eb"'],
    ['a C1 control', { m: 'a\u009bb' }, 'm: "a\\u009bb"'],
    ['a plain word', { m: 'Ready' }, 'm: Ready'],
  ])('%s', (_what, value, expected) => {
    const text = toYamlText(value);
    expect(text).toBe(expected);
    expect(parseYaml(text)).toEqual(value);
    expect(parseYaml(text, { version: '1.1' })).toEqual(value);
  });

  test('any string survives the round trip and no raw control character is printed', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.string({ unit: 'binary' })), (value) => {
        const text = toYamlText(value);
        // eslint-disable-next-line no-control-regex
        expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u200b-\u200f\u2028\u2029\ufeff]/u);
        expect(parseYaml(text)).toEqual(value);
      }),
      { numRuns: 500 },
    );
  });
});

test('-o name is Kind/name, one a line, escaped', () => {
  expect(renderNames([{ kind: 'ServiceInstall', name: 'notes' }, { kind: 'PeerAccount', name: 'a\u001b' }])).toBe('ServiceInstall/notes\nPeerAccount/a\\e');
});
